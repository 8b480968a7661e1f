//! Figures, their targets, the terminal table and `report.json`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use crate::machine::Machine;
use crate::scenarios::Scenario;
use crate::stats::Runs;

/// Which side of a bound passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// `≥ x`.
    AtLeast(f64),
    /// `≤ x`.
    AtMost(f64),
}

impl Bound {
    fn holds(self, v: f64) -> bool {
        match self {
            Bound::AtLeast(x) => v >= x,
            Bound::AtMost(x) => v <= x,
        }
    }

    fn text(self) -> String {
        match self {
            Bound::AtLeast(x) => format!(">= {}", num(x)),
            Bound::AtMost(x) => format!("<= {}", num(x)),
        }
    }
}

/// What a figure is held to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// value / baseline.
    Ratio(Bound),
    /// The value itself, in its unit.
    Value(Bound),
    /// Nothing here: reported for information (the text says why).
    Info(String),
}

impl Target {
    fn text(&self, unit: &str) -> String {
        match self {
            Target::Ratio(b) => format!("ratio {}", b.text()),
            Target::Value(b) => format!("{} {unit}", b.text()),
            Target::Info(why) => why.clone(),
        }
    }
}

/// One figure of a scenario.
#[derive(Debug, Clone)]
pub struct Metric {
    /// Key in `report.json` (`ingest`, `read_p99`, …).
    pub name: String,
    /// Unit of `value` and `baseline`.
    pub unit: String,
    /// The gateway's runs.
    pub value: Runs,
    /// The baseline's runs, when there is one.
    pub baseline: Option<Runs>,
    /// What it must meet.
    pub target: Target,
    /// Anything else worth keeping (per-run maxima, misses, sizes).
    pub detail: Value,
    /// Why it was not measured, when it was not.
    pub skipped: Option<String>,
}

impl Metric {
    /// A figure with a target.
    pub fn new(name: &str, unit: &str, value: Runs, target: Target) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            value,
            baseline: None,
            target,
            detail: json!({}),
            skipped: None,
        }
    }

    /// Adds the baseline's runs.
    pub fn with_baseline(mut self, baseline: Runs) -> Metric {
        self.baseline = Some(baseline);
        self
    }

    /// Adds detail.
    pub fn with_detail(mut self, detail: Value) -> Metric {
        self.detail = detail;
        self
    }

    /// A figure that could not be measured here, and why.
    pub fn skipped(name: &str, unit: &str, target: Target, why: &str) -> Metric {
        Metric {
            skipped: Some(why.into()),
            ..Metric::new(name, unit, Runs::new(Vec::new()), target)
        }
    }

    fn ratio(&self) -> Option<f64> {
        let b = self.baseline.as_ref()?.median();
        (b > 0.0 && b.is_finite()).then(|| self.value.median() / b)
    }

    /// `pass`, `fail`, `info` or `skipped`.
    pub fn status(&self) -> &'static str {
        if self.skipped.is_some() {
            return "skipped";
        }
        let v = self.value.median();
        let ok = match &self.target {
            Target::Info(_) => return "info",
            Target::Ratio(b) => self.ratio().is_some_and(|r| b.holds(r)),
            Target::Value(b) => v.is_finite() && b.holds(v),
        };
        if ok && self.detail.get("incomplete").is_none() {
            "pass"
        } else {
            "fail"
        }
    }

    fn json(&self) -> Value {
        let status = self.status();
        let pass = match status {
            "pass" => json!(true),
            "fail" => json!(false),
            _ => Value::Null,
        };
        let finite = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
        let mut m = json!({
            "value": if self.skipped.is_some() { Value::Null } else { finite(self.value.median()) },
            "baseline": self.baseline.as_ref().map_or(Value::Null, |b| finite(b.median())),
            "ratio": self.ratio().map_or(Value::Null, finite),
            "unit": self.unit,
            "target": self.target.text(&self.unit),
            "pass": pass,
            "status": status,
            "min": if self.value.values.is_empty() { Value::Null } else { finite(self.value.min()) },
            "max": if self.value.values.is_empty() { Value::Null } else { finite(self.value.max()) },
            "runs": self.value.values,
        });
        if let Some(b) = &self.baseline {
            m["baseline_runs"] = json!(b.values);
        }
        if let Some(why) = &self.skipped {
            m["reason"] = json!(why);
        }
        if self.detail.as_object().is_some_and(|o| !o.is_empty()) {
            m["detail"] = self.detail.clone();
        }
        m
    }
}

/// Compact number: 3 significant-ish digits.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The whole run.
#[derive(Debug)]
pub struct Report {
    machine: Machine,
    database: &'static str,
    quick: bool,
    metrics: Vec<(Scenario, Metric)>,
    errors: Vec<(Scenario, String)>,
    duration: Duration,
    started_at: String,
}

impl Report {
    /// An empty report.
    pub fn new(machine: Machine, database: &'static str, quick: bool) -> Report {
        Report {
            machine,
            database,
            quick,
            metrics: Vec::new(),
            errors: Vec::new(),
            duration: Duration::ZERO,
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// Adds a scenario's figures.
    pub fn add(&mut self, scenario: Scenario, metrics: Vec<Metric>) {
        self.metrics
            .extend(metrics.into_iter().map(|m| (scenario, m)));
    }

    /// Records a scenario the harness failed to measure.
    pub fn add_error(&mut self, scenario: Scenario, error: &str) {
        self.errors.push((scenario, error.to_string()));
    }

    /// Ends the run.
    pub fn finish(&mut self, duration: Duration) {
        self.duration = duration;
        self.machine.loadavg_end = Some(crate::machine::loadavg());
    }

    /// Whether a scenario could not be measured.
    pub fn harness_failed(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Whether a measured figure missed its target.
    pub fn any_missed(&self) -> bool {
        self.metrics.iter().any(|(_, m)| m.status() == "fail")
    }

    fn rows(&self) -> Vec<[String; 8]> {
        let mut rows = Vec::new();
        for (_, m) in &self.metrics {
            let spread = if m.value.values.len() > 1 {
                format!("{}..{}", num(m.value.min()), num(m.value.max()))
            } else {
                String::new()
            };
            if let Some(why) = &m.skipped {
                rows.push([
                    m.name.clone(),
                    "skipped".into(),
                    m.unit.clone(),
                    String::new(),
                    String::new(),
                    m.target.text(&m.unit),
                    "skipped".into(),
                    why.clone(),
                ]);
                continue;
            }
            rows.push([
                m.name.clone(),
                num(m.value.median()),
                m.unit.clone(),
                m.baseline
                    .as_ref()
                    .map_or_else(String::new, |b| num(b.median())),
                m.ratio().map_or_else(String::new, num),
                m.target.text(&m.unit),
                m.status().to_string(),
                spread,
            ]);
        }
        for (s, e) in &self.errors {
            let first = e.lines().next().unwrap_or_default().to_string();
            rows.push([
                s.name().into(),
                "error".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "error".into(),
                first,
            ]);
        }
        rows
    }

    const HEADER: [&'static str; 8] = [
        "scenario",
        "value",
        "unit",
        "baseline",
        "ratio",
        "target",
        "pass",
        "runs min..max",
    ];

    /// The terminal table.
    pub fn table(&self) -> String {
        let rows = self.rows();
        let mut widths = Self::HEADER.map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .zip(widths.iter())
                .map(|(c, w)| format!("{c:<w$}", w = *w))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = vec![
            format!(
                "machine: {}\ndatabase: {}   mode: {}   took {:.0} s",
                self.machine.describe(),
                self.database,
                if self.quick {
                    "quick (1 run)"
                } else {
                    "full (median of 3 runs)"
                },
                self.duration.as_secs_f64()
            ),
            line(Self::HEADER.to_vec()),
        ];
        out.extend(
            rows.iter()
                .map(|r| line(r.iter().map(String::as_str).collect())),
        );
        out.join("\n")
    }

    /// The same table in Markdown (for the README).
    pub fn markdown(&self) -> String {
        let mut out = vec![
            format!(
                "Measured {} on {}; database {}, {}.",
                self.started_at,
                self.machine.describe(),
                self.database,
                if self.quick {
                    "quick run"
                } else {
                    "full run (median of 3 runs)"
                }
            ),
            String::new(),
            format!("| {} |", Self::HEADER.join(" | ")),
            format!("|{}", "---|".repeat(Self::HEADER.len())),
        ];
        for r in self.rows() {
            out.push(format!("| {} |", r.join(" | ").replace('\n', " ")));
        }
        out.join("\n") + "\n"
    }

    /// `report.json`'s document.
    pub fn json(&self) -> Value {
        let mut scenarios = Map::new();
        for (_, m) in &self.metrics {
            scenarios.insert(m.name.clone(), m.json());
        }
        for (s, e) in &self.errors {
            scenarios.insert(
                s.name().to_string(),
                json!({"value": null, "baseline": null, "ratio": null, "unit": null,
                       "target": null, "pass": false, "status": "error", "reason": e}),
            );
        }
        json!({
            "scenarios": scenarios,
            "machine": self.machine,
            "database": self.database,
            "quick": self.quick,
            "started_at": self.started_at,
            "duration_secs": self.duration.as_secs_f64().round(),
        })
    }

    /// Writes `report.json` and `report.md`.
    pub fn write(&self, json_path: &Path, md_path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = json_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&self.json())?;
        std::fs::write(json_path, text + "\n")
            .with_context(|| format!("writing {}", json_path.display()))?;
        std::fs::write(md_path, self.markdown())
            .with_context(|| format!("writing {}", md_path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_targets_and_statuses() {
        let m = Metric::new(
            "ingest",
            "msg/s",
            Runs::new(vec![40.0, 60.0, 50.0]),
            Target::Ratio(Bound::AtLeast(0.5)),
        )
        .with_baseline(Runs::new(vec![100.0, 90.0, 110.0]));
        assert_eq!(m.ratio(), Some(0.5));
        assert_eq!(m.status(), "pass");
        let j = m.json();
        assert_eq!(j["value"], 50.0);
        assert_eq!(j["baseline"], 100.0);
        assert_eq!(j["pass"], true);
        assert_eq!(j["target"], "ratio >= 0.50");
        assert_eq!(
            (j["min"].as_f64(), j["max"].as_f64()),
            (Some(40.0), Some(60.0))
        );

        let slow = Metric::new(
            "e2e_p99",
            "ms",
            Runs::new(vec![151.0]),
            Target::Value(Bound::AtMost(150.0)),
        );
        assert_eq!(slow.status(), "fail");
        assert_eq!(slow.json()["pass"], false);

        let incomplete = Metric::new(
            "fanout_poll_p99",
            "ms",
            Runs::new(vec![10.0]),
            Target::Value(Bound::AtMost(500.0)),
        )
        .with_detail(json!({"incomplete": "3 waiters never got it"}));
        assert_eq!(incomplete.status(), "fail");

        let skipped = Metric::skipped("send", "sends/s", Target::Ratio(Bound::AtLeast(0.5)), "405");
        let j = skipped.json();
        assert_eq!(
            (j["status"].as_str(), j["pass"].is_null()),
            (Some("skipped"), true)
        );
        assert_eq!(j["reason"], "405");
    }

    #[test]
    fn report_json_has_the_agreed_shape() {
        let mut r = Report::new(Machine::read(), "sqlite", true);
        r.add(
            Scenario::Footprint,
            vec![Metric::new(
                "footprint_rss",
                "MiB",
                Runs::new(vec![20.0]),
                Target::Value(Bound::AtMost(40.0)),
            )],
        );
        r.add_error(Scenario::Read, "boom");
        let j = r.json();
        for key in ["value", "baseline", "ratio", "unit", "target", "pass"] {
            assert!(j["scenarios"]["footprint_rss"].get(key).is_some(), "{key}");
        }
        assert_eq!(j["scenarios"]["read"]["status"], "error");
        assert_eq!(j["database"], "sqlite");
        assert_eq!(j["quick"], true);
        assert!(j["machine"]["cores"].as_u64().unwrap() >= 1);
        assert!(r.harness_failed());
        assert!(r.table().contains("footprint_rss"));
        assert!(r.markdown().contains("| footprint_rss | 20.0 | MiB |"));
    }
}

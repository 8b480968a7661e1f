//! `footprint`: how fast the gateway is ready and how little it holds idle.
//!
//! Each run: a fresh database, a simulator serving all three providers, and
//! a gateway configured with three accounts (Spark, ccmessaging, Kchat). The
//! clock starts just before the process is spawned and stops when
//! `/readyz` first answers 200 (asked every 2 ms; migrations of the fresh
//! database included). After a few idle seconds (the sync workers have done
//! their first rounds against the empty simulators) the harness reads the
//! gateway's `VmRSS`. The start-up target applies to SQLite; on PostgreSQL
//! the time is reported for information.

use std::time::Duration;

use serde_json::json;

use super::{note, Accounts, Ctx, Gateway, Round, Sim, SimSpec};
use crate::db::DbServer;
use crate::report::{Bound, Metric, Target};
use crate::stats::Runs;

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Metric>> {
    let idle = Duration::from_secs_f64(ctx.scale.footprint_idle_secs);
    let (mut ready, mut rss) = (vec![], vec![]);
    for round in ctx.rounds() {
        let db = ctx.fresh_db().await?;
        let result = async {
            let sim = Sim::start(
                ctx,
                SimSpec {
                    all: true,
                    batch_max: None,
                },
            )
            .await?;
            let mut gw = Gateway::start(
                ctx,
                &db,
                &sim.base,
                Accounts::Three,
                Duration::from_millis(2),
            )
            .await?;
            let started = gw.proc().started();
            let ms = gw.ready_at.duration_since(started).as_secs_f64() * 1000.0;
            tokio::time::sleep(idle).await;
            gw.proc().ensure_running()?;
            let mem = gw.proc().memory()?;
            anyhow::Ok((ms, mem.rss_mib()))
        }
        .await;
        db.cleanup().await?;
        let (ms, mib) = result?;
        note(
            "footprint",
            round,
            &format!(
                "ready in {ms:.0} ms, {mib:.1} MiB resident after {:.0} s idle",
                idle.as_secs_f64()
            ),
        );
        if let Round::Measured(_) = round {
            ready.push(ms);
            rss.push(mib);
        }
    }
    let ready_target = match ctx.server {
        DbServer::Sqlite => Target::Value(Bound::AtMost(500.0)),
        DbServer::Postgres { .. } => Target::Info("<= 500 ms applies to SQLite".into()),
    };
    Ok(vec![
        Metric::new(
            "footprint_rss",
            "MiB",
            Runs::new(rss),
            Target::Value(Bound::AtMost(40.0)),
        )
        .with_detail(json!({"accounts": 3, "idle_seconds": idle.as_secs_f64()})),
        Metric::new("footprint_ready", "ms", Runs::new(ready), ready_target),
    ])
}

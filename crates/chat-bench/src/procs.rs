//! The child processes: building them, starting them, watching their
//! memory, and killing them whatever way the harness ends.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The workspace's `Cargo.toml`, so the harness works from any directory.
fn workspace_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml")
}

/// The cargo that started us (`cargo run` sets `CARGO`), else `cargo`.
///
/// Without the variables `cargo run` sets for the program it runs: build
/// scripts (ring's, for one) declare `rerun-if-env-changed` on some of them,
/// so inheriting them would rebuild half the tree on every run.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Raises this process's open-file limit as far as allowed (65,535, or the
/// hard limit when that is lower and cannot be raised); children inherit it.
/// Returns the limit in force.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    const WANT: u64 = 65_535;
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum;
    let raised = if hard.is_none_or(|h| h >= WANT) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(WANT),
                maximum: hard,
            },
        )
        .is_ok()
    } else {
        // Raising the hard limit needs privilege; try, then settle for it.
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(WANT),
                maximum: Some(WANT),
            },
        )
        .is_ok()
    };
    if !raised {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The cargo target directory of this workspace (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let out = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(workspace_manifest())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed ({})", out.status);
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    meta.get("target_directory")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// `cargo build --release -p chat-gateway -p provider-sim`.
pub fn build_children() -> anyhow::Result<()> {
    println!("building: cargo build --release -p chat-gateway -p provider-sim");
    let status = cargo()
        .args([
            "build",
            "--release",
            "-p",
            "chat-gateway",
            "-p",
            "provider-sim",
            "--manifest-path",
        ])
        .arg(workspace_manifest())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
}

/// The executables the harness starts.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `target/release/chat-gateway`.
    pub gateway: PathBuf,
    /// `target/release/provider-sim`.
    pub sim: PathBuf,
    /// This executable (for the `read` baseline server).
    pub bench: PathBuf,
}

impl Bins {
    /// Finds the release binaries under `target_dir`.
    pub fn locate(target_dir: &Path) -> anyhow::Result<Bins> {
        let release = target_dir.join("release");
        let bins = Bins {
            gateway: release.join("chat-gateway"),
            sim: release.join("provider-sim"),
            bench: std::env::current_exe().context("locating chat-bench itself")?,
        };
        for b in [&bins.gateway, &bins.sim] {
            if !b.exists() {
                bail!("{} is missing (build it, or drop --no-build)", b.display());
            }
        }
        Ok(bins)
    }
}

/// An API key for the gateway: the key the harness sends, and the hash the
/// gateway's config holds.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// `Authorization: Bearer` value.
    pub key: String,
    /// Hex SHA-256 for `[[api_keys]]`.
    pub sha256: String,
}

impl ApiKey {
    /// Asks the gateway binary for a fresh key (`chat-gateway key generate`).
    pub fn generate(gateway: &Path) -> anyhow::Result<ApiKey> {
        let out = Command::new(gateway)
            .args(["key", "generate"])
            .output()
            .context("running chat-gateway key generate")?;
        if !out.status.success() {
            bail!("chat-gateway key generate failed ({})", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .with_context(|| format!("no `{name}` line in: {text}"))
        };
        Ok(ApiKey {
            key: field("key:")?,
            sha256: field("sha256:")?,
        })
    }
}

static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// A running child process, killed (SIGKILL) and reaped when dropped: on
/// success, on error, on panic unwinding and when the harness task is
/// aborted by Ctrl-C.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl ChildGuard {
    /// Starts `cmd` with stdout and stderr appended to a log file in `logs`.
    pub fn spawn(name: &str, cmd: &mut Command, logs: &Path) -> anyhow::Result<ChildGuard> {
        let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
        let log = logs.join(format!("{n:03}-{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let started = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(ChildGuard {
            name: name.to_string(),
            child,
            log,
            started,
        })
    }

    /// The process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When `spawn` was called (just before the process started).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Fails with the end of the child's log if it has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of the child's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Memory of the running child.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// `VmHWM` (peak RSS), KiB.
    pub hwm_kib: u64,
}

impl Memory {
    /// Reads `/proc/PID/status`.
    pub fn of(pid: u32) -> anyhow::Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Ok(Memory::parse(&text))
    }

    fn parse(status: &str) -> Memory {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    /// `VmRSS` in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// A free loopback port (bound and released; the child binds it next).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Polls `url` until it answers 200; fails if `child` exits or `timeout`
/// passes. Returns when the 200 arrived.
pub async fn wait_ok(
    client: &reqwest::Client,
    url: &str,
    child: &mut ChildGuard,
    timeout: Duration,
    every: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(resp) = client.get(url).send().await {
            if resp.status().as_u16() == 200 {
                return Ok(Instant::now());
            }
        }
        child.ensure_running()?;
        if Instant::now() > deadline {
            bail!(
                "{url} did not answer 200 within {timeout:?}; end of the log:\n{}",
                child.log_tail()
            );
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_proc_status() {
        let m = Memory::parse("Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n");
        assert_eq!(m.rss_kib, 10240);
        assert_eq!(m.hwm_kib, 20480);
        assert!((m.rss_mib() - 10.0).abs() < 1e-9);
        let own = Memory::of(std::process::id()).unwrap();
        assert!(own.rss_kib > 0);
    }
}

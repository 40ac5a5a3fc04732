//! Whole-process figures: time from exec to a connectable socket, and a
//! one-shot command (spawn, connect, ask, print, exit), each run
//! interleaved with its baseline.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::stats::Samples;

/// Spawns `cmd` (which must listen on `socket`), times exec → the first
/// successful connect, then stops it with SIGTERM.
pub fn time_to_socket(mut cmd: Command, socket: &Path) -> anyhow::Result<Duration> {
    let _ = std::fs::remove_file(socket);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
    let took = loop {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            bail!(
                "{:?} did not open {} within 10 s",
                cmd.get_program(),
                socket.display()
            );
        }
        if let Some(st) = child.try_wait()? {
            bail!("{:?} exited ({st}) before listening", cmd.get_program());
        }
        std::thread::sleep(Duration::from_micros(20));
    };
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    );
    let _ = child.wait();
    Ok(took)
}

/// Appends `n` audit records to the state database at `db`, as a busy
/// daemon would have over months, in one transaction. They are linked as
/// the daemon links them (each `prev` is the previous `hash`) but with
/// stand-in hashes: start-up never recomputes them, `audit verify` would.
pub fn fill_audit(db: &Path, n: usize) -> anyhow::Result<()> {
    let mut c = rusqlite::Connection::open(db).with_context(|| format!("open {}", db.display()))?;
    let tx = c.transaction()?;
    let start: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM audit", [], |r| r.get(0))?;
    {
        let mut ins = tx.prepare(
            "INSERT INTO audit (id, ts, kind, chain, agent, pid, binary_sha256, provider, scopes, granted, verdict, rule, reasons, outcome, prev, hash)
             VALUES (?1, ?2, 'token.get', '[\"user:bench\",\"agent:filler\"]', 'filler', 4242, ?3, 'local', 'repo:read', 'repo:read', 'allow', 'data.valetkey.builtin.allow', '[]', 'issued', ?4, ?5)",
        )?;
        let hex = |i: i64| format!("{:064x}", i);
        for i in 1..=n as i64 {
            let id = start + i;
            ins.execute(rusqlite::params![
                id,
                1_772_442_000 + i,
                hex(7),
                hex(id - 1),
                hex(id)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Runs `cmd` to completion; its wall time. Fails on a non-zero exit.
pub fn time_command(mut cmd: Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("run {:?}", cmd.get_program()))?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

/// `runs` rounds of `once(0)`, `once(1)`, … (one per name), interleaved.
pub fn interleaved(
    names: &[&str],
    runs: usize,
    mut once: impl FnMut(usize) -> anyhow::Result<Duration>,
) -> anyhow::Result<Vec<(String, Samples)>> {
    let mut out: Vec<(String, Samples)> = names
        .iter()
        .map(|n| (n.to_string(), Samples::default()))
        .collect();
    for _ in 0..runs {
        for (i, (_, s)) in out.iter_mut().enumerate() {
            let d = once(i)?;
            s.ns.push(d.as_nanos() as u64);
            s.secs += d.as_secs_f64();
        }
    }
    Ok(out)
}

/// A scratch directory for sockets, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Makes a 0700 directory under the temp dir.
    pub fn new(tag: &str) -> anyhow::Result<Scratch> {
        let p = std::env::temp_dir().join(format!("vk-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! `valetkey audit`: query, verify and export the audit trail, and
//! `valetkey agents --stats`. Queries ask the daemon; verify and export
//! open the state database read-only (the only thing the CLI ever opens
//! it for), so they work with the daemon stopped, and a security team can
//! run them on a copy of the file.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use valetkey_ipc::control::{AgentsStats, AuditQuery, AuditQueryParams};

use super::client::{connect, fail};
use super::{when, Cli, Failure};
use valetkey_core::audit::verify;
use valetkey_core::store::{AuditFilter, AuditRecord, Store};

/// Exit code of `audit verify` when the chain is broken.
pub const EXIT_TAMPERED: i32 = 5;

/// Which records.
#[derive(Debug, Args, Clone)]
pub struct Filters {
    /// Records where this agent acted or is in the chain.
    #[arg(long, global = true)]
    pub agent: Option<String>,
    /// Records about this provider.
    #[arg(long, global = true)]
    pub provider: Option<String>,
    /// Records of this kind (`token.get`, `anomaly`, `consent.decision`, …).
    #[arg(long, global = true)]
    pub kind: Option<String>,
    /// From this time: RFC 3339 (`2026-11-22T09:00:00Z`), a date, or an age (`2h`, `7d`).
    #[arg(long, global = true, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Up to this time, same forms.
    #[arg(long, global = true, value_parser = parse_time)]
    pub until: Option<i64>,
}

/// `valetkey audit` options.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Verify or export instead of listing.
    #[command(subcommand)]
    pub cmd: Option<AuditCmd>,
    /// Filters.
    #[command(flatten)]
    pub filters: Filters,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// JSON lines instead of columns.
    #[arg(long)]
    pub json: bool,
}

/// `valetkey audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain and signed checkpoints; report the first broken record.
    Verify {
        /// Trust only the keys in this JWKS file (saved earlier with `valetkey jwks`).
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Write matching records, oldest first, as JSON lines (with their hashes).
    Export {
        /// The file (created 0600); stdout without it.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

/// Parses `--since`/`--until`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    // "2h" means two hours before the moment the user typed it.
    let now = valetkey_core::clock::Clock::now(&valetkey_core::clock::SystemClock);
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now - d.as_secs() as i64);
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        })
        .map_err(|_| {
            format!("{s:?} is not a time: use RFC 3339 (2026-11-22T09:00:00Z), a date (2026-11-22) or an age (2h, 7d)")
        })
}

fn filter(f: &Filters) -> AuditFilter {
    AuditFilter {
        agent: f.agent.clone(),
        provider: f.provider.clone(),
        kind: f.kind.clone(),
        since: f.since,
        until: f.until,
        after_id: None,
    }
}

/// Opens the state database for reading only, WAL included. SQLite opens
/// a database's WAL and shared-memory index read-write (and creates them)
/// whatever flags the database was opened with, and reads them read-only
/// only when that is refused; so before opening, this thread gives up the
/// right to write any file (Landlock, every write access handled and none
/// granted), and the kernel refuses. Call it after opening anything this
/// command writes. Best effort on a kernel without Landlock (before 5.13),
/// where only the database itself is opened read-only.
///
/// With the daemon stopped (no WAL), the file is read as it is; call
/// [`unchanged`] at the end, which fails if a daemon started meanwhile.
fn open() -> Result<Store, Failure> {
    use landlock::{AccessFs, Ruleset, RulesetAttr, ABI};
    let restricted = Ruleset::default()
        .handle_access(AccessFs::from_write(ABI::V5))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self());
    if let Err(e) = restricted {
        return Err(Failure::from(format!(
            "cannot give up writing before reading the audit trail: {e}"
        )));
    }
    Ok(Store::open_read_only(&valetkey_core::dirs::db_path())?)
}

/// Whether what [`open`] read stayed still: with no WAL when it opened (no
/// daemon), one now means a daemon started and may have written the file
/// while it was read.
fn unchanged(wal_before: bool) -> Result<(), Failure> {
    let wal = valetkey_core::store::wal_path(&valetkey_core::dirs::db_path());
    if !wal_before && wal.exists() {
        return Err(Failure::from(
            "valetkeyd started while the audit trail was read, so what was read may be torn; run the command again",
        ));
    }
    Ok(())
}

fn wal_exists() -> bool {
    valetkey_core::store::wal_path(&valetkey_core::dirs::db_path()).exists()
}

fn line(r: &AuditRecord) -> String {
    let what = match (&r.verdict, &r.rule) {
        (Some(v), Some(rule)) if r.reasons.is_empty() => format!("{v} by {rule}"),
        (Some(v), Some(rule)) => format!("{v} by {rule}: {}", r.reasons.join("; ")),
        _ => r.detail.clone().unwrap_or_default(),
    };
    let scopes = if r.granted.is_empty() || r.granted == r.scopes {
        r.scopes.join(" ")
    } else {
        format!("{} → {}", r.scopes.join(" "), r.granted.join(" "))
    };
    format!(
        "{:>6}  {}  {:<17} {:<28} {:<36} {:<9} {:<24} {}",
        r.id,
        when(Some(r.ts)),
        r.kind,
        r.outcome,
        r.chain.join(" → "),
        r.provider.as_deref().unwrap_or("-"),
        if scopes.is_empty() {
            "-".into()
        } else {
            scopes
        },
        what
    )
}

/// Runs `valetkey audit …`.
pub async fn audit(cli: &Cli, a: &AuditArgs) -> Result<(), Failure> {
    match &a.cmd {
        None => list(cli, a).await,
        Some(AuditCmd::Verify { jwks, json }) => verify_cmd(jwks.as_ref(), *json),
        Some(AuditCmd::Export { out }) => export(&a.filters, out.as_ref()),
    }
}

async fn list(cli: &Cli, a: &AuditArgs) -> Result<(), Failure> {
    let f = &a.filters;
    let rows = connect(cli)
        .await?
        .call::<AuditQuery>(&AuditQueryParams {
            agent: f.agent.clone(),
            provider: f.provider.clone(),
            kind: f.kind.clone(),
            since: f.since,
            until: f.until,
            limit: Some(a.limit.clamp(1, 10_000)),
        })
        .await
        .map_err(fail)?
        .records;
    if !a.json && !rows.is_empty() {
        println!(
            "{:>6}  {:<20}  {:<17} {:<28} {:<36} {:<9} {:<24} DETAIL",
            "SEQ", "TIME (UTC)", "KIND", "OUTCOME", "CHAIN", "PROVIDER", "SCOPES"
        );
    }
    for r in rows {
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("{}", line(&r));
        }
    }
    Ok(())
}

fn verify_cmd(jwks: Option<&PathBuf>, json: bool) -> Result<(), Failure> {
    let wal_before = wal_exists();
    let store = open()?;
    let keys = match jwks {
        Some(p) => verify::keys_from_jwks(
            &std::fs::read_to_string(p)
                .map_err(|e| Failure::from(format!("cannot read {}: {e}", p.display())))?,
        )?,
        None => verify::keys_from_store(&store)?,
    };
    let r = verify::verify(&store, &keys)?;
    unchanged(wal_before)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if let Some(b) = &r.broken {
        println!(
            "BROKEN at record {}: {}. {} record(s) before it verified.\n\
             Keep this database as evidence (copy state.db, -wal and -shm), compare it with an \
             earlier `valetkey audit export`, and find out who could write {}.",
            b.seq,
            b.reason,
            r.records,
            valetkey_core::dirs::db_path().display()
        );
    } else {
        println!(
            "OK: {} record(s) ({}..{}) chain correctly; {} signed checkpoint(s), the last at {}; {} newer record(s) not yet signed.",
            r.records,
            r.first.unwrap_or(0),
            r.last.unwrap_or(0),
            r.checkpoints,
            r.last_checkpoint.map_or("none".into(), |c| c.to_string()),
            r.unsigned_tail
        );
    }
    match r.broken {
        Some(_) => Err(Failure {
            code: EXIT_TAMPERED,
            message: "the audit trail does not verify".into(),
        }),
        None => Ok(()),
    }
}

fn export(f: &Filters, out: Option<&PathBuf>) -> Result<(), Failure> {
    // The output first: once the store is open, this thread writes no file.
    let mut w: Box<dyn Write> = match out {
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            Box::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(p)
                    .map_err(|e| Failure::from(format!("cannot write {}: {e}", p.display())))?,
            ))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let wal_before = wal_exists();
    let store = open()?;
    let mut q = filter(f);
    let mut n = 0u64;
    loop {
        let page = store.query_audit(&q, 1000, true)?;
        let Some(last) = page.last() else { break };
        q.after_id = Some(last.id);
        for r in &page {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
            n += 1;
        }
    }
    w.flush()?;
    unchanged(wal_before)?;
    if let Some(p) = out {
        eprintln!("Exported {n} record(s) to {}.", p.display());
    }
    Ok(())
}

/// `valetkey agents --stats`.
pub async fn stats(cli: &Cli, json: bool) -> Result<(), Failure> {
    let mut c = connect(cli).await?;
    let v = c
        .call::<AgentsStats>(&Default::default())
        .await
        .map_err(fail)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if v.is_empty() {
        println!("No agent has made a request since the daemon started.");
        return Ok(());
    }
    println!(
        "{:<24} {:>8} {:>8} {:>7} {:>9} {:>7} {:>9} {:>7} {:>9}  LAST ANOMALY",
        "AGENT",
        "REQUESTS",
        "REFUSED",
        "THIS MIN",
        "BASELINE",
        "WRITES",
        "ERR/5MIN",
        "SCOPES",
        "ANOMALIES"
    );
    for s in v {
        println!(
            "{:<24} {:>8} {:>8} {:>7} {:>9.1} {:>7} {:>9} {:>7} {:>9}  {}",
            s.agent,
            s.requests,
            s.refusals,
            s.last_minute,
            s.baseline_per_minute,
            s.writes_last_minute,
            format!("{}/{}", s.errors_last_5m, s.requests_last_5m),
            s.known_scopes,
            s.anomalies,
            match (&s.last_anomaly, s.last_anomaly_at) {
                (Some(r), t) => format!("{r} at {}", when(t)),
                _ => "-".into(),
            }
        );
    }
    Ok(())
}

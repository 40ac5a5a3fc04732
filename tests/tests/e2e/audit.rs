//! The audit trail end to end: real events from real processes are
//! chained, filterable, exportable and verifiable; tampering with the
//! database file is caught by `valetkey audit verify`; a full disk refuses
//! hand-outs (fail closed) and the daemon recovers; anomaly rules fire on
//! real traffic and can suspend the agent.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use valetkey_ipc::control::{AgentsStats, Event};
use valetkey_ipc::methods::{TokenGetParams, Whoami};

use crate::harness::{code, subscribed, TestEnv};

fn records(env: &TestEnv, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["audit", "--json", "--limit", "10000"];
    a.extend_from_slice(args);
    env.cli_ok(&a)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn kinds(rs: &[serde_json::Value]) -> Vec<String> {
    rs.iter()
        .map(|r| r["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn db(env: &TestEnv) -> rusqlite::Connection {
    rusqlite::Connection::open(env.path("data/valetkey/state.db")).expect("open db")
}

#[tokio::test]
async fn events_are_chained_filterable_exportable_and_tampering_is_caught() {
    let (mut env, mut agent) = TestEnv::with_agent("auditor", &["repo:read"]).await;
    let t = agent.token("local", &["repo:read"]).await.expect("token");
    let refused = agent
        .token("local", &["repo:write"])
        .await
        .expect_err("not granted");
    assert_eq!(code(&refused), Some("scope_not_granted"));

    // Every kind of event so far, with the facts that matter.
    let all = records(&env, &[]);
    let k = kinds(&all);
    for want in ["login", "grant", "hello", "refresh", "token.get"] {
        assert!(k.iter().any(|x| x == want), "no {want} record in {k:?}");
    }
    let mine = records(&env, &["--agent", "auditor", "--kind", "token.get"]);
    assert_eq!(mine.len(), 2, "{mine:?}");
    let (bad, good) = (&mine[0], &mine[1]);
    assert_eq!(good["outcome"], "issued");
    assert_eq!(good["granted"], serde_json::json!(t.scopes));
    assert_eq!(good["verdict"], "allow");
    assert_eq!(bad["outcome"], "refused:scope_not_granted");
    let chain = good["chain"].as_array().expect("chain");
    assert!(chain[0].as_str().expect("user").starts_with("user:"));
    assert_eq!(chain[1], "agent:auditor");
    assert_eq!(good["pid"], std::process::id());
    assert_eq!(good["binary_sha256"].as_str().map(str::len), Some(64));
    assert_eq!(good["prev"].as_str().map(str::len), Some(64));
    // Filters.
    let refresh = records(&env, &["--provider", "local", "--kind", "refresh"]);
    assert!(
        refresh
            .iter()
            .any(|r| r["outcome"] == "rotated" || r["outcome"] == "refreshed"),
        "{refresh:?}"
    );
    assert!(!records(&env, &["--since", "1h"]).is_empty());
    assert!(records(&env, &["--until", "2001-01-01"]).is_empty());
    assert!(records(&env, &["--agent", "nobody"]).is_empty());
    let o = env.cli(&["audit", "--since", "yesterday-ish"]);
    assert_eq!(o.status.code(), Some(2), "a bad time is a usage error");
    let table = env.cli_ok(&["audit", "--agent", "auditor"]);
    assert!(
        table.starts_with("   SEQ") && table.contains("agent:auditor"),
        "{table}"
    );
    // Records reach the log (journald under systemd) as structured events.
    assert!(
        env.log().contains("audit seq="),
        "no audit events in the log"
    );

    // A clean stop signs the head.
    env.stop_daemon();
    let out = env.cli_ok(&["audit", "verify"]);
    assert!(
        out.starts_with("OK:") && out.contains("0 newer record(s) not yet signed"),
        "{out}"
    );

    // Export: every record, oldest first, hashes included, private file.
    let file = env.path("export.jsonl");
    env.cli_ok(&["audit", "export", "--out", file.to_str().expect("path")]);
    let text = std::fs::read_to_string(&file).expect("export");
    let exported: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(exported.len(), all.len());
    assert_eq!(exported[0]["id"], 1);
    assert_eq!(exported[0]["prev"], "0".repeat(64));
    assert_eq!(exported[1]["prev"], exported[0]["hash"]);
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Tampering with the file, three ways.
    let n = all.len() as i64;
    let c = db(&env);
    c.execute(
        "UPDATE audit SET outcome = 'issued' WHERE id = ?1",
        [bad["id"].as_i64()],
    )
    .expect("edit");
    let o = env.cli(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(5), "{text}");
    assert!(
        text.contains(&format!("BROKEN at record {}", bad["id"])),
        "{text}"
    );
    c.execute(
        "UPDATE audit SET outcome = 'refused:scope_not_granted' WHERE id = ?1",
        [bad["id"].as_i64()],
    )
    .expect("undo");
    env.cli_ok(&["audit", "verify"]);
    c.execute("DELETE FROM audit WHERE id = 3", [])
        .expect("delete");
    let o = env.cli(&["audit", "verify", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["broken"]["seq"], 3, "{r}");
    // Restore from the export, then cut the tail: the checkpoint shows it.
    let e3 = &exported[2];
    c.execute(
        "INSERT INTO audit (id, ts, kind, chain, agent, pid, binary_sha256, provider, scopes, granted, consent_id, action, resource_owner, verdict, rule, reasons, outcome, detail, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        rusqlite::params![
            e3["id"].as_i64(), e3["ts"].as_i64(), e3["kind"].as_str(), e3["chain"].to_string(),
            e3["agent"].as_str(), e3["pid"].as_i64(), e3["binary_sha256"].as_str(), e3["provider"].as_str(),
            e3["scopes"].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
            e3["granted"].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
            e3["consent_id"].as_str(), e3["action"].as_str(), e3["resource_owner"].as_str(),
            e3["verdict"].as_str(), e3["rule"].as_str(), e3["reasons"].to_string(), e3["outcome"].as_str(),
            e3["detail"].as_str(), e3["prev"].as_str(), e3["hash"].as_str(),
        ],
    )
    .expect("restore");
    env.cli_ok(&["audit", "verify"]);
    c.execute("DELETE FROM audit WHERE id > ?1", [n - 2])
        .expect("truncate");
    let o = env.cli(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(5));
    assert!(text.contains("truncated"), "{text}");
}

/// A tmpfs mounted over a directory, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: std::path::PathBuf, size: &str) -> SmallDisk {
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .expect("mount");
        assert!(st.success(), "cannot mount a tmpfs (the tests run as root)");
        SmallDisk(path)
    }

    /// Fills the disk to the last byte.
    fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .stderr(std::process::Stdio::null())
            .status();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).expect("rm filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_hand_outs_with_a_clear_code_and_the_daemon_recovers() {
    let mut env = TestEnv::new().expect("env");
    env.write_config("[limits]\nrequests_per_second = 100000\nburst = 100000\n")
        .expect("config");
    // Only the daemon's own directory: the keyring lives beside it.
    std::fs::create_dir_all(env.path("data/valetkey")).expect("mkdir");
    let disk = SmallDisk::mount(env.path("data/valetkey"), "3m");
    env.start_daemon().expect("daemon");
    env.login();
    env.grant_self("filler", &["repo:read"]);
    let mut agent = env.agent("filler").await;
    agent.token("local", &["repo:read"]).await.expect("token");
    let before = std::fs::metadata(env.path("data/valetkey/state.db"))
        .expect("db")
        .len();
    assert!(before > 0);

    disk.fill();
    // A repeat hand-out on one connection is only counted; the first one on
    // each connection is written durably. So every round opens a new one.
    let mut refused = None;
    for i in 0..5000 {
        let round = async {
            let mut c = valetkey_ipc::Client::connect(&env.socket).await?;
            c.hello(valetkey_ipc::methods::AgentInfo {
                name: "filler".into(),
                version: "1".into(),
                purpose: "fills the disk".into(),
            })
            .await?;
            c.token("local", &["repo:read"]).await
        };
        match round.await {
            Ok(_) => continue,
            Err(e) => {
                refused = Some((i, code(&e).map(str::to_owned), e.to_string()));
                break;
            }
        }
    }
    let (i, c, msg) = refused.expect("the full disk must refuse a hand-out");
    assert!(
        matches!(
            c.as_deref(),
            Some("audit_unavailable" | "state_unavailable")
        ),
        "after {i} requests: {c:?} {msg}"
    );
    assert!(
        msg.contains("disk") || msg.contains("Free"),
        "says what to do: {msg}"
    );
    assert!(env.daemon_alive(), "the daemon keeps running");

    disk.free();
    let t = agent
        .token("local", &["repo:read"])
        .await
        .expect("served again");
    assert!(!t.access_token.expose().is_empty());
    env.stop_daemon();
    let out = env.cli_ok(&["audit", "verify"]);
    assert!(out.starts_with("OK:"), "nothing half-written: {out}");
}

async fn anomalies(ctl: &mut valetkey_ipc::Client, n: usize) -> Vec<(String, bool)> {
    let mut fired = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fired.len() < n && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(Event::Anomaly {
            rule, suspended, ..
        })) = tokio::time::timeout(Duration::from_secs(5), ctl.next_event()).await
        {
            fired.push((rule, suspended));
        }
    }
    fired
}

#[tokio::test]
async fn anomaly_rules_fire_on_real_traffic_and_can_suspend_the_agent() {
    let mut env = TestEnv::new().expect("env");
    let monitor =
        |on: &str| format!("[monitor]\non_anomaly = \"{on}\"\nerrors_min = 5\nerror_ratio = 0.2\n");
    env.write_config(&monitor("alert")).expect("config");
    env.start_daemon().expect("daemon");
    env.login();
    env.grant_self("prober", &["repo:read", "issues:read"]);
    let mut events = subscribed(&env).await;
    let mut ctl = env.control().await;
    let mut agent = env.agent("prober").await;

    // Normal traffic: nothing fires.
    for _ in 0..10 {
        agent.token("local", &["repo:read"]).await.expect("token");
    }
    let stats = ctl
        .call::<AgentsStats>(&Default::default())
        .await
        .expect("stats");
    let s = stats.iter().find(|s| s.agent == "prober").expect("prober");
    assert_eq!((s.anomalies, s.refusals), (0, 0), "{s:?}");
    assert_eq!(s.requests, 11, "hello and ten tokens: {s:?}");

    // A scope it never used, then probing for what it was not given.
    agent.token("local", &["issues:read"]).await.expect("token");
    for _ in 0..5 {
        let e = agent
            .token("local", &["repo:write"])
            .await
            .expect_err("probe");
        assert_eq!(code(&e), Some("scope_not_granted"));
    }
    let fired = anomalies(&mut events, 2).await;
    assert_eq!(
        fired,
        [
            ("first_use".to_string(), false),
            ("error_rate".to_string(), false)
        ]
    );
    let recs = records(&env, &["--kind", "anomaly", "--agent", "prober"]);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(
        recs[1]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("issues:read"),
        "{recs:?}"
    );
    assert!(
        recs[0]["detail"].as_str().unwrap_or("").contains("5 of"),
        "{recs:?}"
    );
    let out = env.cli_ok(&["agents", "--stats"]);
    assert!(
        out.contains("prober") && out.contains("error_rate"),
        "{out}"
    );
    // Alert only: still served.
    agent
        .token("local", &["repo:read"])
        .await
        .expect("alert only");
    drop((agent, events, ctl));

    // With on_anomaly = "suspend", the same probing suspends the agent.
    env.stop_daemon();
    env.write_config(&monitor("suspend")).expect("config");
    env.start_daemon().expect("daemon");
    let mut events = subscribed(&env).await;
    let mut agent = env.agent("prober").await;
    agent
        .token("local", &["issues:read"])
        .await
        .expect("known scope, after a restart");
    for _ in 0..5 {
        let _ = agent.token("local", &["repo:write"]).await;
    }
    assert_eq!(
        anomalies(&mut events, 1).await,
        [("error_rate".to_string(), true)]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = env.agent("prober").await;
    let e = again
        .call::<valetkey_ipc::methods::TokenGet>(&TokenGetParams::new("local", &["repo:read"]))
        .await
        .expect_err("suspended");
    assert_eq!(code(&e), Some("agent_suspended"));
    let _ = again.call::<Whoami>(&Default::default()).await;
}

/// Waits (up to 5 s) until `args` finds `n` records.
fn wait_for_records(env: &TestEnv, args: &[&str], n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rs = records(env, args);
        if rs.len() >= n || std::time::Instant::now() > deadline {
            return rs;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn repeats_are_counted_not_written_and_a_kill_loses_only_the_counters() {
    let (mut env, mut agent) = TestEnv::with_agent("repeater", &["repo:read"]).await;
    let first = agent.token("local", &["repo:read"]).await.expect("first");
    for _ in 0..5 {
        let t = agent.token("local", &["repo:read"]).await.expect("repeat");
        assert_eq!(
            t.access_token.expose(),
            first.access_token.expose(),
            "cached"
        );
    }
    // The first hand-out is on record; the five repeats are only counted.
    let issued = records(&env, &["--agent", "repeater", "--kind", "token.get"]);
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert!(records(&env, &["--kind", "token.reused"]).is_empty());

    // The connection closes: one token.reused record with the count.
    drop(agent);
    let reused = wait_for_records(&env, &["--kind", "token.reused"], 1);
    assert_eq!(reused.len(), 1, "{reused:?}");
    let r = &reused[0];
    let detail = r["detail"].as_str().unwrap_or("");
    assert!(
        detail.starts_with("5 more hand-out(s)")
            && detail.contains(&format!("record {}", issued[0]["id"])),
        "{detail}"
    );
    assert_eq!(r["agent"], "repeater");
    assert_eq!(r["granted"], serde_json::json!(["repo:read"]));
    assert_eq!(r["pid"], std::process::id());

    // kill -9 between two flushes: a new connection's first hand-out was
    // written before the token went out; its repeats were still counters.
    let mut agent = env.agent("repeater").await;
    for _ in 0..4 {
        agent.token("local", &["repo:read"]).await.expect("token");
    }
    env.daemon().expect("daemon").kill().expect("kill -9");
    let _ = env.daemon().expect("daemon").wait();
    env.start_daemon().expect("restart");
    let issued = records(&env, &["--agent", "repeater", "--kind", "token.get"]);
    assert_eq!(issued.len(), 2, "both first issuances survived: {issued:?}");
    assert_eq!(
        records(&env, &["--kind", "token.reused"]).len(),
        1,
        "the lost counters are all that is missing"
    );
    let out = env.cli_ok(&["audit", "verify"]);
    assert!(out.starts_with("OK:"), "{out}");
}

/// The successful opens of `state.db`, its WAL and its `-shm` in an
/// strace log (a refused attempt, `= -1 EACCES`, wrote nothing).
fn db_opens(trace: &str) -> Vec<&str> {
    trace
        .lines()
        .filter(|l| l.contains("state.db"))
        .filter(|l| !l.contains("= -1 "))
        .collect()
}

/// One writer of state (issue 32): `valetkey audit verify` and
/// `audit export` open the database, its WAL and its shared-memory index
/// read-only, while the daemon runs and after it stopped. strace, on the
/// real CLI, sees every open. Before, SQLite opened the WAL
/// `O_RDWR|O_CREAT` whatever the database's read-only flag.
#[test]
fn audit_verify_and_export_open_the_database_and_its_wal_read_only() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    for running in [true, false] {
        if !running {
            env.stop_daemon();
        }
        for args in [&["audit", "verify"][..], &["audit", "export"][..]] {
            let log = env.path("strace.log");
            let out = env
                .command("strace")
                .args(["-f", "-qq", "-e", "trace=open,openat,openat2,creat", "-o"])
                .arg(&log)
                .arg(crate::harness::bin("valetkey"))
                .args(args)
                .output()
                .expect("strace (apt-get install strace)");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{args:?} (daemon running: {running}): {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            if args[1] == "verify" {
                assert!(stdout.starts_with("OK: "), "{stdout}");
            } else {
                assert!(stdout.contains("\"kind\":\"login\""), "{stdout}");
            }
            let trace = std::fs::read_to_string(&log).expect("strace log");
            let opens = db_opens(&trace);
            assert!(
                opens.iter().any(|l| l.contains("state.db\"")),
                "the database was not opened at all:\n{trace}"
            );
            if running {
                assert!(
                    opens.iter().any(|l| l.contains("state.db-wal\"")),
                    "the WAL, which holds the newest records, was not read:\n{trace}"
                );
            }
            for l in &opens {
                assert!(
                    l.contains("O_RDONLY") && !l.contains("O_CREAT"),
                    "{args:?} (daemon running: {running}) opened for writing: {l}"
                );
            }
        }
    }
}

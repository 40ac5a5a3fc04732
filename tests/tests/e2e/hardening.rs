//! Attacks on the daemon itself: its process memory, its runtime
//! directory, its connection limits, a socket handed on after its process
//! exited, and a full leak check over everything a run writes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use valetkey_ipc::methods::{DelegationCreate, DelegationCreateParams, Whoami};

use crate::harness::{code, wait_until, TestEnv};
use crate::raw::{name, Raw, HELLO};

fn other_user() -> u32 {
    let _ = Command::new("useradd")
        .args(["--system", "--no-create-home", "vk-other"])
        .output();
    let out = Command::new("id")
        .args(["-u", "vk-other"])
        .output()
        .expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("vk-other exists")
}

fn proc_field(pid: u32, file: &str, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .expect("proc")
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_daemon_is_not_dumpable_writes_no_core_and_locks_its_memory() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let pid = env.daemon().expect("daemon").id();
    let core = proc_field(pid, "limits", "Max core file size");
    assert!(
        core.split_whitespace().filter(|w| *w == "0").count() == 2,
        "{core}"
    );
    let locked: u64 = proc_field(pid, "status", "VmLck:")
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(locked > 0, "as root (no memlock limit) memory is locked");
    assert!(env
        .log()
        .contains("not_dumpable=true no_core=true memory_locked=true"));

    // Not dumpable is visible from outside when the daemon runs as a normal
    // user: its /proc files then belong to root, not to that user, so no
    // other process of the user can read its memory or ptrace it.
    let uid = other_user();
    let dir = tempfile::Builder::new()
        .prefix("vk-dump")
        .tempdir_in("/tmp")
        .expect("dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let daemon = dir.path().join("valetkeyd");
    crate::harness::copy_bin("valetkeyd", &daemon);
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("run")).expect("mkdir");
    std::fs::set_permissions(home.join("run"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(&home)
        .status()
        .expect("chown");
    let as_other = |prog: &std::path::Path, args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid",
                &uid.to_string(),
                "--regid",
                &uid.to_string(),
                "--clear-groups",
                "--",
            ])
            .arg(prog)
            .args(args)
            .env_clear()
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv")
    };
    let mut d = as_other(&daemon, &[]);
    let mut plain = as_other(std::path::Path::new("/bin/sleep"), &["30"]);
    let sock = home.join("run/valetkey/agent.sock");
    wait_until(Duration::from_secs(10), || sock.exists()).expect("daemon as vk-other started");
    let owner = |pid: u32| {
        std::fs::metadata(format!("/proc/{pid}/environ"))
            .expect("proc")
            .uid()
    };
    assert_eq!(owner(plain.id()), uid, "an ordinary process of the user");
    assert_eq!(owner(d.id()), 0, "valetkeyd is not dumpable");
    let _ = d.kill();
    let _ = plain.kill();
    let mut log = String::new();
    use std::io::Read;
    let _ = d.stderr.take().expect("stderr").read_to_string(&mut log);
    let _ = d.wait();
    let _ = plain.wait();
    assert!(
        log.contains("memory not locked: the memlock limit is finite"),
        "{log}"
    );
}

#[tokio::test]
async fn a_runtime_dir_with_the_wrong_mode_or_owner_is_refused() {
    let mut env = TestEnv::new().expect("env");
    let dir = env.socket.parent().expect("dir").to_owned();
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(env.start_daemon().is_err(), "0755 runtime dir accepted");
    assert!(env.log().contains("it must be 0700"), "{}", env.log());
    assert!(!env.daemon_alive());

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let uid = other_user();
    Command::new("chown")
        .arg(uid.to_string())
        .arg(&dir)
        .status()
        .expect("chown");
    assert!(env.start_daemon().is_err(), "foreign runtime dir accepted");
    assert!(
        env.log().contains(&format!("is owned by uid {uid}")),
        "{}",
        env.log()
    );

    Command::new("chown")
        .arg("0")
        .arg(&dir)
        .status()
        .expect("chown");
    env.start_daemon().expect("a private dir works");
}

const WHOAMI: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"whoami\"}\n";

#[tokio::test]
async fn slowloris_rate_and_connection_limits_hold_without_harming_others() {
    let mut env = TestEnv::new().expect("env");
    env.write_config(
        "[limits]\nframe_timeout = \"2s\"\nrequests_per_second = 5\nburst = 5\nmax_connections = 6\n",
    )
    .expect("config");
    env.start_daemon().expect("daemon");
    env.login();
    env.grant_self("bystander", &["repo:read"]);
    let mut good = env.agent("bystander").await;

    // A byte a second: cut after the frame timeout, with an error.
    let mut slow = Raw::connect(&env.socket).await;
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for b in HELLO.iter().take(HELLO.len() - 1) {
            if !slow.send(&[*b]).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        slow
    });
    // Meanwhile the good agent is served.
    for _ in 0..3 {
        good.token("local", &["repo:read"])
            .await
            .expect("served during slowloris");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut slow = sender.await.expect("sender");
    let v = slow.recv().await.expect("error before close");
    assert_eq!(name(&v), "frame_timeout", "{v}");
    assert!(slow.recv().await.is_none(), "closed");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "cut within the timeout's range, took {took:?}"
    );

    // Rate: a burst of 5, then rate_limited with a retry hint; the
    // connection stays, and after the hint it is served again.
    let mut fast = Raw::connect(&env.socket).await;
    fast.send(HELLO).await;
    fast.recv().await.expect("hello");
    let mut limited = None;
    for _ in 0..12 {
        fast.send(WHOAMI).await;
        let v = fast.recv().await.expect("reply");
        if name(&v) == "rate_limited" {
            limited = Some(v);
            break;
        }
    }
    let v = limited.expect("rate limited within 12 requests");
    let wait = v["error"]["data"]["retry_after_ms"]
        .as_u64()
        .expect("retry hint");
    assert!(wait > 0 && wait <= 1000, "{v}");
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    fast.send(WHOAMI).await;
    assert!(
        fast.recv().await.expect("reply")["result"].is_object(),
        "served after waiting"
    );
    good.call::<Whoami>(&Default::default())
        .await
        .expect("others unaffected");

    // Connection cap: good + fast hold two; four more fit, the seventh is
    // turned away with an error.
    let mut held = vec![];
    for _ in 0..4 {
        let mut r = Raw::connect(&env.socket).await;
        r.send(HELLO).await;
        r.recv().await.expect("admitted");
        held.push(r);
    }
    let mut over = Raw::connect(&env.socket).await;
    let v = over.recv().await.expect("error");
    assert_eq!(name(&v), "too_many_connections", "{v}");
    assert_eq!(v["error"]["data"]["limit"], "max_connections", "{v}");
    assert!(over.recv().await.is_none());
    // control.sock counts apart: the user can still pause and resume.
    env.cli_ok(&["pause"]);
    env.cli_ok(&["resume"]);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut r = Raw::connect(&env.socket).await;
    r.send(HELLO).await;
    assert!(r.recv().await.expect("admitted")["result"].is_object());
    assert!(env.daemon_alive());
}

#[tokio::test]
async fn a_socket_kept_after_its_process_exited_is_refused() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    // The parent connects and says hello, forks, and exits; the child
    // keeps the socket (as a recycled pid would find it) and asks again.
    let script = r#"
import json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def call(i, m):
    f.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": {"protocol": 1, "agent": {"name": "forker"}} if m == "hello" else {}}) + "\n").encode()); f.flush()
    return json.loads(f.readline() or "null")
assert "result" in call(1, "hello")
assert "result" in call(2, "whoami")
r, w = os.pipe()
if os.fork() == 0:
    os.close(w); os.read(r, 1)            # wait for the parent to be gone
    time.sleep(0.3)
    print(json.dumps(call(3, "whoami"))); print(json.dumps(f.readline().decode() or None)); sys.stdout.flush()
    os._exit(0)
os._exit(0)
"#;
    let out = env
        .command("/usr/bin/python3")
        .args(["-c", script])
        .arg(&env.socket)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = tokio::task::spawn_blocking(move || out.wait_with_output())
        .await
        .expect("join")
        .expect("output");
    // stdout stays open until the child exits, so this holds its lines.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let answer: serde_json::Value =
        serde_json::from_str(lines.next().expect("child answered")).expect("json");
    assert_eq!(name(&answer), "peer_changed", "{text}");
    assert_eq!(
        lines.next(),
        Some("null"),
        "then the daemon hung up: {text}"
    );
    assert!(env
        .log()
        .contains("the peer process is gone or its pid was reused"));
    assert!(env.daemon_alive());
}

#[tokio::test]
async fn a_full_run_leaks_no_token_anywhere() {
    let (mut env, mut agent) = TestEnv::with_agent("leaky", &["repo:read", "issues:read"]).await;
    let mut secrets = vec![];
    let rt1 = env.keychain_refresh_token().expect("refresh token");
    secrets.push(rt1);
    for scopes in [
        &["repo:read"][..],
        &["issues:read"],
        &["repo:read", "issues:read"],
    ] {
        let t = agent.token("local", scopes).await.expect("token");
        secrets.push(t.access_token.expose().to_owned());
    }
    // Refreshes rotated the refresh token: that one too.
    let rt2 = env.keychain_refresh_token().expect("refresh token");
    secrets.push(rt2);
    // A delegation token and what the sub-agent gets with it.
    let d = agent
        .call::<DelegationCreate>(&DelegationCreateParams {
            sub_agent: "leaky-sub".into(),
            provider: "local".into(),
            scopes: vec!["repo:read".into()],
            ttl_secs: 600,
            max_depth: None,
            wait: None,
        })
        .await
        .expect("delegate");
    secrets.push(d.token.expose().to_owned());
    let refused = agent
        .token("local", &["repo:write"])
        .await
        .expect_err("refused");
    assert_eq!(code(&refused), Some("scope_not_granted"));
    // CLI output along the way, an export, a verify, a logout.
    let export = env.path("audit.jsonl");
    let mut outputs = vec![];
    for args in [
        vec!["audit", "--json"],
        vec!["audit"],
        vec!["agents", "--stats"],
        vec!["audit", "export", "--out", export.to_str().expect("path")],
    ] {
        let o = env.cli(&args);
        outputs.push(String::from_utf8_lossy(&o.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    env.stop_daemon();
    let o = env.cli(&["audit", "verify"]);
    assert!(o.status.success());
    let o = env.cli(&["logout", "local"]);
    outputs.push(String::from_utf8_lossy(&o.stdout).into_owned());
    outputs.push(String::from_utf8_lossy(&o.stderr).into_owned());
    outputs.push(std::fs::read_to_string(&export).expect("export"));
    assert!(
        outputs.iter().any(|o| o.contains("token.get")),
        "the run was recorded"
    );
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    env.assert_no_leaks(&secrets, &refs);
    eprintln!(
        "leak check: {} secrets x {} files and {} outputs: 0 hits",
        secrets.len(),
        env.secret_free_files().len(),
        refs.len()
    );
}

const STATUS: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n";

/// control.sock's frames pass the agent socket's checks (issue 32): it is
/// the user's, but any process of the user's may connect and try. Before,
/// its loop had none: a slow frame held a connection forever, a flood was
/// served in full, and a stream of garbage or unknown methods was read on.
#[tokio::test]
async fn the_control_socket_has_the_agent_sockets_guards() {
    let mut env = TestEnv::new().expect("env");
    env.write_config("[limits]\nframe_timeout = \"2s\"\nrequests_per_second = 5\nburst = 5\n")
        .expect("config");
    env.start_daemon().expect("daemon");
    let control = env.socket.with_file_name("control.sock");

    // A frame left unfinished: cut after the timeout, with an error.
    let mut slow = Raw::connect(&control).await;
    slow.send(&STATUS[..10]).await;
    let started = Instant::now();
    let v = tokio::time::timeout(Duration::from_secs(10), slow.recv())
        .await
        .expect("cut, not held")
        .expect("an error before the close");
    assert_eq!(name(&v), "frame_timeout", "{v}");
    assert!(slow.recv().await.is_none(), "closed");
    assert!(started.elapsed() >= Duration::from_secs(2));

    // A flood: the burst, then rate_limited with a retry hint.
    let mut fast = Raw::connect(&control).await;
    let mut limited = None;
    for _ in 0..12 {
        fast.send(STATUS).await;
        let v = fast.recv().await.expect("reply");
        if name(&v) == "rate_limited" {
            limited = Some(v);
            break;
        }
    }
    let v = limited.expect("rate limited within 12 requests");
    assert!(
        v["error"]["data"]["retry_after_ms"].as_u64().is_some(),
        "{v}"
    );

    // Unknown methods: the third closes; garbage closes at once.
    let mut probe = Raw::connect(&control).await;
    for i in 1..=3 {
        probe
            .send(format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"x.{i}\"}}\n").as_bytes())
            .await;
        let v = probe.recv().await.expect("reply");
        assert_eq!(name(&v), "unknown_method", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("consent.decide"),
            "the methods are listed: {v}"
        );
    }
    assert!(probe.recv().await.is_none(), "closed after the third");
    let mut garbage = Raw::connect(&control).await;
    garbage.send(b"this is not json\n").await;
    assert_eq!(name(&garbage.recv().await.expect("reply")), "parse_error");
    assert!(garbage.recv().await.is_none(), "closed after garbage");

    // The user is still served.
    env.cli_ok(&["pause"]);
    env.cli_ok(&["resume"]);
    assert!(env.daemon_alive());
}

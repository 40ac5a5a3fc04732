//! `valetkey run`: agents in a real bubblewrap box against the real daemon,
//! keychain and IdP. A hostile script (tests/boxes/probe.py) tries every
//! way around the broker that a process running as the user has; in the
//! box each fails with its specific error, and the same script outside
//! the box succeeds at them, which is what makes each assertion able to
//! fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use valetkey_ipc::control::{ConsentRequest, Decision};
use valetkey_ipc::methods::{TokenGet, TokenGetParams};

use crate::harness::{bin, code, decide, next_consent, repo, subscribed, wait_until, TestEnv};

/// A value that must never reach a box's environment.
const LEAKED: &str = "ghp_launcher_environment_secret_0123456789";

fn env_up(extra: &str) -> TestEnv {
    let mut env = TestEnv::new().expect("env");
    env.write_config(extra).expect("config");
    env.start_daemon().expect("daemon");
    env.login();
    for d in ["work", "home/.ssh"] {
        std::fs::create_dir_all(env.path(d)).expect("mkdir");
    }
    std::fs::write(env.path("home/.ssh/id_ed25519"), "not a real key\n").expect("key");
    std::fs::copy(repo().join("boxes/probe.py"), env.path("work/probe.py")).expect("probe");
    // In the working directory: the box's /tmp is empty, and a checkout
    // may well live under /tmp.
    std::fs::copy(client_source(), env.path("work/valetkey_client.py")).expect("client");
    env
}

/// The example Python client.
fn client_source() -> PathBuf {
    repo()
        .parent()
        .expect("repo root")
        .join("examples/python/valetkey_client.py")
}

/// A name for an abstract socket, unique to this test process and call.
fn abstract_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "vk-test-x11-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the probe attacks, as paths of this env.
fn targets(env: &mut TestEnv, abstract_name: &str) -> Value {
    let daemon_pid = env.daemon().expect("daemon").id();
    let p = |r: &str| env.path(r).display().to_string();
    json!({
        "keyrings": p("data/keyrings"),
        "ssh": p("home/.ssh"),
        "bus": p("run/bus"),
        "control": p("run/valetkey/control.sock"),
        "agent_sock": p("run/valetkey/agent.sock"),
        "valetkey": bin("valetkey").display().to_string(),
        "state_db": p("data/valetkey/state.db"),
        "config": p("config/valetkey/config.toml"),
        "bashrc": p("home/.bashrc"),
        "daemon_pid": daemon_pid,
        "abstract": abstract_name,
        "client_dir": p("work"),
    })
}

/// The file's SHA-256 as coreutils computes it.
fn sha256sum(path: &Path) -> String {
    let o = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Starts `argv` in the env's work directory with a terminal of its own
/// (`script`), so TIOCSTI has something to aim at.
fn spawn_in_terminal(env: &TestEnv, argv: &[String]) -> Child {
    let line = argv
        .iter()
        .map(|a| sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    env.command("script")
        .args(["-qec", &line, "/dev/null"])
        .env("GH_TOKEN", LEAKED)
        .current_dir(env.path("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)")
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("wait")
}

fn results(env: &TestEnv) -> Value {
    let text = std::fs::read_to_string(env.path("work/results.json")).expect("results.json");
    serde_json::from_str(&text).expect("json")
}

/// The errno (or error text) a probe failed with; panics if it succeeded.
fn failed(r: &Value, probe: &str) -> String {
    let p = &r[probe];
    assert_eq!(p["ok"], false, "{probe} succeeded in the box: {p}");
    p["errno"]
        .as_str()
        .or(p["error"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn succeeded(r: &Value, probe: &str) {
    assert_eq!(
        r[probe]["ok"], true,
        "{probe} failed outside the box: {}",
        r[probe]
    );
}

fn probe_argv(env: &mut TestEnv, boxed: bool, x11: &str, agent: Option<&str>) -> Vec<String> {
    let mut argv: Vec<String> = vec![];
    if boxed {
        argv.extend([
            bin("valetkey").display().to_string(),
            "run".into(),
            // The weakest box's network (the host's), so each attack is
            // stopped by the box itself (Landlock's abstract-socket scope
            // included), not by a network namespace of its own.
            "--net".into(),
            "shared".into(),
            "--".into(),
        ]);
    }
    argv.extend([
        "/usr/bin/python3".into(),
        "probe.py".into(),
        targets(env, x11).to_string(),
    ]);
    argv.extend(agent.map(str::to_owned));
    argv
}

/// An abstract socket outside any box, as X11 has (`@/tmp/.X11-unix/X0`).
fn abstract_listener() -> (std::os::unix::net::UnixListener, String) {
    use std::os::linux::net::SocketAddrExt;
    let name = abstract_name();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let l = std::os::unix::net::UnixListener::bind_addr(&addr).expect("abstract listener");
    (l, name)
}

/// Allows the next consent and returns its card.
async fn allow_next(ctl: &mut valetkey_ipc::Client, d: Decision) -> ConsentRequest {
    let card = next_consent(ctl).await;
    decide(ctl, &card.id, d, None).await.expect("decided");
    card
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_agent_in_a_box_fails_at_every_attack_and_a_well_behaved_one_gets_its_token() {
    let mut env = env_up("");
    let (_x11, x11) = abstract_listener();
    let refresh = env.keychain_refresh_token().expect("logged in");
    let mut ctl = subscribed(&env).await;
    let argv = probe_argv(&mut env, true, &x11, Some("prober"));
    let child = spawn_in_terminal(&env, &argv);
    let card = allow_next(&mut ctl, Decision::Once).await;
    let out = tokio::task::spawn_blocking(move || finish(child))
        .await
        .expect("join");
    assert!(out.status.success(), "boxed probe: {out:?}\n{}", env.log());
    let r = results(&env);

    // The keychain: its files are not there, and its bus cannot be reached.
    assert_eq!(r["keyrings"]["value"], json!([]), "{}", r["keyrings"]);
    assert_eq!(r["ssh_keys"]["value"], json!([]), "{}", r["ssh_keys"]);
    let e = failed(&r, "secret_tool");
    assert!(
        !e.contains(&refresh),
        "secret-tool printed the refresh token"
    );
    assert_eq!(failed(&r, "session_bus"), "ENOENT");
    // The control socket, by path and through the real CLI.
    assert_eq!(failed(&r, "control_sock"), "ENOENT");
    assert!(failed(&r, "consent_cli").contains("exit 69"));
    assert!(failed(&r, "consent_cli_default").contains("exit 69"));
    // State and config are not there to change.
    assert!(failed(&r, "state_db").contains("unable to open database"));
    assert_eq!(failed(&r, "config_toml"), "ENOENT");
    // The home is read-only; the sockets' directories too.
    assert_eq!(failed(&r, "bashrc"), "EROFS");
    assert_eq!(failed(&r, "replace_agent_sock"), "EROFS");
    assert_eq!(failed(&r, "replace_box_sock"), "EROFS");
    // The daemon is in another pid namespace: not there to signal or trace.
    assert_eq!(failed(&r, "signal_daemon"), "ESRCH");
    assert_eq!(failed(&r, "proc_daemon"), "ENOENT");
    // Landlock: no abstract sockets made outside (X11, abstract buses).
    assert_eq!(failed(&r, "abstract_socket"), "EPERM");
    // No nested user namespaces (the bind-mount trick), no TIOCSTI.
    assert!(failed(&r, "unshare").contains("exit 1"));
    assert_eq!(failed(&r, "tiocsti"), "EPERM");
    // The environment is the allow-list: no launcher secret, no bus.
    let vars = r["env"].to_string();
    assert!(
        !vars.contains("GH_TOKEN") && !vars.contains("DBUS_SESSION_BUS_ADDRESS"),
        "{vars}"
    );
    assert!(!std::fs::read_to_string(env.path("work/results.json"))
        .expect("r")
        .contains(LEAKED));

    // And through its one door, the agent got its token with consent; the
    // card carried what was launched.
    assert_eq!(r["token"]["ok"], true, "{}", r["token"]);
    let facts = card.confinement.expect("a boxed card");
    let script = facts.script.expect("the script");
    assert_eq!(script.path, env.path("work/probe.py").display().to_string());
    assert_eq!(script.sha256, sha256sum(&env.path("work/probe.py")));
    assert_eq!(facts.profile, "default");
    assert_eq!(facts.cwd, env.path("work").display().to_string());
    assert_eq!(card.sha256, facts.entry_sha256);
    // The audit trail has the box, and the hand-out bound to its entry.
    let opened = env.cli_ok(&["audit", "--kind", "box.opened", "--json"]);
    assert!(
        opened.contains(&facts.entry_sha256) && opened.contains("probe.py"),
        "{opened}"
    );
    let issued = env.cli_ok(&["audit", "--kind", "token.get", "--json"]);
    assert!(issued.contains(&facts.entry_sha256), "{issued}");
    // agents show lists the script it ran as, in a box.
    let shown = env.cli_ok(&["agents", "show", "prober"]);
    assert!(shown.contains("probe.py (box)"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_script_unboxed_succeeds_at_the_attacks_and_its_card_says_unconfined() {
    let mut env = env_up("");
    let (_x11, x11) = abstract_listener();
    let refresh = env.keychain_refresh_token().expect("logged in");
    let mut ctl = subscribed(&env).await;
    let argv = probe_argv(&mut env, false, &x11, Some("prober"));
    let child = spawn_in_terminal(&env, &argv);
    let card = next_consent(&mut ctl).await;
    let listed = env.cli_ok(&["consent", "list"]);
    assert!(
        listed.contains("NOT CONFINED: this agent runs as you and can read your keychain"),
        "{listed}"
    );
    decide(&mut ctl, &card.id, Decision::Once, None)
        .await
        .expect("allowed");
    let out = tokio::task::spawn_blocking(move || finish(child))
        .await
        .expect("join");
    assert!(out.status.success(), "unboxed probe: {out:?}");
    let r = results(&env);
    assert!(
        card.confinement.is_none(),
        "an unboxed agent's card has no box"
    );
    // What the box took away, this process has.
    assert_eq!(
        r["secret_tool"]["value"],
        json!(refresh),
        "it read the refresh token"
    );
    assert_ne!(r["keyrings"]["value"], json!([]));
    assert_eq!(r["ssh_keys"]["value"], json!(["id_ed25519"]));
    for p in [
        "session_bus",
        "control_sock",
        "consent_cli",
        "consent_cli_default",
        "state_db",
        "config_toml",
        "bashrc",
        "replace_agent_sock",
        "signal_daemon",
        "proc_daemon",
        "abstract_socket",
        "unshare",
    ] {
        succeeded(&r, p);
    }
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").unwrap_or_default();
    if legacy.trim() == "1" {
        succeeded(&r, "tiocsti");
    }
    assert_eq!(r["token"]["ok"], true);
    let _ = std::fs::remove_file(env.path("run/valetkey/relay-probe"));
}

/// Copies the example client as `name` (with a comment, so each copy is
/// its own script).
fn client_copy(env: &TestEnv, name: &str) {
    let src = std::fs::read_to_string(client_source()).expect("client");
    std::fs::write(
        env.path(&format!("work/{name}")),
        format!("{src}\n# {name}\n"),
    )
    .expect("copy");
}

fn run_client(env: &TestEnv, script: &str, agent: &str) -> Child {
    env.command(bin("valetkey"))
        .args(["run", "--", "python3", script, agent, "local", "repo:read"])
        .current_dir(env.path("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("valetkey run")
}

async fn done(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread")]
async fn two_python_scripts_under_one_name_get_separate_consents() {
    let env = env_up("");
    client_copy(&env, "a.py");
    client_copy(&env, "b.py");
    let mut ctl = subscribed(&env).await;
    let a = run_client(&env, "a.py", "helper");
    let card_a = allow_next(&mut ctl, Decision::Always).await;
    let out = done(a).await;
    assert!(out.status.success(), "a.py: {out:?}");
    // b.py, same interpreter and name: asked again, and refused.
    let b = run_client(&env, "b.py", "helper");
    let card_b = next_consent(&mut ctl).await;
    let listed = env.cli_ok(&["consent", "list"]);
    assert!(
        listed.contains("in a box (default, network filtered): python3 b.py helper"),
        "{listed}"
    );
    decide(
        &mut ctl,
        &card_b.id,
        Decision::Deny { remember: false },
        None,
    )
    .await
    .expect("deny");
    let out = done(b).await;
    assert_eq!(out.status.code(), Some(1), "b.py was denied: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("consent_denied"));
    assert_eq!(card_a.agent.name, card_b.agent.name);
    assert_eq!(card_a.exe, card_b.exe, "both are python3");
    assert_ne!(card_a.sha256, card_b.sha256, "bound to the scripts");
    // a.py in a new box: its grant stands, nobody is asked.
    let out = done(run_client(&env, "a.py", "helper")).await;
    assert!(out.status.success(), "a.py again: {out:?}");
    let grants = env.cli_ok(&["grant", "list"]);
    assert!(grants.contains("helper"), "{grants}");
}

#[tokio::test(flavor = "multi_thread")]
async fn require_confinement_refuses_unboxed_agents_and_serves_boxed_ones() {
    let env = env_up("\n[policy]\nrequire_confinement = [\"local\"]\n");
    let mut c = env.agent("coder").await;
    let e = c
        .call::<TokenGet>(&TokenGetParams::new("local", &["repo:read"]))
        .await
        .expect_err("unboxed");
    assert_eq!(code(&e), Some("confinement_required"));
    assert!(e.to_string().contains("valetkey run"), "{e}");
    client_copy(&env, "coder.py");
    let mut ctl = subscribed(&env).await;
    let child = run_client(&env, "coder.py", "coder");
    let card = allow_next(&mut ctl, Decision::Once).await;
    assert!(card.confinement.is_some());
    let out = done(child).await;
    assert!(out.status.success(), "boxed coder: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_boxed_agent_reconnects_after_the_daemon_restarts() {
    let mut env = env_up("");
    let script = r#"
import os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
import valetkey_client as vk
def get():
    c = vk.ValetKey(vk.socket_path())
    c.call("hello", {"protocol": 1, "agent": {"name": "steady", "version": "1"}})
    return c.call("token.get", {"provider": "local", "scopes": ["repo:read"]})
get()
open("first", "w").close()
while not os.path.exists("go"):
    time.sleep(0.05)
get()
open("second", "w").close()
"#;
    std::fs::write(env.path("work/steady.py"), script).expect("script");
    let client_dir = env.path("work");
    let mut ctl = subscribed(&env).await;
    let child = env
        .command(bin("valetkey"))
        .args(["run", "--", "python3", "steady.py"])
        .arg(&client_dir)
        .current_dir(env.path("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    allow_next(&mut ctl, Decision::Always).await;
    drop(ctl);
    let first = env.path("work/first");
    wait_until(Duration::from_secs(10), || first.exists()).expect("first token");
    env.stop_daemon();
    env.start_daemon().expect("restarted");
    // The boxes' sockets are restored beside the agent socket's start, not
    // before it accepts: wait for the log line rather than race it.
    let restored = wait_until(Duration::from_secs(10), || {
        env.log().contains("box socket restored")
    });
    assert!(restored.is_ok(), "{}", env.log());
    std::fs::write(env.path("work/go"), "").expect("go");
    let out = done(child).await;
    assert!(
        out.status.success(),
        "after restart: {out:?}\n{}",
        env.log()
    );
    assert!(env.path("work/second").exists());
    // The box is gone: its socket directory with it.
    let boxes: Vec<PathBuf> = std::fs::read_dir(env.path("run/valetkey/boxes"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(boxes.is_empty(), "left behind: {boxes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn env_puts_only_the_asked_token_in_the_box() {
    let env = env_up("");
    let mut ctl = subscribed(&env).await;
    let child = env
        .command(bin("valetkey"))
        .args([
            "run",
            "--name",
            "lister",
            "--env",
            "TOK=local:repo:read",
            "--",
        ])
        .args([
            "python3",
            "-c",
            "import os, json; json.dump(dict(os.environ), open('env.json', 'w'))",
        ])
        .env("GH_TOKEN", LEAKED)
        .current_dir(env.path("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let card = allow_next(&mut ctl, Decision::Once).await;
    assert_eq!(card.agent.name, "lister");
    assert_eq!(
        card.confinement.as_ref().and_then(|b| b.name.as_deref()),
        Some("lister")
    );
    let out = done(child).await;
    assert!(out.status.success(), "{out:?}");
    let seen: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("work/env.json")).expect("env"))
            .expect("json");
    let tok = seen["TOK"].as_str().expect("TOK set");
    assert!(tok.len() > 20);
    assert!(seen.get("GH_TOKEN").is_none() && seen.get("DBUS_SESSION_BUS_ADDRESS").is_none());
    // The token is nowhere else in the environment, nor in the logs.
    let others: Vec<&String> = seen
        .as_object()
        .expect("map")
        .iter()
        .filter(|(k, v)| *k != "TOK" && v.as_str() == Some(tok))
        .map(|(k, _)| k)
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert!(!env.log().contains(tok));
    // A malformed --env is refused before anything starts.
    let o = env
        .command(bin("valetkey"))
        .args(["run", "--env", "TOK=local", "--", "true"])
        .current_dir(env.path("work"))
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("VAR=PROVIDER:SCOPE"));
}

#[test]
fn explain_describes_the_box_and_refuses_the_home_as_working_directory() {
    let env = env_up("");
    let o = env
        .command(bin("valetkey"))
        .args([
            "run",
            "--explain",
            "--profile",
            "offline",
            "--",
            "python3",
            "probe.py",
        ])
        .current_dir(env.path("work"))
        .output()
        .expect("explain");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(text.contains("profile:   offline (network none)"), "{text}");
    assert!(
        text.contains(&format!(
            "script:    {}",
            env.path("work/probe.py").display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&env.path("home/.ssh").display().to_string()),
        "{text}"
    );
    assert!(!text.contains("--share-net"), "{text}");
    let home: &Path = &env.path("home");
    let o = env
        .command(bin("valetkey"))
        .args(["run", "--", "true"])
        .current_dir(home)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("your whole home"),
        "{o:?}"
    );
    assert!(
        std::fs::read_dir(env.path("run/valetkey/boxes")).map_or(true, |mut d| d.next().is_none()),
        "nothing was opened"
    );
}

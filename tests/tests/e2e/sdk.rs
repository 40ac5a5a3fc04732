//! The client libraries' own test suites (sdk/python with pytest,
//! sdk/typescript with Node's test runner), run against a real valetkeyd,
//! keychain and IdP made here: the suites get the world's environment, the
//! `valetkey` CLI (to decide consents as the user would) and a grant for
//! their interpreter as agent `py-granted` or `ts-granted`.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{bin, bin_dir, repo, TestEnv};

/// Debian's Python (whose `python3-pytest` setup.sh installs), else the
/// first `python3` on the PATH.
fn python() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/python3");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("python3")
    }
}

/// The file the interpreter runs (what the daemon attests and hashes).
fn real_exe(program: &std::path::Path) -> String {
    let out = Command::new(program)
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A world with the daemon up and logged in, and `agent` granted
/// `repo:read` for the interpreter `exe`.
fn world_granting(agent: &str, exe: &str) -> TestEnv {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    env.cli_ok(&["grant", "add", agent, "local", "repo:read", "--binary", exe]);
    // The suites' consents are decided with the CLI: make sure it is built.
    let _ = bin("valetkey");
    env
}

#[test]
fn the_python_sdk_suite_passes_against_the_real_daemon() {
    let py = python();
    let env = world_granting("py-granted", &real_exe(&py));
    let mut cmd = env.command(&py);
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo().join("../sdk/python/tests"))
        .env("PYTHONPATH", repo().join("../sdk/python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(repo().join("../sdk/python"));
    let text = run_suite(
        &env,
        cmd,
        "Python SDK (python3 -m pytest; apt-get install python3-pytest)",
    );
    assert!(text.contains(" passed"), "{text}");
    assert!(!text.contains("skipped"), "nothing may be skipped: {text}");
}

/// Runs `cmd` in `env`'s world with the suites' variables; its output.
fn run_suite(env: &TestEnv, mut cmd: Command, what: &str) -> String {
    let out = cmd
        .env("VK_BIN", bin_dir())
        .env("VK_PROVIDER", "local")
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "the {what} suite failed:\n{text}\ndaemon log:\n{}",
        env.log()
    );
    text
}

#[test]
fn the_typescript_sdk_suite_passes_against_the_real_daemon() {
    let node = Command::new("node")
        .args(["-p", "require('fs').realpathSync(process.execPath)"])
        .output()
        .expect("node");
    let env = world_granting("ts-granted", String::from_utf8_lossy(&node.stdout).trim());
    // The declarations first: a type test that misuses the API must fail
    // to compile (`@ts-expect-error`), and correct use must compile.
    let tsc = Command::new("npx")
        .args(["--no-install", "tsc", "-p", "test/tsconfig.json"])
        .current_dir(repo().join("../sdk/typescript"))
        .output()
        .expect("npx tsc (sdk/typescript: npm ci, see scripts/setup.sh)");
    assert!(
        tsc.status.success(),
        "the TypeScript declarations do not check:\n{}{}",
        String::from_utf8_lossy(&tsc.stdout),
        String::from_utf8_lossy(&tsc.stderr)
    );
    let mut cmd = env.command("node");
    cmd.args(["--test", "test/"])
        .current_dir(repo().join("../sdk/typescript"));
    let text = run_suite(&env, cmd, "TypeScript SDK");
    assert!(
        text.contains("# pass 8"),
        "every test ran and passed: {text}"
    );
    assert!(
        text.contains("# fail 0") && text.contains("# skipped 0"),
        "{text}"
    );
}

/// Copies `from` to `to`, directories included.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// In a box (`valetkey run`), the SDK finds the box's own socket through
/// `$VALETKEY_SOCKET` with nothing configured, and the card says boxed.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_finds_the_box_socket_in_a_box() {
    use crate::harness::{decide, next_consent, subscribed};
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    let work = env.path("work");
    copy_tree(
        &repo().join("../sdk/python/src/valetkey"),
        &work.join("valetkey"),
    );
    std::fs::write(
        work.join("agent.py"),
        "import json, os, valetkey\n\
         with valetkey.Client('py-boxed', purpose='boxed sdk test') as vk:\n\
         \x20   t = vk.token('local', ['repo:read'])\n\
         \x20   print(json.dumps({'socket': os.environ.get('VALETKEY_SOCKET'),\n\
         \x20                     'box': 'box' in vk.hello_result['identity'], 'scopes': t.scopes}))\n",
    )
    .expect("agent");
    let mut ctl = subscribed(&env).await;
    let child = env
        .command(bin("valetkey"))
        .args(["run", "--", "python3", "agent.py"])
        .current_dir(&work)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("valetkey run");
    let card = next_consent(&mut ctl).await;
    assert_eq!(card.agent.name, "py-boxed");
    assert!(card.confinement.is_some(), "the card says boxed");
    decide(
        &mut ctl,
        &card.id,
        valetkey_ipc::control::Decision::Once,
        None,
    )
    .await
    .expect("allow");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `valetkey run` sets the variable (the box socket is mounted where the
    // agent socket is); the daemon attests the connection as boxed.
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert!(
        v["socket"]
            .as_str()
            .is_some_and(|s| s.ends_with("agent.sock")),
        "{v}"
    );
    assert_eq!(
        v["box"], true,
        "the connection came through the box socket: {v}"
    );
    assert_eq!(v["scopes"][0], "repo:read");
}

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

#[test]
fn the_python_sdk_suite_passes_against_the_real_daemon() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    let py = python();
    let exe = real_exe(&py);
    env.cli_ok(&[
        "grant",
        "add",
        "py-granted",
        "local",
        "repo:read",
        "--binary",
        &exe,
    ]);
    // The suite's consents are decided with the CLI: make sure it is built.
    let _ = bin("valetkey");
    let out = env
        .command(&py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo().join("../sdk/python/tests"))
        .env("PYTHONPATH", repo().join("../sdk/python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("VK_BIN", bin_dir())
        .env("VK_PROVIDER", "local")
        .current_dir(repo().join("../sdk/python"))
        .output()
        .expect("python3 -m pytest (apt-get install python3-pytest)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "the Python SDK suite failed:\n{text}\ndaemon log:\n{}",
        env.log()
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
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    let node = Command::new("node")
        .args(["-p", "require('fs').realpathSync(process.execPath)"])
        .output()
        .expect("node");
    let exe = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    env.cli_ok(&[
        "grant",
        "add",
        "ts-granted",
        "local",
        "repo:read",
        "--binary",
        &exe,
    ]);
    let _ = bin("valetkey");
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
        text.contains("# pass 7"),
        "every test ran and passed: {text}"
    );
    assert!(
        text.contains("# fail 0") && text.contains("# skipped 0"),
        "{text}"
    );
}

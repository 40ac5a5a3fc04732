//! The client libraries' own test suites (sdk/python with pytest), run
//! against a real valetkeyd, keychain and IdP made here: the suites get the
//! world's environment, the `valetkey` CLI (to decide consents as the user
//! would) and a grant for their interpreter as agent `py-granted`.

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

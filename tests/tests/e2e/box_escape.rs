//! The box, closed: a hostile agent (tests/boxes/escape.py) in a real
//! bubblewrap box tries to plant commands the user's own git would run
//! (config, hooks, moving `.git`, `commondir`), to reach Unix sockets
//! outside the box (one there before it started, one made after), and to
//! use what the box's seccomp filter takes away (the session keyring,
//! io_uring, datagram sockets); it also does ordinary git work. Each
//! attack fails with the errno SECURITY.md names, the work succeeds, and
//! the user's own git afterwards runs nothing the box wrote. The same
//! script unboxed succeeds at every attack, and there the user's git does
//! run what it planted: what makes each assertion able to fail.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{bin, repo, wait_until, TestEnv};

/// A listening socket outside any box that answers each connection with
/// `banner`, for as long as it lives.
struct Banner {
    path: PathBuf,
}

impl Banner {
    fn start(path: PathBuf, banner: &'static str) -> Banner {
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).expect("bind a socket outside the box");
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let mut s = s;
                let _ = std::io::Write::write_all(&mut s, banner.as_bytes());
            }
        });
        Banner { path }
    }
}

impl Drop for Banner {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `/var/tmp/vk-NAME-…`: outside the box's empty `/tmp`, visible
/// (read-only) in it, as `/run/docker.sock` or a socket in the home would
/// be; one name per test (`tag`).
fn var_tmp(tag: &str, name: &str) -> PathBuf {
    PathBuf::from(format!(
        "/var/tmp/vk-{tag}-{name}-{}.sock",
        std::process::id()
    ))
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=User",
            "-c",
            "user.email=user@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A clone of a fresh `origin` (outside `work`) at `env/NAME`, with
/// `evil.sh` (touches `PWNED`) and the hostile script in it.
fn checkout(env: &TestEnv, name: &str) -> PathBuf {
    let origin = env.path(&format!("{name}-origin.git"));
    let seed = env.path(&format!("{name}-seed"));
    std::fs::create_dir_all(&seed).expect("mkdir");
    git(&seed, &["init", "-q", "--initial-branch=main"]);
    std::fs::write(seed.join("README"), "hello\n").expect("readme");
    git(&seed, &["add", "README"]);
    git(&seed, &["commit", "-qm", "init"]);
    git(
        env.dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &seed.display().to_string(),
            &origin.display().to_string(),
        ],
    );
    let work = env.path(name);
    git(
        env.dir.path(),
        &[
            "clone",
            "-q",
            &origin.display().to_string(),
            &work.display().to_string(),
        ],
    );
    let evil = work.join("evil.sh");
    std::fs::write(
        &evil,
        format!("#!/bin/sh\ntouch {}\n", work.join("PWNED").display()),
    )
    .expect("evil");
    std::fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    std::fs::copy(repo().join("boxes/escape.py"), work.join("escape.py")).expect("script");
    work
}

fn targets(tag: &str, late: &Path) -> Value {
    json!({
        "outside_sock": var_tmp(tag, "outside").display().to_string(),
        "named_sock": var_tmp(tag, "named").display().to_string(),
        "late_sock": late.display().to_string(),
    })
}

/// Runs escape.py in `work` (in a box, or not) while making the late
/// socket when it asks; returns its results and the run's stderr.
fn run_escape(env: &TestEnv, work: &Path, boxed: bool) -> (Value, String) {
    let tag = if boxed { "boxed" } else { "unboxed" };
    let late = var_tmp(tag, "late");
    let mut cmd = if boxed {
        let mut c = env.command(bin("valetkey"));
        c.args(["run", "--", "python3"]);
        c
    } else {
        env.command("python3")
    };
    let child = cmd
        .arg("escape.py")
        .arg(targets(tag, &late).to_string())
        .current_dir(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start escape.py");
    let want = work.join("want-late");
    wait_until(Duration::from_secs(30), || want.exists())
        .expect("the script asked for the late socket");
    let _late = Banner::start(late, "late");
    std::fs::write(work.join("late-ready"), "").expect("ready");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "escape.py (boxed: {boxed}): {out:?}\n{}",
        env.log()
    );
    let r =
        serde_json::from_str(&std::fs::read_to_string(work.join("results.json")).expect("results"))
            .expect("json");
    (r, stderr)
}

fn errno_of(r: &Value, probe: &str) -> String {
    let p = &r[probe];
    assert_eq!(p["ok"], false, "{probe} succeeded: {p}");
    p["errno"]
        .as_str()
        .or(p["error"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn value_of<'a>(r: &'a Value, probe: &str) -> &'a Value {
    assert_eq!(r[probe]["ok"], true, "{probe} failed: {}", r[probe]);
    &r[probe]["value"]
}

/// What the user does in the repository afterwards, outside any box.
fn users_own_git(work: &Path) {
    let _ = std::fs::remove_file(work.join("PWNED"));
    git(work, &["status"]);
    git(work, &["checkout", "-q", "main"]);
    git(
        work,
        &[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "the user's own commit",
        ],
    );
}

fn world(tag: &str) -> (TestEnv, Banner, Banner) {
    let mut env = TestEnv::new().expect("env");
    let named = var_tmp(tag, "named");
    env.write_config(&format!(
        "\n[box.profiles.default]\nsockets = [\"{}\"]\n",
        named.display()
    ))
    .expect("config");
    env.start_daemon().expect("daemon");
    let outside = Banner::start(var_tmp(tag, "outside"), "outside");
    let named = Banner::start(named, "named");
    (env, outside, named)
}

#[test]
fn a_boxed_agent_cannot_turn_the_users_git_against_them_nor_reach_sockets_outside() {
    let (env, _outside, _named) = world("boxed");
    let work = checkout(&env, "work");
    let (r, said) = run_escape(&env, &work, true);
    // git's command files are read-only; .git cannot be moved away.
    assert_eq!(errno_of(&r, "git_config"), "EROFS");
    assert!(
        errno_of(&r, "git_config_cli").contains("could not"),
        "{}",
        r["git_config_cli"]
    );
    assert_eq!(errno_of(&r, "git_hook"), "EROFS");
    assert_eq!(errno_of(&r, "git_move"), "EBUSY");
    // commondir cannot be kept from being made; it is moved aside when
    // the box ends, and said.
    value_of(&r, "git_commondir");
    assert!(!work.join(".git/commondir").exists());
    assert!(work
        .join(".git/commondir.quarantined-by-valetkey")
        .is_file());
    // Sockets outside: refused, the one made after the box started too.
    assert_eq!(errno_of(&r, "socket_outside"), "EACCES");
    assert_eq!(errno_of(&r, "socket_late"), "EACCES");
    assert_eq!(
        value_of(&r, "socket_named"),
        "named",
        "the profile's socket"
    );
    assert_eq!(value_of(&r, "socket_own"), "inside", "its own, in its /tmp");
    // The seccomp filter's rules.
    assert_eq!(errno_of(&r, "session_keyring"), "EPERM");
    assert_eq!(errno_of(&r, "io_uring"), "EPERM");
    assert_eq!(errno_of(&r, "datagram"), "EACCES");
    // Ordinary work went through.
    let head = value_of(&r, "commit").as_str().expect("sha").to_owned();
    assert_eq!(value_of(&r, "branch"), "feature");
    assert_eq!(value_of(&r, "fetch").as_str().map(str::len), Some(40));
    assert!(git(&work, &["log", "--format=%H %s", "feature"])
        .contains(&format!("{head} work in the box")));
    // valetkey run said what was refused and what was moved aside.
    let outside = var_tmp("boxed", "outside").display().to_string();
    for needle in [
        ".git/config",
        ".git/hooks",
        &outside,
        "commondir.quarantined-by-valetkey",
    ] {
        assert!(said.contains(needle), "{needle} not in:\n{said}");
    }
    // The user's own git runs nothing the box wrote.
    users_own_git(&work);
    assert!(
        !work.join("PWNED").exists(),
        "the user's git ran what the box planted"
    );
    // And the audit trail has each kind of event.
    let audit = env.cli_ok(&["audit", "--kind", "box.event", "--json"]);
    for outcome in ["refused:locked", "refused:socket", "quarantined"] {
        assert!(audit.contains(outcome), "{outcome} not in {audit}");
    }
}

#[test]
fn the_same_agent_unboxed_succeeds_and_the_users_git_then_runs_its_command() {
    let (env, _outside, _named) = world("unboxed");
    let work = checkout(&env, "work");
    let (r, _) = run_escape(&env, &work, false);
    for p in [
        "git_config",
        "git_config_cli",
        "git_hook",
        "git_move",
        "git_commondir",
        "session_keyring",
        "io_uring",
        "datagram",
        "commit",
        "branch",
        "fetch",
    ] {
        value_of(&r, p);
    }
    assert_eq!(value_of(&r, "socket_outside"), "outside");
    assert_eq!(value_of(&r, "socket_late"), "late");
    users_own_git(&work);
    assert!(
        work.join("PWNED").exists(),
        "unboxed, the planted command runs in the user's git"
    );
}

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
    // The supervisor (its parent) gives up neither its report key nor its
    // listener.
    assert_eq!(errno_of(&r, "parent_environ"), "EACCES");
    assert_eq!(errno_of(&r, "parent_fd"), "EPERM");
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
        "parent_environ",
        "parent_fd",
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

/// The script of the race: which one ran, and when it started.
fn race_script(which: &str) -> String {
    format!(
        "import sys, time\nopen(f'out-{{sys.argv[1]}}', 'w').write('{which} %f' % time.time())\n"
    )
}

#[test]
fn a_script_swapped_after_the_daemon_hashed_it_does_not_run_in_its_place() {
    const ROUNDS: usize = 15;
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let work = env.path("shared-work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("good.py"), race_script("good")).expect("good");
    std::fs::write(work.join("evil.py"), race_script("evil")).expect("evil");
    std::fs::copy(repo().join("boxes/swapper.py"), work.join("swapper.py")).expect("swapper");
    // The attacker: a second box on the same working directory.
    let attacker = env
        .command(bin("valetkey"))
        .args(["run", "--", "python3", "swapper.py", &ROUNDS.to_string()])
        .current_dir(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the attacker's box");
    let _attacker = crate::harness::Proc(attacker);
    wait_until(Duration::from_secs(20), || work.join("armed").exists()).expect("armed");
    let swaps = |w: &Path| -> Vec<f64> {
        std::fs::read_to_string(w.join("swaps.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    for k in 0..ROUNDS {
        let o = env
            .command(bin("valetkey"))
            .args(["run", "--", "python3", "good.py", &k.to_string()])
            .current_dir(&work)
            .output()
            .expect("the user's box");
        assert!(o.status.success(), "round {k}: {o:?}");
        wait_until(Duration::from_secs(10), || swaps(&work).len() > k)
            .expect("the attacker swapped and put back");
    }
    let swapped = swaps(&work);
    assert_eq!(swapped.len(), ROUNDS, "a swap every round");
    for (k, at) in swapped.iter().enumerate() {
        let out = std::fs::read_to_string(work.join(format!("out-{k}"))).expect("out");
        let (which, started) = out.split_once(' ').expect("which and when");
        assert_eq!(which, "good", "round {k} ran {which}");
        let started: f64 = started.parse().expect("a time");
        // The swap was in time: evil.py was at good.py's path before the
        // interpreter started, so only the pin kept it out.
        assert!(
            *at < started,
            "round {k}: swapped at {at}, started at {started}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_box_that_floods_its_socket_shuts_out_only_itself() {
    const HELD: usize = 300;
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    env.grant_self("bystander", &["repo:read"]);
    let work = env.path("flood-work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::copy(repo().join("boxes/flood.py"), work.join("flood.py")).expect("script");
    let flood = env
        .command(bin("valetkey"))
        .args(["run", "--", "python3", "flood.py", &HELD.to_string()])
        .current_dir(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flooding box");
    let _flood = crate::harness::Proc(flood);
    let report = work.join("flood.json");
    wait_until(Duration::from_secs(60), || report.exists()).expect("flooded");
    let got: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("read")).expect("json");
    // Its own cap ([limits] box_connections = 64), and no more.
    assert_eq!(got["admitted"], 64, "{got}");
    assert_eq!(
        got["refused"]["too_many_connections:box_connections"],
        HELD - 64,
        "{got}"
    );
    // Meanwhile another agent says hello and asks, and the user pauses,
    // denies, resumes and revokes.
    let mut asker = env.agent("asker").await;
    let e = asker
        .call::<valetkey_ipc::methods::TokenGet>(&crate::harness::token_params(
            &["repo:read"],
            false,
        ))
        .await
        .expect_err("no grant yet");
    let id = e
        .rpc()
        .and_then(|r| {
            r.data
                .as_ref()?
                .get("consent_id")?
                .as_str()
                .map(str::to_owned)
        })
        .expect("a consent id");
    env.cli_ok(&["pause"]);
    assert!(env.cli_ok(&["consent", "list"]).contains("asker"));
    env.cli_ok(&["consent", "deny", &id]);
    env.cli_ok(&["resume"]);
    env.cli_ok(&["revoke", "agent", "bystander"]);
    assert!(!env.cli_ok(&["grant", "list"]).contains("bystander"));
    std::fs::write(work.join("release"), "").expect("release");
}

#[test]
fn a_box_that_knocks_on_a_login_in_progress_cannot_end_it() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let work = env.path("knock-work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::copy(repo().join("boxes/knock.py"), work.join("knock.py")).expect("script");
    // The user's browser opens the page only when told to, so the login
    // waits at its loopback listener meanwhile.
    let url_file = env.path("login-url");
    let browser = env.path("slow-browser.sh");
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\necho \"$1\" > {url}\nwhile [ ! -e {url}.go ]; do sleep 0.05; done\nexec {real} \"$1\"\n",
            url = url_file.display(),
            real = repo().join("oidc/fake-browser.sh").display()
        ),
    )
    .expect("browser");
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let login = env
        .command(bin("valetkey"))
        .args(["login", "local", "--login-hint", "alice", "--timeout", "60"])
        .env("BROWSER", &browser)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("login");
    wait_until(Duration::from_secs(20), || url_file.exists())
        .expect("the login opened its browser");
    let url = std::fs::read_to_string(&url_file).expect("url");
    let redirect = url::Url::parse(url.trim())
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| url::Url::parse(&v).expect("redirect"))
        .expect("a redirect_uri");
    let port = redirect.port().expect("a port");
    let knock = env
        .command(bin("valetkey"))
        .args(["run", "--net", "shared", "--", "python3", "knock.py"])
        .current_dir(&work)
        .output()
        .expect("the knocking box");
    assert!(knock.status.success(), "{knock:?}");
    let got: Value = serde_json::from_str(
        &std::fs::read_to_string(work.join("knock.json")).expect("knock.json"),
    )
    .expect("json");
    let answers = &got[port.to_string()];
    assert_eq!(
        answers,
        &json!(["HTTP/1.1 400 Bad Request", "HTTP/1.1 400 Bad Request"]),
        "{got}"
    );
    // The login goes on, and completes when the user's browser comes.
    std::fs::write(format!("{}.go", url_file.display()), "").expect("go");
    let out = login.wait_with_output().expect("login");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("Logged in"),
        "{out:?}"
    );
}

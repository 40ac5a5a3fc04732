//! What a new user meets in the first hour with real tools (issue 28):
//! the CLI in a pipe, `--binary` given a version manager's shim or a
//! script, and a client that cannot find the daemon. Each test here failed
//! against the build before its fix.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use crate::harness::{bin, TestEnv};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `valetkey audit | head -1`: the reader is gone before the CLI writes.
/// The CLI ends as other Unix tools end, with the status a shell shows for
/// SIGPIPE and nothing on stderr (it printed a Rust panic).
#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = env
        .command(bin("valetkey"))
        .arg("audit")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("valetkey audit");
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
    assert_eq!(out.status.code(), Some(141), "{:?}", out.status);
    assert_eq!(out.status.signal(), None);
}

/// A shim in the form pyenv writes (its `pyenv-rehash` template), handing
/// over to `MANAGER exec PROGRAM`. The manager is the real pyenv where the
/// machine has one (pyenv is not packaged for Debian, and GitHub, where it
/// is published, is out of reach here); elsewhere a stand-in that answers
/// `which` as pyenv does, with a real interpreter's path.
fn pyenv_shim(dir: &Path) -> (PathBuf, PathBuf) {
    let home = std::env::var("HOME").unwrap_or_default();
    let real = Path::new(&home).join(".pyenv/libexec/pyenv");
    let (manager, root) = if real.exists() {
        (real, Path::new(&home).join(".pyenv"))
    } else {
        let m = dir.join("libexec/pyenv");
        std::fs::create_dir_all(m.parent().expect("parent")).expect("libexec");
        // Debian's python3 (setup.sh installs it): a program, not a shim.
        let python = Some(PathBuf::from("/usr/bin/python3"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| which("python3"));
        std::fs::write(
            &m,
            format!(
                "#!/bin/sh\n[ \"$1\" = which ] && exec echo {}\nexit 1\n",
                python.display()
            ),
        )
        .expect("manager");
        std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        (m, dir.to_owned())
    };
    let shims = dir.join("shims");
    std::fs::create_dir_all(&shims).expect("shims");
    let shim = shims.join("python3");
    std::fs::write(
        &shim,
        format!(
            "#!/usr/bin/env bash\nset -e\n[ -n \"$PYENV_DEBUG\" ] && set -x\n\n\
             program=\"${{0##*/}}\"\n\nexport PYENV_ROOT=\"{root}\"\n\
             exec \"{manager}\" exec \"$program\" \"$@\"\n",
            root = root.display(),
            manager = manager.display()
        ),
    )
    .expect("shim");
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = std::process::Command::new(&manager)
        .env("PYENV_ROOT", &root)
        .args(["which", "python3"])
        .output()
        .expect("MANAGER which");
    let target = std::fs::canonicalize(text(&out.stdout).trim()).expect("which python3");
    (shim, target)
}

fn which(name: &str) -> PathBuf {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .expect("sh");
    PathBuf::from(text(&out.stdout).trim())
}

/// `valetkey grant add … --binary "$(command -v python3)"` under pyenv
/// binds to the interpreter the shim runs (it bound the bash shim, so the
/// agent, whose process is python, still got `consent_required`); a plain
/// script is refused with the reason.
#[test]
fn a_shim_given_as_binary_is_resolved_and_a_script_is_refused() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let (shim, target) = pyenv_shim(&env.path("pyenv"));
    let out = env.cli(
        &["grant", "add", "py-agent", "local", "repo:read", "--binary"]
            .iter()
            .copied()
            .chain([shim.to_str().expect("utf-8")])
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("shim"), "{}", text(&out.stderr));
    let shown = env.cli_ok(&["agents", "show", "py-agent"]);
    assert!(
        shown.contains(&target.display().to_string()),
        "bound to {}: {shown}",
        target.display()
    );
    assert!(!shown.contains(&shim.display().to_string()), "{shown}");

    let script = env.path("agent.sh");
    std::fs::write(&script, "#!/bin/sh\nexec python3 agent.py\n").expect("script");
    let out = env.cli(&[
        "grant",
        "add",
        "sh-agent",
        "local",
        "repo:read",
        "--binary",
        script.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("is a script") && err.contains("interpreter"),
        "{err}"
    );
    // The daemon refused it too: no agent was recorded.
    let agents = env.cli_ok(&["agents"]);
    assert!(!agents.contains("sh-agent"), "{agents}");
}

/// A client with no way to the daemon is told every place it looked and
/// the fix, not only "connection refused".
#[test]
fn a_client_that_cannot_find_the_daemon_names_where_it_looked() {
    let env = TestEnv::new().expect("env");
    let out = env
        .command(bin("valetkey"))
        .env_remove("XDG_RUNTIME_DIR")
        .arg("status")
        .output()
        .expect("valetkey status");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for needle in [
        "VALETKEY_SOCKET",
        "XDG_RUNTIME_DIR is not set",
        "/run/user/",
        "valetkeyd",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

/// A card ends when the request that asked for it goes away: the agent's
/// connection closing (killed, or a client that gave up) takes the card
/// down within a tick, with a `withdrawn` outcome; it stayed on top of
/// live ones until its timeout. A `wait: false` card stays for
/// `consent.wait`.
#[tokio::test]
async fn a_card_ends_when_the_agent_that_asked_goes_away() {
    use valetkey_ipc::control::{ConsentList, ConsentOutcome};
    use valetkey_ipc::methods::{NoParams, TokenGet};
    let env = crate::harness::env_with("");
    let mut ctl = crate::harness::subscribed(&env).await;
    let waiting = crate::harness::ask_in_background(&env, "gone-agent", &["repo:read"]).await;
    let card = crate::harness::next_consent(&mut ctl).await;
    let mut kept = env.agent("later-agent").await;
    let refused = kept
        .call::<TokenGet>(&crate::harness::token_params(&["repo:read"], false))
        .await
        .expect_err("consent_required");
    assert_eq!(crate::harness::code(&refused), Some("consent_required"));
    drop(kept);
    waiting.abort();
    let _ = waiting.await;
    let outcome =
        crate::harness::decided(&mut ctl, &card.id, std::time::Duration::from_secs(5)).await;
    assert_eq!(outcome, ConsentOutcome::Withdrawn);
    let left = ctl.call::<ConsentList>(&NoParams {}).await.expect("list");
    let names: Vec<_> = left
        .consents
        .iter()
        .map(|c| c.agent.name.as_str())
        .collect();
    assert_eq!(names, ["later-agent"], "only the kept card is up");
}

/// Everyday tools write their caches in a default box: `mkdir ~/.cache/x`
/// and `npm install` (whose cache and logs are in `~/.npm`) failed with
/// EROFS and ENOENT. What they write lands in the profile's own cache
/// directory, kept for the next run, never in the user's caches.
#[test]
fn tools_write_their_caches_in_a_default_box_and_the_users_stay_untouched() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let work = env.path("work");
    std::fs::create_dir_all(work.join("pkg")).expect("mkdir");
    std::fs::create_dir_all(env.path("home/.cache")).expect("mkdir");
    std::fs::write(
        work.join("pkg/package.json"),
        r#"{"name":"vk-local","version":"1.0.0"}"#,
    )
    .expect("package.json");
    let script = "set -e
mkdir -p ~/.cache/x && echo kept > ~/.cache/x/f
cd pkg && npm pack --silent >/dev/null && cd ..
npm install --no-audit --no-fund --loglevel=error ./pkg/vk-local-1.0.0.tgz
test -f node_modules/vk-local/package.json && echo installed";
    let run = |s: &str| {
        env.command(bin("valetkey"))
            .args(["run", "--", "sh", "-c", s])
            .current_dir(&work)
            .output()
            .expect("valetkey run")
    };
    let out = run(script);
    assert!(
        out.status.success() && text(&out.stdout).contains("installed"),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        !env.path("home/.cache/x").exists() && !env.path("home/.npm/_cacache").exists(),
        "the user's caches were not written"
    );
    let root = env.path("data/valetkey/box-caches/default");
    assert_eq!(
        std::fs::read_to_string(root.join("cache/x/f")).expect("the profile's cache"),
        "kept\n"
    );
    assert!(
        root.join("npm/_cacache").is_dir(),
        "npm's cache is the profile's"
    );
    // Kept between runs of the profile.
    let again = run("cat ~/.cache/x/f");
    assert_eq!(text(&again.stdout), "kept\n", "{}", text(&again.stderr));
}

/// A profile added to config.toml is there for the next `valetkey run`,
/// with no restart (it was refused with "add [box.profiles.research]",
/// the profile just added). An edit that does not load keeps the profiles
/// in force, and a missing profile's refusal says why the edit was not
/// taken.
#[test]
fn a_profile_added_to_config_toml_is_seen_without_a_restart() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let work = env.path("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let explain = |profile: &str| {
        env.command(bin("valetkey"))
            .args(["run", "--explain", "--profile", profile, "--", "true"])
            .current_dir(&work)
            .output()
            .expect("valetkey run --explain")
    };
    env.write_config("\n[box.profiles.research]\nnetwork = \"none\"\n")
        .expect("config");
    let mut seen = None;
    crate::harness::wait_until(std::time::Duration::from_secs(10), || {
        let o = explain("research");
        let ok = o.status.success();
        seen = Some(o);
        ok
    })
    .unwrap_or_else(|_| panic!("the new profile was not seen: {:?}", seen));
    assert!(text(&seen.expect("output").stdout).contains("profile:   research (network none)"));
    // A bad edit: the profiles in force stay, and the refusal says why.
    std::fs::write(
        env.path("config/valetkey/config.toml"),
        "[box.profiles.research]\nnetwork = \"sideways\"\n[box.profiles.later]\n",
    )
    .expect("bad config");
    let mut why = String::new();
    crate::harness::wait_until(std::time::Duration::from_secs(10), || {
        why = text(&explain("later").stderr);
        why.contains("was not loaded")
    })
    .unwrap_or_else(|_| panic!("the refusal does not say why: {why}"));
    assert!(why.contains("sideways") || why.contains("network"), "{why}");
    assert!(
        explain("research").status.success(),
        "the old profile stays in force"
    );
    let audit = env.cli_ok(&["audit", "--kind", "config.reload", "--json"]);
    assert!(
        audit.contains("loaded") && audit.contains("refused"),
        "{audit}"
    );
}

/// Finding 4 of "the first hour": the default box had the host's network,
/// so it reached the user's local services; with no network a tool could
/// fetch nothing. Now its network is `filtered`: a namespace of its own,
/// with the egress proxy tunnelling the package registries. pip and npm,
/// with their own defaults, fetch from the real PyPI and npm registry
/// (the only network CI has), while a service on the host's `localhost`
/// is out of reach, directly and through the proxy.
#[test]
fn the_default_box_reaches_the_registries_and_not_localhost() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let work = env.path("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    // A local service the user runs (a dev server, a database).
    let service = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = service.local_addr().expect("addr").port();
    // Debian's python3 has no pip: a venv brings its bundled one.
    let st = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(work.join("venv"))
        .status()
        .expect("python3 -m venv");
    assert!(
        st.success(),
        "python3 -m venv (apt-get install python3-venv)"
    );
    // cargo: the user's (rustup's proxy where rustup installed it, which
    // finds its toolchains in RUSTUP_HOME: the test world's HOME is not the
    // user's). A home with ~/.cargo is one whose box gets cargo's caches.
    let cargo = which("cargo");
    let rustup = std::env::var("RUSTUP_HOME")
        .unwrap_or_else(|_| format!("{}/.rustup", std::env::var("HOME").unwrap_or_default()));
    std::fs::create_dir_all(env.path("home/.cargo")).expect("~/.cargo");
    let script = format!(
        "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 3)' 2> direct.err; echo $? > direct.rc
curl -sS --max-time 10 -o /dev/null https://localhost:{port}/ 2> proxied.err; echo $? > proxied.rc
venv/bin/pip download --quiet --no-deps --dest dl six==1.16.0 2> pip.err; echo $? > pip.rc
npm view left-pad@1.3.0 version > npm.out 2> npm.err; echo $? > npm.rc
mkdir -p crate/src && : > crate/src/lib.rs
printf '[package]\\nname = \"t\"\\nversion = \"0.1.0\"\\nedition = \"2021\"\\n[dependencies]\\nitoa = \"=1.0.11\"\\n' > crate/Cargo.toml
(cd crate && RUSTUP_HOME={rustup} {cargo} fetch --quiet) 2> cargo.err; echo $? > cargo.rc
",
        cargo = cargo.display()
    );
    let out = env
        .command(bin("valetkey"))
        .args(["run", "--", "sh", "-c", &script])
        .current_dir(&work)
        .output()
        .expect("valetkey run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read = |f: &str| std::fs::read_to_string(work.join(f)).unwrap_or_default();
    assert_ne!(
        read("direct.rc").trim(),
        "0",
        "the host's localhost is not the box's"
    );
    assert!(
        read("direct.err").contains("Connection refused"),
        "{}",
        read("direct.err")
    );
    assert_ne!(
        read("proxied.rc").trim(),
        "0",
        "nor is it reachable through the proxy"
    );
    assert!(
        read("proxied.err").contains("403"),
        "{}",
        read("proxied.err")
    );
    assert_eq!(read("pip.rc").trim(), "0", "pip: {}", read("pip.err"));
    let wheels: Vec<_> = std::fs::read_dir(work.join("dl"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        wheels
            .iter()
            .any(|w| w.to_string_lossy().starts_with("six-1.16.0")),
        "{wheels:?}"
    );
    assert_eq!(read("npm.rc").trim(), "0", "npm: {}", read("npm.err"));
    assert_eq!(read("npm.out").trim(), "1.3.0");
    // cargo fetch from crates.io, into the default profile's own registry
    // cache (the user's ~/.cargo stays read-only in the box).
    assert_eq!(read("cargo.rc").trim(), "0", "cargo: {}", read("cargo.err"));
    let fetched = env.path("data/valetkey/box-caches/default/cargo-registry/cache");
    let crates: Vec<String> = std::fs::read_dir(&fetched)
        .map(|d| {
            d.flatten()
                .flat_map(|index| std::fs::read_dir(index.path()).into_iter().flatten())
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        crates.contains(&"itoa-1.0.11.crate".to_owned()),
        "{crates:?} in {}",
        fetched.display()
    );
    assert!(
        !env.path("home/.cargo/registry/cache").exists(),
        "the user's cargo cache was written"
    );
    drop(service);
}

/// `valetkey doctor` says what the box does here, each line something a
/// new user met with no word why (findings 4 and 7): a default profile
/// with the host's network, where tools' caches go, a `read_write` path a
/// box cannot make, an edit of config.toml the daemon refused, and a
/// version manager's shim on `PATH`. Before, its one box line was
/// "bubblewrap can make a box".
#[test]
fn doctor_names_the_box_network_caches_paths_edits_and_shims() {
    let mut env = TestEnv::new().expect("env");
    let outside = env.path("elsewhere/not-made");
    env.write_config(&format!(
        "[box]\nprofile = \"wide\"\n[box.profiles.wide]\nnetwork = \"shared\"\n\
         read_write = [\"~/later\", \"{}\"]\n[box.profiles.bare]\ncaches = false\n",
        outside.display()
    ))
    .expect("config");
    env.start_daemon().expect("daemon");
    let (shim, target) = pyenv_shim(&env.path("pyenv"));
    let path = format!(
        "{}:{}",
        shim.parent().expect("shims").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let doctor = || {
        let o = env
            .command(bin("valetkey"))
            .arg("doctor")
            .env("PATH", &path)
            .output()
            .expect("valetkey doctor");
        (o.status.code(), text(&o.stdout))
    };
    let (code, o) = doctor();
    // A profile whose boxes cannot start is a failure.
    assert_eq!(code, Some(1), "{o}");
    let caches = env.path("data/valetkey/box-caches");
    for line in [
        "warn box-net    the default profile (wide) shares the host's network".to_owned(),
        "fix: set network = \"filtered\" in [box.profiles.wide]".to_owned(),
        format!("ok   box-caches boxes write tools' caches (~/.cache, ~/.npm, cargo's registry) in {}/PROFILE", caches.display()),
        "(profiles: default, offline, wide); your own caches stay read-only; caches = false in bare".to_owned(),
        format!("ok   box-paths  profile wide: read_write {} does not exist yet", env.path("home/later").display()),
        format!("FAIL box-paths  profile wide: read_write {} does not exist and is outside your home", outside.display()),
        "ok   box-config no edit of config.toml since the daemon started".to_owned(),
        format!("ok   shims      {} is a shim of", shim.display()),
        format!("binds to {}, the program it runs here", target.display()),
    ] {
        assert!(o.contains(&line), "missing {line:?} in:\n{o}");
    }
    assert!(!env.path("home/later").exists(), "the doctor made a path");

    // A bad edit: the doctor says the daemon refused it, and why.
    env.write_config("[box.profiles.wide]\nnetwork = \"sideways\"\n")
        .expect("bad config");
    let mut seen = String::new();
    crate::harness::wait_until(std::time::Duration::from_secs(10), || {
        seen = doctor().1;
        seen.contains("warn box-config the daemon refused the last edit of config.toml")
    })
    .unwrap_or_else(|_| panic!("no refusal in:\n{seen}"));
    assert!(seen.contains("sideways"), "{seen}");
    assert!(
        seen.contains("the profiles before it are in force; fix: correct the file"),
        "{seen}"
    );

    // Corrected: taken, and the default profile is filtered again.
    env.write_config("").expect("config");
    crate::harness::wait_until(std::time::Duration::from_secs(10), || {
        seen = doctor().1;
        seen.contains("ok   box-config the daemon took the last edit of config.toml")
    })
    .unwrap_or_else(|_| panic!("the corrected edit was not taken:\n{seen}"));
    assert!(
        seen.contains("ok   box-net    the default profile (default) is filtered: a box reaches the providers' hosts and"),
        "{seen}"
    );
    assert!(!seen.contains("box-paths"), "{seen}");
}

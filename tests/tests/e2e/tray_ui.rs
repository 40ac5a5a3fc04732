//! The tray app end to end: the real `valetkey-tray` binary in
//! WebKitWebDriver under Xvfb, driven through tauri-driver, against the real
//! daemon, keychain and provider. A person's clicks, nothing mocked:
//!
//! 1. an agent asks;
//! 2. the card appears;
//! 3. Allow for 1 hour, and the waiting agent gets its token;
//! 4. Revoke, and its next request is refused and its token is dead at the
//!    provider.
//!
//! Screenshots of the three views are saved from this run (to
//! `docs/screenshots/` when `VALETKEY_SCREENSHOTS=1`, else into the test's
//! tempdir) and checked to be real images of the window.

use std::path::Path;
use std::time::{Duration, Instant};

use valetkey_ipc::methods::{AgentInfo, TokenGet, TokenGetParams};
use valetkey_ipc::Client;

use crate::harness::{bin, code, repo, token_params, TestEnv};
use crate::webdriver::{Session, Xvfb};

const AGENT: &str = "issue-triage";

async fn agent(env: &TestEnv) -> Client {
    let mut c = Client::connect(&env.socket).await.expect("connect");
    c.hello(AgentInfo {
        name: AGENT.into(),
        version: "1.4.2".into(),
        purpose: "label new issues in the team's repositories".into(),
    })
    .await
    .expect("hello");
    c
}

/// The window program on a fresh X server (the server lives as long as
/// the first half of the pair).
async fn window_session(env: &TestEnv) -> (Xvfb, Session) {
    let x = Xvfb::start(env).expect("xvfb");
    let ui = Session::start(env, &x.display, &bin("valetkey-window"), &[])
        .await
        .expect("window session");
    (x, ui)
}

/// Saves a PNG and checks it is one, of a window-sized image that is not a
/// blank screen.
fn save_screenshot(env: &TestEnv, name: &str, png: &[u8]) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().expect("ihdr"));
    let height = u32::from_be_bytes(png[20..24].try_into().expect("ihdr"));
    assert!(width >= 600 && height >= 400, "{name} is {width}x{height}");
    // A blank window compresses to a few KB; a rendered view to 14-30 KB
    // (the Pending card has measured as low as 14.5 KB).
    assert!(
        png.len() > 8_000,
        "{name} looks blank ({} bytes)",
        png.len()
    );
    let dir = if std::env::var_os("VALETKEY_SCREENSHOTS").is_some() {
        repo().join("../docs/screenshots")
    } else {
        env.path("screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_for_an_hour_then_revoke_from_the_tray_window() {
    let mut env = TestEnv::new().expect("env");
    env.write_config("revoke_agent_tokens = true")
        .expect("config");
    env.start_daemon().expect("daemon");
    env.login();
    let (_x, ui) = window_session(&env).await;

    // The window connects by itself and has nothing to show yet.
    ui.wait_for_text("#view-pending", "No agent is waiting")
        .await
        .expect("connected, empty");

    // 1. An agent asks and waits (the default).
    let mut asking = agent(&env).await;
    let asked = Instant::now();
    let waiting = tokio::spawn(async move {
        let r = asking
            .call::<TokenGet>(&TokenGetParams::new("local", &["repo:read"]))
            .await;
        (r, asking)
    });

    // 2. The card appears, with who is asking.
    let text = ui
        .wait_for_text("[data-consent]", "wants")
        .await
        .expect("consent card");
    for fact in [
        "issue-triage (not in a box) wants to use Local test IdP with repo:read",
        "label new issues in the team's repositories",
        &std::env::current_exe().expect("exe").display().to_string(),
        "repo:read",
    ] {
        assert!(text.contains(fact), "card lacks {fact:?}:\n{text}");
    }
    // The facts a security-minded user checks are folded under Details:
    // not shown until it is opened.
    assert!(!text.contains("sha256:"), "{text}");
    ui.js("document.querySelector('[data-consent] details summary').click(); return 0;")
        .await
        .expect("open Details");
    let text = ui
        .wait_for_text("[data-consent]", "sha256:")
        .await
        .expect("Details opened");
    assert!(text.contains("Started by"), "{text}");
    ui.wait_for_text("#pending-count", "1")
        .await
        .expect("pending count");
    save_screenshot(&env, "pending", &ui.screenshot().await.expect("shot"));
    // At 200 % zoom the card still fits: no sideways scrolling.
    let overflow = ui
        .js("document.documentElement.style.zoom = '2'; \
             const o = document.documentElement.scrollWidth - document.documentElement.clientWidth; \
             document.documentElement.style.zoom = ''; return o;")
        .await
        .expect("zoom");
    assert!(
        overflow.as_i64().unwrap_or(i64::MAX) <= 0,
        "horizontal overflow at 200 %: {overflow}"
    );

    // 3. Allow for 1 hour: the waiting agent gets its token.
    ui.click_css("[data-consent] [data-action=allow-for]")
        .await
        .expect("click Allow for 1 hour");
    let (got, mut asking) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("agent answered")
        .expect("join");
    let token = got.expect("a token after Allow");
    let round_trip = asked.elapsed();
    assert_eq!(token.scopes, vec!["repo:read".to_string()]);
    let secret = token.access_token.expose().to_owned();
    let info = env.introspect(&secret).await;
    assert_eq!(info["active"], true, "{info}");
    eprintln!("consent round trip through the tray (request → click → token): {round_trip:?}");

    // The Agents view shows the grant, expiring in about an hour.
    ui.click_css("#tab-agents").await.expect("agents tab");
    let row_text = ui
        .wait_for_text("[data-agent=issue-triage] tr[data-grant]", "repo:read")
        .await
        .expect("grant row");
    assert!(row_text.contains("repo:read"), "{row_text}");
    assert!(
        row_text.contains("in 59 min") || row_text.contains("in 1 h"),
        "{row_text}"
    );
    save_screenshot(&env, "agents", &ui.screenshot().await.expect("shot"));

    // 4. Revoke: the next request is refused, and the token is dead upstream.
    ui.click_css("[data-agent=issue-triage] [data-action=revoke-grant]")
        .await
        .expect("click Revoke");
    let clicked = Instant::now();
    let refused = loop {
        let mut again = agent(&env).await;
        match again
            .call::<TokenGet>(&token_params(&["repo:read"], false))
            .await
        {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    clicked.elapsed() < Duration::from_secs(1),
                    "still issuing 1 s after Revoke"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let refusal = clicked.elapsed();
    assert_eq!(code(&refused), Some("consent_required"), "{refused}");
    assert!(
        refusal < Duration::from_secs(1),
        "refused only after {refusal:?}"
    );
    eprintln!("revocation → refusal through the tray: {refusal:?}");
    // The old connection was closed by the revocation.
    let old = asking
        .call::<TokenGet>(&TokenGetParams::new("local", &["repo:read"]))
        .await;
    assert!(old.is_err(), "the revoked agent's connection still answers");
    let start = Instant::now();
    while env.introspect(&secret).await["active"] == true {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "token still active upstream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ui.wait_for_text("[data-agent=issue-triage]", "No grants.")
        .await
        .expect("grant gone from the view");

    // The new request above is now pending again; the activity view shows
    // the whole story.
    ui.click_css("#tab-activity").await.expect("activity tab");
    let activity = ui
        .wait_for_text("table.activity", "revoked")
        .await
        .expect("activity lists the revocation");
    for kind in ["consent.requested", "consent.decided", "token.issued"] {
        assert!(
            activity.contains(kind),
            "activity lacks {kind}:\n{activity}"
        );
    }
    save_screenshot(&env, "activity", &ui.screenshot().await.expect("shot"));

    ui.close().await;
    env.assert_no_leaks(&[secret], &[]);
    let driver_log = std::fs::read_to_string(env.path("logs/tauri-driver.log")).unwrap_or_default();
    assert!(
        !driver_log.contains(token.access_token.expose()),
        "token in the tray's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_follows_the_daemon_down_and_starts_it_again() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let (_x, ui) = window_session(&env).await;
    ui.wait_for("#pause").await.expect("connected");

    // The daemon stops: the window says so and offers Start.
    env.stop_daemon();
    ui.wait_for_text("#banner", "Daemon not running")
        .await
        .expect("down banner");

    // Start launches the valetkeyd installed next to the tray, and the
    // window reconnects on its own.
    ui.click_css("#start-daemon").await.expect("click Start");
    ui.wait_for("#pause").await.expect("reconnected");
    let pid = daemon_pid(&env.socket).await;
    assert!(pid > 0);

    // Pause from the window reaches the daemon: agents are refused.
    ui.click_css("#pause").await.expect("click Pause");
    ui.wait_for_text("#banner", "Issuing is paused")
        .await
        .expect("paused banner");
    let e = env
        .agent("x")
        .await
        .call::<TokenGet>(&token_params(&["repo:read"], true))
        .await
        .expect_err("paused");
    assert_eq!(code(&e), Some("issuing_paused"));
    ui.click_css("#resume").await.expect("click Resume");
    ui.wait_for("#pause").await.expect("resumed");

    ui.close().await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// The pid of whatever serves `socket` (the daemon the tray started).
async fn daemon_pid(socket: &Path) -> i32 {
    let s = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    s.peer_cred().expect("peer cred").pid().expect("pid")
}

/// The tray that runs all day carries no WebKit and no GTK. Open (a second
/// `valetkey-tray --show`, as the app menu and notifications do) starts
/// `valetkey-window` as the tray's child; its close button (the
/// WM_DELETE_WINDOW a window manager sends) ends that process and every
/// WebKit process with it; Open starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_carries_no_webkit_and_closing_the_window_ends_it() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let x = Xvfb::start(&env).expect("xvfb");
    let (mut tray, log) = start_tray(&env, Some(&x.display));
    let pid = tray.0.id();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    for lib in ["libwebkit2gtk", "libjavascriptcoregtk", "libgtk-3"] {
        assert!(!maps.contains(lib), "the tray maps {lib}");
    }
    assert!(descendants(pid).is_empty(), "the tray started something");

    for round in 1..=2 {
        let shown = env
            .command(bin("valetkey-tray"))
            .arg("--show")
            .env("DISPLAY", &x.display)
            .status()
            .expect("--show");
        assert!(shown.success(), "the second launch hands over and exits 0");
        wait_until("the window opened", || window(&env, &x.display).is_some());
        wait_until("the window is the tray's child, with WebKit", || {
            let d = descendants(pid);
            d.iter().any(|c| c == "valetkey-window")
                && d.iter().any(|c| c.starts_with("WebKitWebProces"))
        });
        let w = window(&env, &x.display).expect("window");
        let closed = env
            .command("python3")
            .arg(repo().join("../bench/x11-close.py"))
            .arg(&w)
            .env("DISPLAY", &x.display)
            .status()
            .expect("x11-close.py");
        assert!(closed.success());
        wait_until("the window process and its WebKit ended", || {
            descendants(pid).is_empty()
        });
        assert!(window(&env, &x.display).is_none());
        assert!(
            tray.0.try_wait().expect("wait").is_none(),
            "the tray quit with the window (round {round}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

/// The tray's menu is exported over D-Bus (com.canonical.dbusmenu), as
/// every tray host reads it: clicking "Pause all agents" there pauses the
/// daemon, the menu then offers Resume, and Resume resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_from_the_tray_menu() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let (tray, _log) = start_tray(&env, None);
    let dest = format!("org.kde.StatusNotifierItem-{}-1", tray.0.id());
    wait_until("the menu offers Pause", || {
        menu_item(&env, &dest, "Pause all agents").is_some_and(|(_, on)| on)
    });
    let (pause, _) = menu_item(&env, &dest, "Pause all agents").expect("Pause");
    click(&env, &dest, pause);
    let refused = || async {
        env.agent("x")
            .await
            .call::<TokenGet>(&token_params(&["repo:read"], false))
            .await
            .err()
            .and_then(|e| code(&e).map(str::to_owned))
    };
    wait_until("the menu offers Resume", || {
        menu_item(&env, &dest, "Resume").is_some_and(|(_, on)| on)
    });
    assert_eq!(refused().await.as_deref(), Some("issuing_paused"));
    let (resume, _) = menu_item(&env, &dest, "Resume").expect("Resume");
    click(&env, &dest, resume);
    wait_until("the menu offers Pause again", || {
        menu_item(&env, &dest, "Pause all agents").is_some_and(|(_, on)| on)
    });
    assert_ne!(refused().await.as_deref(), Some("issuing_paused"));
}

/// A tray killed when the test ends, passed or not (a left-over tray
/// would hold the test runner's output open).
struct Tray(std::process::Child);

impl Drop for Tray {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `valetkey-tray` (it needs no display) and waits until it owns
/// the session.
fn start_tray(env: &TestEnv, display: Option<&str>) -> (Tray, std::path::PathBuf) {
    let log = env.path("tray.log");
    let mut cmd = env.command(bin("valetkey-tray"));
    if let Some(d) = display {
        cmd.env("DISPLAY", d);
    }
    let tray = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("valetkey-tray");
    let tray = Tray(tray);
    wait_until("the tray started", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("valetkey-tray starting"))
    });
    (tray, log)
}

/// Calls `com.canonical.dbusmenu.METHOD` on the tray's menu with `args`.
fn dbusmenu(env: &TestEnv, dest: &str, method: &str, args: &[&str]) -> std::process::Output {
    env.command("gdbus")
        .args([
            "call",
            "--session",
            "--dest",
            dest,
            "--object-path",
            "/MenuBar",
        ])
        .args([
            "--method",
            &format!("com.canonical.dbusmenu.{method}"),
            "--",
        ])
        .args(args)
        .output()
        .expect("gdbus")
}

/// The id of the tray menu's item labelled `label`, and whether it is
/// enabled, from `GetLayout`.
fn menu_item(env: &TestEnv, dest: &str, label: &str) -> Option<(u32, bool)> {
    let o = dbusmenu(env, dest, "GetLayout", &["0", "-1", "[]"]);
    let out = String::from_utf8_lossy(&o.stdout);
    // Items print as `<(ID, {'enabled': <false>, 'label': <'…'>}, @av [])>`.
    let at = out.find(&format!("'label': <'{label}'>"))?;
    let open = out[..at].rfind("<(")?;
    let id = out[open + 2..at].split(',').next()?.trim().parse().ok()?;
    let item = &out[open..];
    let item = &item[..item.find("[])>").unwrap_or(item.len())];
    Some((id, !item.contains("'enabled': <false>")))
}

fn click(env: &TestEnv, dest: &str, id: u32) {
    let o = dbusmenu(
        env,
        dest,
        "Event",
        &[&id.to_string(), "clicked", "<0>", "0"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The app's visible window, as `xdotool search` names it.
fn window(env: &TestEnv, display: &str) -> Option<String> {
    let o = env
        .command("xdotool")
        .args(["search", "--onlyvisible", "--name", "^Valet Key"])
        .env("DISPLAY", display)
        .output()
        .expect("xdotool");
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines().next().map(str::to_owned)
}

/// The names (`comm`) of every process below `pid`.
fn descendants(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let kids =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        for k in kids
            .split_whitespace()
            .filter_map(|k| k.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{k}/comm")).unwrap_or_default();
            names.push(comm.trim().to_owned());
            todo.push(k);
        }
    }
    names
}

/// Finding 9 of "the first hour": each kind of card as a person sees it,
/// with screenshots for docs/. A proxy box's card says the action in the
/// rules' words; a card raised through `valetkey` itself (as for an MCP
/// client behind `valetkey mcp proxy`, or `valetkey token` in a script)
/// names the program above it, not valetkey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_card_leads_with_the_action_and_names_the_real_program() {
    let mut env = TestEnv::new().expect("env");
    env.write_config(
        r#"
[providers.local.proxy]
hosts = { api = "api.valetkey.test" }
says = { "repo:read" = "read code" }
[providers.local.proxy.rules]
"repo:read" = ["GET api /repos/{owner}/{repo}/**"]
"#,
    )
    .expect("config");
    env.start_daemon().expect("daemon");
    env.login();
    std::fs::create_dir_all(env.path("work")).expect("work");
    let (_x, ui) = window_session(&env).await;
    ui.wait_for_text("#view-pending", "No agent is waiting")
        .await
        .expect("connected, empty");
    let mut ctl = crate::harness::subscribed(&env).await;
    let deny = valetkey_ipc::control::Decision::Deny { remember: false };

    let boxed = env
        .command(bin("valetkey"))
        .args(["run", "--net", "proxy", "--name", "triage-bot"])
        .args(["--env", "GH_TOKEN=local:repo:read", "--", "sleep", "60"])
        .current_dir(env.path("work"))
        .spawn()
        .expect("valetkey run");
    let boxed = crate::harness::Proc(boxed);
    let text = ui
        .wait_for_text("[data-consent] h2", "triage-bot (in a box)")
        .await
        .expect("the box's card");
    assert_eq!(
        text,
        "triage-bot (in a box) wants to read code in every repository on Local test IdP"
    );
    let card = ui
        .text_of("[data-consent]")
        .await
        .expect("card")
        .unwrap_or_default();
    assert!(
        card.contains("Program\n/usr/bin/sleep"),
        "the box's program, not valetkey: {card}"
    );
    assert!(card.contains("read code in every repository"), "{card}");
    save_screenshot(&env, "pending-box", &ui.screenshot().await.expect("shot"));
    let asked = crate::harness::next_consent(&mut ctl).await;
    crate::harness::decide(&mut ctl, &asked.id, deny, None)
        .await
        .expect("deny");
    drop(boxed);
    ui.wait_for_text("#view-pending", "No agent is waiting")
        .await
        .expect("the box's card is gone");

    let script = format!(
        "exec {} token local --scope repo:read > /dev/null",
        bin("valetkey").display()
    );
    let through = env.command("sh").args(["-c", &script]).spawn().expect("sh");
    let through = crate::harness::Proc(through);
    let card = ui
        .wait_for_text(
            "[data-consent]",
            "valetkey-cli (not in a box) wants to read code",
        )
        .await
        .expect("the card");
    assert!(card.contains("through valetkey"), "{card}");
    assert!(
        !card.contains("valetkey run"),
        "no hint it cannot use: {card}"
    );
    save_screenshot(
        &env,
        "pending-through-valetkey",
        &ui.screenshot().await.expect("shot"),
    );
    let asked = crate::harness::next_consent(&mut ctl).await;
    crate::harness::decide(&mut ctl, &asked.id, deny, None)
        .await
        .expect("deny");
    drop(through);
}

//! Desktop notifications through a real notification server: dunst on the
//! env's private bus, drawing on Xvfb. Its rules record every notification
//! it shows, and its context menu (`dunstctl context`) runs a stand-in
//! dmenu that picks "Allow for 1 hour", so the click comes from dunst
//! itself, the owner of org.freedesktop.Notifications.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use valetkey_ipc::control::{
    AgentsList, ConsentList, Decision, Revoke, RevokeParams, RevokeTarget,
};
use valetkey_ipc::methods::{NoParams, TokenGet};
use valetkey_ipc::Client;

use crate::harness::{
    ask_in_background, code, decide, env_with, next_consent, subscribed, token_params, wait_until,
    Proc, TestEnv,
};
use crate::webdriver::Xvfb;

struct Dunst {
    shown: PathBuf,
    _proc: Proc,
}

impl Dunst {
    fn start(env: &TestEnv, display: &str) -> Dunst {
        let shown = env.path("logs/notifications.txt");
        let record = env.path("record.sh");
        let pick = env.path("pick.sh");
        std::fs::write(
            &record,
            format!(
                "#!/bin/sh\nprintf '%s|%s|%s|%s\\n' \"$DUNST_ID\" \"$2\" \"$(printf %s \"$3\" | tr '\\n' ' ')\" \"$1\" >> {}\n",
                shown.display()
            ),
        )
        .expect("record.sh");
        // dmenu's contract: menu lines on stdin, the chosen one on stdout.
        std::fs::write(&pick, "#!/bin/sh\ngrep -m1 -i allow\n").expect("pick.sh");
        for f in [&record, &pick] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let conf = env.path("dunstrc");
        std::fs::write(
            &conf,
            format!(
                "[global]\n    dmenu = {}\n    show_indicators = yes\n\n[record]\n    summary = \"*\"\n    script = {}\n",
                pick.display(),
                record.display()
            ),
        )
        .expect("dunstrc");
        let child = env
            .command("dunst")
            .args(["-config", &conf.to_string_lossy()])
            .env("DISPLAY", display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst (scripts/setup.sh installs it)");
        let d = Dunst {
            shown,
            _proc: Proc(child),
        };
        env.wait_for_bus_name("org.freedesktop.Notifications")
            .expect("dunst on the bus");
        d
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.shown)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn wait_for(&self, text: &str) -> String {
        let mut found = None;
        wait_until(Duration::from_secs(10), || {
            found = self.lines().into_iter().find(|l| l.contains(text));
            found.is_some()
        })
        .unwrap_or_else(|_| panic!("no notification with {text:?}; shown: {:?}", self.lines()));
        found.unwrap_or_default()
    }
}

/// Daemon up and logged in, a subscribed control connection, and Xvfb
/// plus dunst on the env's bus (the daemon finds the notification server
/// per notification, so the order does not matter).
async fn desktop() -> (TestEnv, Xvfb, Dunst, Client) {
    let env = env_with("");
    let x = Xvfb::start(&env).expect("xvfb");
    let dunst = Dunst::start(&env, &x.display);
    let ctl = subscribed(&env).await;
    (env, x, dunst, ctl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_and_revocation_notifications_with_a_working_allow_button() {
    let (env, x, dunst, mut ctl) = desktop().await;

    let waiting = ask_in_background(&env, "notified", &["repo:read"]).await;
    let consent = next_consent(&mut ctl).await;

    // The prompt names the agent, the scopes, the binary and the purpose.
    let line = dunst.wait_for("notified wants access");
    let exe = std::env::current_exe().expect("exe").display().to_string();
    for fact in [
        "repo:read",
        "Local test IdP",
        exe.as_str(),
        "e2e test",
        "Valet Key",
    ] {
        assert!(line.contains(fact), "notification lacks {fact:?}: {line}");
    }

    // "Allow for 1 hour", picked in dunst's own menu, decides the consent.
    let o = env
        .command("dunstctl")
        .arg("context")
        .env("DISPLAY", &x.display)
        .output()
        .expect("dunstctl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let token = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap_or_else(|_| panic!("no answer; daemon log:\n{}", env.log()))
        .expect("join")
        .expect("a token after Allow in the notification");
    assert_eq!(token.scopes, vec!["repo:read".to_string()]);
    let agents = ctl.call::<AgentsList>(&NoParams {}).await.expect("agents");
    let grant = agents.agents[0].grants[0].clone();
    let expires_in = grant.expires_at.expect("a timed grant") - unix_now();
    assert!(
        (3500..=3600).contains(&expires_in),
        "grant expires in {expires_in}s"
    );
    assert!(env.log().contains(&consent.id));
    assert!(env.log().contains("decided from the notification"));

    // Revocation is announced too.
    ctl.call::<Revoke>(&RevokeParams {
        target: RevokeTarget::Grant { id: grant.id },
    })
    .await
    .expect("revoke");
    dunst.wait_for(&format!("revoked grant {}", grant.id));

    let secret = token.access_token.expose().to_owned();
    let shown = dunst.lines().join("\n");
    assert!(!shown.contains(&secret), "a token reached a notification");
    env.assert_no_leaks(&[secret], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_action_signal_decides_nothing() {
    let (env, _x, dunst, mut ctl) = desktop().await;
    let mut agent = env.agent("forger").await;
    let e = agent
        .call::<TokenGet>(&token_params(&["repo:read"], false))
        .await
        .expect_err("consent needed");
    assert_eq!(code(&e), Some("consent_required"));
    let consent = next_consent(&mut ctl).await;
    let line = dunst.wait_for("forger wants access");
    let id: u32 = line
        .split('|')
        .next()
        .unwrap_or_default()
        .parse()
        .expect("DUNST_ID");

    // An agent on the same bus "clicks" Allow by emitting the signal itself.
    let conn = zbus::connection::Builder::address(env.bus.as_str())
        .expect("address")
        .build()
        .await
        .expect("bus");
    conn.emit_signal(
        None::<&str>,
        "/org/freedesktop/Notifications",
        "org.freedesktop.Notifications",
        "ActionInvoked",
        &(id, "allow-1h"),
    )
    .await
    .expect("emit");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pending = ctl.call::<ConsentList>(&NoParams {}).await.expect("list");
    assert!(
        pending.consents.iter().any(|c| c.id == consent.id),
        "a forged signal decided the consent"
    );
    assert!(env.log().contains("not the notification server"));
}

/// With no notification server at all, prompts still work (the failure is
/// logged, never in the way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_notification_server_never_blocks_a_consent() {
    let env = env_with("");
    let mut ctl = subscribed(&env).await;
    let waiting = ask_in_background(&env, "quiet", &["repo:read"]).await;
    let consent = next_consent(&mut ctl).await;
    decide(&mut ctl, &consent.id, Decision::Once, None)
        .await
        .expect("decide");
    let token = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answer")
        .expect("join")
        .expect("token");
    assert_eq!(token.scopes, vec!["repo:read".to_string()]);
    wait_until(Duration::from_secs(5), || {
        env.log().contains("no desktop notification")
    })
    .expect("the failure to notify is logged");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

//! While the session is locked no consent can be given. A stand-in for
//! logind and the screensaver (our own service, owning the real well-known
//! names on the env's private session bus) emits the signals the daemon
//! listens for; a second connection that does not own the names tries to
//! forge an unlock and is ignored.

use std::time::Duration;

use valetkey_ipc::control::{Decision, Event, Status};
use valetkey_ipc::methods::{NoParams, TokenGet, TokenGetParams};
use valetkey_ipc::Client;

use crate::harness::{
    ask_in_background, code, decide, env_with, next_consent, subscribed, TestEnv,
};

const SESSION_PATH: &str = "/org/freedesktop/login1/session/_31";

/// A connection to the env's bus owning `name`.
async fn service(env: &TestEnv, name: Option<&str>) -> zbus::Connection {
    let mut b = zbus::connection::Builder::address(env.bus.as_str()).expect("address");
    if let Some(n) = name {
        b = b.name(n.to_owned()).expect("name");
    }
    b.build().await.expect("connect to the private bus")
}

async fn logind_signal(conn: &zbus::Connection, member: &str) {
    conn.emit_signal(
        None::<()>,
        SESSION_PATH,
        "org.freedesktop.login1.Session",
        member,
        &(),
    )
    .await
    .expect("emit");
}

async fn wait_locked(ctl: &mut Client, locked: bool) {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), ctl.next_event())
            .await
            .expect("status event within 10 s")
            .expect("event");
        if let Event::StatusChanged { status } = e {
            if status.session_locked == locked {
                return;
            }
        }
    }
}

async fn setup(consent_toml: &str) -> (TestEnv, Client) {
    let env = env_with(consent_toml);
    let ctl = subscribed(&env).await;
    (env, ctl)
}

#[tokio::test]
async fn hold_keeps_the_prompt_but_no_decision_is_taken_while_locked() {
    let (env, mut ctl) = setup("").await;
    let logind = service(&env, Some("org.freedesktop.login1")).await;
    let forger = service(&env, None).await;

    let waiting = ask_in_background(&env, "locked-out", &["repo:read"]).await;
    let id = next_consent(&mut ctl).await.id;

    logind_signal(&logind, "Lock").await;
    wait_locked(&mut ctl, true).await;
    let hour = Decision::For {
        duration_secs: 3600,
    };
    let e = decide(&mut ctl, &id, hour, None).await.expect_err("locked");
    assert_eq!(code(&e), Some("session_locked"));

    // A forged Unlock from a connection that is not logind changes nothing.
    logind_signal(&forger, "Unlock").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = ctl.call::<Status>(&NoParams {}).await.expect("status");
    assert!(st.session_locked, "forged unlock ignored");
    assert_eq!(st.pending, 1, "held, not refused");
    assert!(env
        .log()
        .contains("ignored a lock signal not sent by the name's owner"));

    logind_signal(&logind, "Unlock").await;
    wait_locked(&mut ctl, false).await;
    decide(&mut ctl, &id, hour, None)
        .await
        .expect("decided after unlock");
    waiting
        .await
        .expect("join")
        .expect("the held request gets its token");
}

#[tokio::test]
async fn refuse_answers_user_away_when_the_screensaver_activates() {
    let (env, mut ctl) = setup("on_lock = \"refuse\"").await;
    let saver = service(&env, Some("org.freedesktop.ScreenSaver")).await;
    let waiting = ask_in_background(&env, "away", &["repo:read"]).await;
    next_consent(&mut ctl).await;
    saver
        .emit_signal(
            None::<()>,
            "/org/freedesktop/ScreenSaver",
            "org.freedesktop.ScreenSaver",
            "ActiveChanged",
            &(true,),
        )
        .await
        .expect("emit");
    wait_locked(&mut ctl, true).await;
    let e = waiting.await.expect("join").expect_err("refused");
    assert_eq!(code(&e), Some("user_away"));
    let mut again = env.agent("away").await;
    let e = again
        .call::<TokenGet>(&TokenGetParams::new("local", &["repo:read"]))
        .await
        .expect_err("refused at once while locked");
    assert_eq!(code(&e), Some("user_away"));
}

//! Faults from outside: a locked or vanished keychain, a provider that is
//! down, failing or has revoked the grant. Each gets its own error code, the
//! daemon keeps serving, and it recovers when the fault clears.

use crate::harness::{code, https_client, TestEnv};

#[tokio::test]
async fn provider_down_gives_provider_unavailable_then_recovers() {
    let (mut env, mut c) = TestEnv::with_agent("weather", &["repo:read", "issues:read"]).await;
    let cached = c
        .token("local", &["repo:read"])
        .await
        .expect("token before the outage");

    env.provider_control("outage/start").await;
    // Cached tokens keep flowing while the provider is down.
    let again = c
        .token("local", &["repo:read"])
        .await
        .expect("cached during outage");
    assert_eq!(again.access_token, cached.access_token);
    // A cold request fails clearly.
    let e = c
        .token("local", &["issues:read"])
        .await
        .expect_err("cold during outage");
    let r = e.rpc().expect("rpc");
    assert_eq!(r.name(), "provider_unavailable", "{e}");
    assert!(r.message.contains("retry later"), "{}", r.message);

    // Slower than the provider timeout (3 s here): refused, not hung.
    env.provider_control("outage/end").await;
    env.provider_control("slow?ms=4500").await;
    let started = std::time::Instant::now();
    let e = c.token("local", &["issues:read"]).await.expect_err("slow");
    assert_eq!(code(&e), Some("provider_unavailable"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_millis(4400));
    env.provider_control("slow?ms=0").await;
    // Let the abandoned request finish at the provider before going on.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    // 500s are not retried (the provider may have rotated) and are reported.
    env.provider_control("fail?status=500").await;
    let e = c.token("local", &["issues:read"]).await.expect_err("500");
    assert_eq!(code(&e), Some("provider_unavailable"));
    env.provider_control("fail?status=0").await;

    // Recovered: the refresh token survived the outage.
    let t = c
        .token("local", &["issues:read"])
        .await
        .expect("after recovery");
    assert_eq!(
        env.introspect(t.access_token.expose()).await["scope"],
        "issues:read"
    );
    assert!(env.daemon_alive());
}

#[tokio::test]
async fn a_revoked_grant_at_the_provider_means_login_required_not_a_loop() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    env.grant_self("orphan", &["repo:read", "issues:read"]);
    // Revoke the refresh token behind the daemon's back (as a user would in
    // the provider's settings).
    let rt = env.keychain_refresh_token().expect("rt");
    let r = https_client()
        .post(format!("{}/token/revocation", env.issuer()))
        .form(&[("token", rt.as_str()), ("client_id", "valetkey-cli")])
        .send()
        .await
        .expect("revoke");
    assert!(r.status().is_success());

    let mut c = env.agent("orphan").await;
    let e = c
        .token("local", &["repo:read"])
        .await
        .expect_err("dead grant");
    assert_eq!(code(&e), Some("provider_login_required"), "{e}");
    let refreshes = env.provider_stats().await["refreshes"].clone();
    // The state is remembered: no further upstream attempts until a new login.
    let e = c
        .token("local", &["issues:read"])
        .await
        .expect_err("still dead");
    assert_eq!(code(&e), Some("provider_login_required"));
    assert_eq!(env.provider_stats().await["refreshes"], refreshes);
    assert!(env.cli_ok(&["providers"]).contains("login required"));

    // A new login fixes it.
    env.login();
    let t = c
        .token("local", &["repo:read"])
        .await
        .expect("after re-login");
    assert_eq!(t.scopes, vec!["repo:read"]);
}

#[tokio::test]
async fn locked_keychain_gives_keychain_locked_and_the_daemon_keeps_serving() {
    let (mut env, mut c) = TestEnv::with_agent("locksmith", &["repo:read", "issues:read"]).await;
    let warm = c.token("local", &["repo:read"]).await.expect("warm token");

    env.lock_keychain().expect("lock");
    let e = c
        .token("local", &["issues:read"])
        .await
        .expect_err("cold while locked");
    let r = e.rpc().expect("rpc");
    assert_eq!(r.name(), "keychain_locked", "{e}");
    assert!(r.message.contains("unlock"), "{}", r.message);
    // Cached tokens need no keychain; other methods still work.
    assert_eq!(
        c.token("local", &["repo:read"])
            .await
            .expect("cached")
            .access_token,
        warm.access_token
    );
    assert!(env.daemon_alive());
}

#[tokio::test]
async fn vanished_keychain_gives_keychain_unavailable_then_recovers() {
    let (mut env, mut c) = TestEnv::with_agent("nomad", &["repo:read", "issues:read"]).await;

    env.kill_keyring();
    let e = c
        .token("local", &["issues:read"])
        .await
        .expect_err("no keychain");
    assert_eq!(code(&e), Some("keychain_unavailable"), "{e}");
    assert!(env.daemon_alive());

    // The keyring's files survive a restart, and the daemon reconnects.
    env.start_keyring().expect("restart keyring");
    let t = c
        .token("local", &["issues:read"])
        .await
        .expect("after keychain returns");
    assert_eq!(t.scopes, vec!["issues:read"]);
}

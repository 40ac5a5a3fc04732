//! The core promise: log in once, then agents get down-scoped tokens that
//! the provider itself confirms, refreshes are single-flight and rotation
//! safe, and logout revokes at the provider.

use std::collections::HashSet;

use valetkey_ipc::methods::TokenGet;

use crate::harness::{code, token_params, TestEnv};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn login_then_agent_process_gets_a_downscoped_token_confirmed_by_introspection() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let login_out = env.cli(&["login", "local", "--login-hint", "alice", "--timeout", "30"]);
    assert!(login_out.status.success(), "{}", stderr(&login_out));
    let rt = env
        .keychain_refresh_token()
        .expect("refresh token stored in the keychain");

    // An unknown agent is refused with consent_required (exit 3) and registered.
    let first = env.cli(&[
        "token",
        "local",
        "--scope",
        "repo:read",
        "--agent",
        "triage-bot",
        "--no-wait",
    ]);
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("consent_required"),
        "{}",
        stderr(&first)
    );
    assert!(env.cli_ok(&["agents"]).contains("triage-bot"));

    env.cli_ok(&[
        "grant",
        "add",
        "triage-bot",
        "local",
        "repo:read",
        "repo:write",
        "--ttl",
        "1h",
    ]);
    let ok = env.cli(&[
        "token",
        "local",
        "--scope",
        "repo:read",
        "--agent",
        "triage-bot",
        "--json",
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let v: serde_json::Value = serde_json::from_str(&stdout(&ok)).expect("json");
    assert_eq!(v["scopes"], serde_json::json!(["repo:read"]));
    assert_eq!(v["token_type"], "Bearer");
    let at = v["access_token"].as_str().expect("token").to_owned();

    // The provider, not us, says what the token carries.
    let intro = env.introspect(&at).await;
    assert_eq!(intro["active"], true, "{intro}");
    assert_eq!(intro["scope"], "repo:read", "{intro}");
    assert_eq!(intro["aud"], "https://api.valetkey.test");
    assert_eq!(intro["sub"], "alice");

    // A second request is served from the cache: no new refresh.
    let before = env.provider_stats().await["refreshes"].as_u64();
    let again = env.cli_ok(&[
        "token",
        "local",
        "--scope",
        "repo:read",
        "--agent",
        "triage-bot",
    ]);
    assert_eq!(again.trim(), at);
    assert_eq!(env.provider_stats().await["refreshes"].as_u64(), before);

    // Rotation: the refresh replaced the login's refresh token in the keychain.
    let rt_now = env.keychain_refresh_token().expect("still stored");
    assert_ne!(
        rt, rt_now,
        "rotated refresh token was written to the keychain"
    );

    // Nothing secret in logs, database, or what the CLI printed to stderr.
    let outputs = [stderr(&login_out), stderr(&first), stderr(&ok)];
    let outs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    env.assert_no_leaks(&[rt, rt_now, at], &outs);
    assert!(
        env.log().contains("token issued"),
        "daemon logged the issue"
    );
}

#[tokio::test]
async fn scopes_outside_the_grant_or_config_are_refused_with_distinct_codes() {
    let (env, mut c) = TestEnv::with_agent("scoped", &["repo:read"]).await;

    let e = c
        .token("local", &["repo:read", "repo:write"])
        .await
        .expect_err("escalation");
    let r = e.rpc().expect("rpc error");
    assert_eq!(r.name(), "scope_not_granted");
    assert_eq!(
        r.data_field("missing"),
        Some(&serde_json::json!(["repo:write"]))
    );

    let e = c
        .token("local", &["admin:org"])
        .await
        .expect_err("not allowed");
    assert_eq!(code(&e), Some("scope_not_allowed"));

    let e = c
        .token("nope", &["repo:read"])
        .await
        .expect_err("unknown provider");
    assert_eq!(code(&e), Some("unknown_provider"));
    assert!(
        e.to_string().contains("local"),
        "lists configured providers: {e}"
    );

    let e = c
        .token("local", &["bad scope"])
        .await
        .expect_err("invalid scope syntax");
    assert_eq!(code(&e), Some("invalid_params"));

    // The connection survived every refusal and still works.
    let t = c
        .token("local", &["repo:read"])
        .await
        .expect("allowed scope");
    assert_eq!(t.scopes, vec!["repo:read"]);
    assert_eq!(
        env.introspect(t.access_token.expose()).await["scope"],
        "repo:read"
    );

    // Revoking the grant closes the agent's connection, and its next
    // request (on a new one) finds no grant.
    env.cli_ok(&["grant", "revoke", "scoped", "local"]);
    assert!(
        c.token("local", &["repo:read"]).await.is_err(),
        "the revoked agent's connection is closed"
    );
    let mut c = env.agent("scoped").await;
    let e = c
        .call::<TokenGet>(&token_params(&["repo:read"], false))
        .await
        .expect_err("revoked");
    assert_eq!(code(&e), Some("consent_required"));
}

#[tokio::test]
async fn a_hundred_concurrent_cold_requests_make_exactly_one_refresh() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    env.login();
    env.grant_self("swarm", &["repo:read", "issues:read"]);
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(env.agent("swarm").await);
    }
    let before = env.provider_stats().await["refreshes"]
        .as_u64()
        .expect("count");
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                c.token("local", &["issues:read"])
                    .await
                    .map(|t| t.access_token.expose().to_owned())
            })
        })
        .collect();
    let mut tokens = HashSet::new();
    for t in tasks {
        tokens.insert(t.await.expect("join").expect("token"));
    }
    let after = env.provider_stats().await["refreshes"]
        .as_u64()
        .expect("count");
    assert_eq!(
        after - before,
        1,
        "100 cold requests must make exactly one upstream refresh"
    );
    assert_eq!(tokens.len(), 1, "all 100 agents got the same cached token");
    assert_eq!(env.provider_stats().await["refresh_errors"], 0);

    // A different scope set is a different token: one more refresh, and the
    // rotated refresh token from the first one still works (nothing was lost).
    let mut c = env.agent("swarm").await;
    let t = c
        .token("local", &["repo:read"])
        .await
        .expect("second scope set");
    assert_eq!(
        env.provider_stats().await["refreshes"].as_u64(),
        Some(after + 1)
    );
    assert_eq!(
        env.introspect(t.access_token.expose()).await["scope"],
        "repo:read"
    );
}

#[tokio::test]
async fn logout_revokes_at_the_provider_and_deletes_the_keychain_item() {
    let (env, mut c) = TestEnv::with_agent("short", &["repo:read"]).await;
    let t = c.token("local", &["repo:read"]).await.expect("token");
    assert_eq!(
        env.introspect(t.access_token.expose()).await["active"],
        true
    );

    let out = env.cli_ok(&["logout", "local"]);
    assert!(out.contains("Revoked"), "{out}");
    assert_eq!(env.provider_stats().await["revocations"], 1);
    assert!(
        env.keychain_refresh_token().is_none(),
        "keychain item deleted"
    );
    // oidc-provider revokes the whole grant, so the access token died too.
    assert_eq!(
        env.introspect(t.access_token.expose()).await["active"],
        false
    );

    let e = c
        .token("local", &["repo:read"])
        .await
        .expect_err("logged out");
    assert_eq!(code(&e), Some("provider_login_required"));
    assert!(e.to_string().contains("valetkey login local"), "{e}");
}

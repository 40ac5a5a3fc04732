//! Human-in-the-loop consent through the control socket, every path: wait
//! and decide, timeout, deny (and remembered deny), narrowing, once versus
//! duration versus always, `wait: false` plus `consent.wait`, floods,
//! pause, session lock (with a stand-in logind on the private bus), daemon
//! restart mid-consent, and one-click revocation timed to the refusal.

use std::time::{Duration, Instant};

use valetkey_ipc::control::{
    ActivityList, ActivityListParams, AgentsList, ConsentList, Decision, IssuingSet,
    IssuingSetParams, Revoke, RevokeParams, RevokeTarget,
};
use valetkey_ipc::methods::{ConsentWait, ConsentWaitParams, NoParams, TokenGet};

use crate::harness::{
    ask_in_background, code, decide, env_with, next_consent, subscribed, token_params as params,
    TestEnv,
};

#[tokio::test]
async fn waiting_agent_gets_its_token_when_the_user_allows_for_an_hour() {
    let env = env_with("");
    let mut ctl = subscribed(&env).await;
    let started = Instant::now();
    let waiting = ask_in_background(&env, "asker", &["repo:read"]).await;

    // The prompt carries every identity fact the user needs.
    let c = next_consent(&mut ctl).await;
    assert_eq!(c.agent.name, "asker");
    assert_eq!(c.agent.purpose, "e2e test");
    assert_eq!(
        c.exe,
        std::env::current_exe()
            .expect("exe")
            .to_string_lossy()
            .as_ref()
    );
    assert_eq!(c.sha256.len(), 64);
    assert!(!c.parents.is_empty(), "parent chain");
    assert_eq!(c.scopes, vec!["repo:read"]);
    assert_eq!(c.resource.as_deref(), Some("https://api.valetkey.test"));
    assert_eq!(c.duration_secs, Some(3600));
    assert_eq!(c.expires_at - c.created_at, 120, "default timeout");

    let r = decide(
        &mut ctl,
        &c.id,
        Decision::For {
            duration_secs: 3600,
        },
        None,
    )
    .await
    .expect("decide");
    let grant_id = r.grant_id.expect("a standing grant");
    let t = waiting.await.expect("join").expect("token after allow");
    let round_trip = started.elapsed();
    println!("consent round trip (request to token, automated decision): {round_trip:?}");
    assert_eq!(t.scopes, vec!["repo:read"]);
    assert_eq!(
        env.introspect(t.access_token.expose()).await["scope"],
        "repo:read"
    );

    // The grant is listed with its expiry, and later requests need no prompt.
    let agents = ctl.call::<AgentsList>(&NoParams {}).await.expect("agents");
    let a = agents
        .agents
        .iter()
        .find(|a| a.name == "asker")
        .expect("listed");
    let g = &a.grants[0];
    assert_eq!(g.id, grant_id);
    let left = g.expires_at.expect("expires") - g.created_at;
    assert!((3595..=3605).contains(&left), "{left}");
    let mut again = env.agent("asker").await;
    again
        .call::<TokenGet>(&params(&["repo:read"], false))
        .await
        .expect("no new prompt");
    let pending = ctl.call::<ConsentList>(&NoParams {}).await.expect("list");
    assert!(pending.consents.is_empty());
    env.assert_no_leaks(&[t.access_token.expose().to_owned()], &[]);
}

#[tokio::test]
async fn timeout_deny_and_remembered_deny_leave_no_grant() {
    let env = env_with("timeout = \"2s\"");
    let mut ctl = subscribed(&env).await;

    // Nobody answers: consent_timeout, and the prompt is gone.
    let waiting = ask_in_background(&env, "ignored", &["repo:read"]).await;
    next_consent(&mut ctl).await;
    let e = waiting.await.expect("join").expect_err("timed out");
    assert_eq!(code(&e), Some("consent_timeout"), "{e}");
    assert!(ctl
        .call::<ConsentList>(&NoParams {})
        .await
        .expect("list")
        .consents
        .is_empty());

    // Deny: consent_denied, and the next request asks again.
    let waiting = ask_in_background(&env, "denied", &["repo:read"]).await;
    let c = next_consent(&mut ctl).await;
    decide(&mut ctl, &c.id, Decision::Deny { remember: false }, None)
        .await
        .expect("deny");
    let e = waiting.await.expect("join").expect_err("denied");
    assert_eq!(code(&e), Some("consent_denied"));

    // Remembered deny: refused at once from then on, without a prompt.
    let waiting = ask_in_background(&env, "denied", &["repo:read"]).await;
    let c = next_consent(&mut ctl).await;
    decide(&mut ctl, &c.id, Decision::Deny { remember: true }, None)
        .await
        .expect("deny");
    waiting.await.expect("join").expect_err("denied");
    let mut again = env.agent("denied").await;
    let e = again
        .call::<TokenGet>(&params(&["repo:read"], true))
        .await
        .expect_err("remembered");
    assert_eq!(code(&e), Some("consent_denied"));
    assert_eq!(
        e.rpc().and_then(|r| r.data_field("remembered")),
        Some(&serde_json::json!(true))
    );

    let agents = ctl.call::<AgentsList>(&NoParams {}).await.expect("agents");
    assert!(
        agents.agents.iter().all(|a| a.grants.is_empty()),
        "no grant from a timeout or a denial"
    );
    // The activity log tells the story.
    let log = ctl
        .call::<ActivityList>(&ActivityListParams { limit: Some(50) })
        .await
        .expect("activity");
    let kinds: Vec<&str> = log.entries.iter().map(|e| e.summary.as_str()).collect();
    assert!(kinds.iter().any(|s| s.contains("timed out")), "{kinds:?}");
    assert!(kinds.iter().any(|s| s.contains("denied")), "{kinds:?}");
}

#[tokio::test]
async fn narrowing_once_and_always_shape_what_is_granted() {
    let env = env_with("");
    let mut ctl = subscribed(&env).await;

    // Narrow: asked read+write, allowed read only, "always".
    let waiting = ask_in_background(&env, "narrow", &["repo:read", "repo:write"]).await;
    let c = next_consent(&mut ctl).await;
    let e = decide(&mut ctl, &c.id, Decision::Always, Some(&["issues:read"]))
        .await
        .expect_err("a prompt cannot widen");
    assert_eq!(code(&e), Some("invalid_params"));
    let r = decide(&mut ctl, &c.id, Decision::Always, Some(&["repo:read"]))
        .await
        .expect("narrowed allow");
    assert_eq!(r.scopes, vec!["repo:read"]);
    let t = waiting.await.expect("join").expect("token");
    assert_eq!(t.scopes, vec!["repo:read"], "smaller than asked");
    assert_eq!(
        env.introspect(t.access_token.expose()).await["scope"],
        "repo:read"
    );
    let mut c2 = env.agent("narrow").await;
    let e = c2
        .call::<TokenGet>(&params(&["repo:write"], false))
        .await
        .expect_err("write was not granted");
    assert_eq!(code(&e), Some("scope_not_granted"));
    let agents = ctl.call::<AgentsList>(&NoParams {}).await.expect("agents");
    let g = &agents
        .agents
        .iter()
        .find(|a| a.name == "narrow")
        .expect("agent")
        .grants[0];
    assert_eq!(g.expires_at, None, "always = until revoked");

    // Once: a token now, no grant, and the next request prompts again.
    let waiting = ask_in_background(&env, "oneshot", &["issues:read"]).await;
    let c = next_consent(&mut ctl).await;
    let r = decide(&mut ctl, &c.id, Decision::Once, None)
        .await
        .expect("once");
    assert_eq!(r.grant_id, None);
    waiting.await.expect("join").expect("token once");
    let mut c3 = env.agent("oneshot").await;
    let e = c3
        .call::<TokenGet>(&params(&["issues:read"], false))
        .await
        .expect_err("asks again");
    assert_eq!(code(&e), Some("consent_required"));
}

#[tokio::test]
async fn no_wait_returns_a_consent_id_that_consent_wait_redeems_once() {
    let env = env_with("max_prompts_per_minute = 3");
    let mut ctl = subscribed(&env).await;
    let mut c = env.agent("poller").await;
    let e = c
        .call::<TokenGet>(&params(&["repo:read"], false))
        .await
        .expect_err("no grant yet");
    assert_eq!(code(&e), Some("consent_required"));
    let id = e
        .rpc()
        .and_then(|r| r.data_field("consent_id"))
        .and_then(|v| v.as_str())
        .expect("consent_id")
        .to_owned();
    // Asking again folds into the same prompt.
    let e2 = c
        .call::<TokenGet>(&params(&["repo:read"], false))
        .await
        .expect_err("still pending");
    assert_eq!(
        e2.rpc().and_then(|r| r.data_field("consent_id")),
        Some(&serde_json::json!(id))
    );
    let listed = ctl.call::<ConsentList>(&NoParams {}).await.expect("list");
    assert_eq!(listed.consents.len(), 1);
    assert_eq!(listed.consents[0].requests, 2);

    // Another agent cannot collect it.
    let mut thief = env.agent("thief").await;
    let e = thief
        .call::<ConsentWait>(&ConsentWaitParams {
            consent_id: id.clone(),
        })
        .await
        .expect_err("not theirs");
    assert_eq!(code(&e), Some("unknown_consent"));

    decide(&mut ctl, &id, Decision::Once, None)
        .await
        .expect("once");
    let t = c
        .call::<ConsentWait>(&ConsentWaitParams {
            consent_id: id.clone(),
        })
        .await
        .expect("redeemed");
    assert_eq!(t.scopes, vec!["repo:read"]);
    let e = c
        .call::<ConsentWait>(&ConsentWaitParams { consent_id: id })
        .await
        .expect_err("once means once");
    assert_eq!(code(&e), Some("unknown_consent"));

    // Flood: distinct prompts beyond the per-minute cap are refused.
    let mut flood = env.agent("flooder").await;
    let mut codes = Vec::new();
    let sets: [&[&str]; 4] = [
        &["repo:read"],
        &["repo:write"],
        &["issues:read"],
        &["repo:read", "repo:write"],
    ];
    for s in sets {
        let e = flood
            .call::<TokenGet>(&params(s, false))
            .await
            .expect_err("refused");
        codes.push(code(&e).map(str::to_owned));
    }
    assert!(
        codes.contains(&Some("consent_rate_limited".into())),
        "{codes:?}"
    );
}

#[tokio::test]
async fn pause_refuses_everyone_until_resume() {
    let (env, mut c) = TestEnv::with_agent("paused", &["repo:read"]).await;
    let mut ctl = env.control().await;
    ctl.call::<IssuingSet>(&IssuingSetParams { paused: true })
        .await
        .expect("pause");
    let e = c.token("local", &["repo:read"]).await.expect_err("paused");
    assert_eq!(code(&e), Some("issuing_paused"));
    env.cli_ok(&["resume"]);
    c.token("local", &["repo:read"]).await.expect("resumed");
}

#[tokio::test]
async fn one_click_revoke_closes_the_agent_and_the_next_request_is_refused() {
    let (env, mut c) = TestEnv::with_agent("revokee", &["repo:read"]).await;
    let t = c.token("local", &["repo:read"]).await.expect("token");
    let mut ctl = env.control().await;
    let agents = ctl.call::<AgentsList>(&NoParams {}).await.expect("agents");
    let grant = agents.agents[0].grants[0].id;

    let clicked = Instant::now();
    let r = ctl
        .call::<Revoke>(&RevokeParams {
            target: RevokeTarget::Grant { id: grant },
        })
        .await
        .expect("revoke");
    let mut fresh = env.agent("revokee").await;
    let e = fresh
        .call::<TokenGet>(&params(&["repo:read"], false))
        .await
        .expect_err("refused");
    let refusal = clicked.elapsed();
    println!("revocation to refusal: {refusal:?}");
    assert!(refusal < Duration::from_secs(1), "{refusal:?}");
    assert_eq!(code(&e), Some("consent_required"));
    assert_eq!(r.grants_removed, 1);
    assert_eq!(r.tokens_dropped, 1);
    assert_eq!(r.connections_closed, 1);
    // The open connection was told why before it closed: a revoked grant,
    // not a suspended agent (the agent stays active: `fresh` was asked
    // for consent above, not refused).
    let pushed = c.token("local", &["repo:read"]).await.expect_err("closed");
    assert_eq!(code(&pushed), Some("grant_revoked"), "{pushed}");

    // Revoking the agent suspends it until it is reinstated.
    ctl.call::<Revoke>(&RevokeParams {
        target: RevokeTarget::Agent {
            name: "revokee".into(),
        },
    })
    .await
    .expect("revoke agent");
    let mut again = env.agent("revokee").await;
    let e = again
        .call::<TokenGet>(&params(&["repo:read"], false))
        .await
        .expect_err("suspended");
    assert_eq!(code(&e), Some("agent_suspended"));
    env.cli_ok(&["reinstate", "revokee"]);
    let mut again = env.agent("revokee").await;
    let e = again
        .call::<TokenGet>(&params(&["repo:read"], false))
        .await
        .expect_err("asks again");
    assert_eq!(code(&e), Some("consent_required"));
    env.assert_no_leaks(&[t.access_token.expose().to_owned()], &[]);
}

#[tokio::test]
async fn revoke_with_upstream_revocation_kills_the_token_at_the_provider() {
    let mut env = TestEnv::new().expect("env");
    env.write_config("revoke_agent_tokens = true")
        .expect("config");
    env.start_daemon().expect("daemon");
    env.login();
    env.grant_self("up", &["repo:read"]);
    let mut c = env.agent("up").await;
    let t = c.token("local", &["repo:read"]).await.expect("token");
    assert_eq!(
        env.introspect(t.access_token.expose()).await["active"],
        true
    );
    let out = env.cli_ok(&["revoke", "agent", "up"]);
    assert!(out.contains("1 revoked at the provider"), "{out}");
    assert_eq!(
        env.introspect(t.access_token.expose()).await["active"],
        false
    );
}

#[tokio::test]
async fn control_socket_refuses_binaries_that_are_not_valetkey() {
    let env = env_with("");
    // A copy of the real CLI, elsewhere, is not the installed one.
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("valetkey");
    crate::harness::copy_bin("valetkey", &copy);
    let out = env
        .command(&copy)
        .args(["--socket"])
        .arg(&env.socket)
        .args(["consent", "list"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("peer_rejected"), "{err}");
    assert!(err.contains("may not use the control socket"), "{err}");
    // The installed one works.
    assert!(env.cli_ok(&["consent", "list"]).contains("No consents"));
}

#[tokio::test]
async fn control_socket_refuses_the_real_cli_with_loader_variables() {
    let env = env_with("");
    for var in ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"] {
        let value = if var == "LD_LIBRARY_PATH" {
            "/tmp"
        } else {
            "libm.so.6"
        };
        let out = env
            .command(crate::harness::bin("valetkey"))
            .env(var, value)
            .args(["consent", "list"])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("peer_rejected"), "{var}: {err}");
        assert!(
            err.contains(&format!("runs with {var} set")),
            "{var}: {err}"
        );
    }
    // An empty one loads nothing, and the same binary without them works.
    let out = env
        .command(crate::harness::bin("valetkey"))
        .env("LD_PRELOAD", "")
        .args(["consent", "list"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.cli_ok(&["consent", "list"]).contains("No consents"));
}

#[tokio::test]
async fn control_socket_refuses_clients_from_other_namespaces_and_bind_mounted_impostors() {
    let env = env_with("");
    let cli = crate::harness::bin("valetkey");
    // The real CLI, run in its own user and mount namespace.
    let out = env
        .command("unshare")
        .arg("-Urm")
        .arg(&cli)
        .args(["consent", "list"])
        .output()
        .expect("unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("runs in another mnt and user namespace"),
        "{err}"
    );
    // python3 bind-mounted over the installed valetkey's path: /proc/PID/exe
    // then reads as the installed CLI, inside that namespace.
    let control = valetkey_ipc::paths::control_socket_for(&env.socket);
    let script = format!(
        "mount --bind /usr/bin/python3 '{cli}' && exec '{cli}' -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{control}'); print(s.makefile().readline())\"",
        cli = cli.display(),
        control = control.display()
    );
    let out = env
        .command("unshare")
        .args(["-Urm", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.contains("another mnt and user namespace"),
        "{reply} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        reply.contains(&cli.display().to_string()),
        "it claimed to be the CLI: {reply}"
    );
    // Outside, the installed CLI is unaffected.
    assert!(env.cli_ok(&["consent", "list"]).contains("No consents"));
}

#[tokio::test]
async fn an_agent_in_another_namespace_is_marked_in_whoami_and_on_its_card() {
    let env = env_with("");
    // python3 bind-mounted over /usr/bin/git in a private user and mount
    // namespace: inside it, /proc/PID/exe reads /usr/bin/git.
    let script = r#"import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def call(i, m, p):
    f.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p}) + "\n").encode()); f.flush()
    return json.loads(f.readline())
call(1, "hello", {"protocol": 1, "agent": {"name": "posing-as-git"}})
print(json.dumps(call(2, "whoami", {})))
print(json.dumps(call(3, "token.get", {"provider": "local", "scopes": ["repo:read"], "wait": False})))
"#;
    let sh = format!(
        "mount --bind /usr/bin/python3 /usr/bin/git && exec /usr/bin/git -c '{script}' '{}'",
        env.socket.display()
    );
    let out = env
        .command("unshare")
        .args(["-Urm", "sh", "-c", &sh])
        .output()
        .expect("unshare");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"));
    let who = lines
        .next()
        .unwrap_or_else(|| panic!("no answer: {}", String::from_utf8_lossy(&out.stderr)));
    let id = &who["result"]["identity"];
    assert_eq!(id["exe"], "/usr/bin/git", "{who}");
    assert_eq!(id["exe_unverified"], true, "{who}");
    assert_eq!(
        id["foreign_namespaces"],
        serde_json::json!(["mnt", "user"]),
        "{who}"
    );
    let asked = lines.next().expect("token.get answered");
    assert_eq!(asked["error"]["data"]["reason"], "pending", "{asked}");
    // The card the user sees says the path cannot be trusted.
    let mut ctl = env.control().await;
    let list = ctl.call::<ConsentList>(&NoParams {}).await.expect("list");
    let c = list
        .consents
        .iter()
        .find(|c| c.agent.name == "posing-as-git")
        .expect("its consent");
    assert_eq!(c.exe, "/usr/bin/git");
    assert!(c.exe_unverified);
    assert_eq!(c.foreign_namespaces, ["mnt", "user"]);
    // An agent from our own namespace is not marked.
    let mut plain = env.agent("plain").await;
    let me = plain
        .call::<valetkey_ipc::methods::Whoami>(&Default::default())
        .await
        .expect("whoami");
    assert!(!me.identity.exe_unverified && me.identity.foreign_namespaces.is_empty());
}

#[tokio::test]
async fn cli_parity_list_allow_and_deny() {
    let env = env_with("");
    let mut ctl = subscribed(&env).await;
    let waiting = ask_in_background(&env, "cli-asker", &["repo:read"]).await;
    let c = next_consent(&mut ctl).await;
    let listed = env.cli_ok(&["consent", "list"]);
    assert!(
        listed.contains(&c.id) && listed.contains("cli-asker"),
        "{listed}"
    );
    let out = env.cli_ok(&["consent", "allow", &c.id, "--for", "15m"]);
    assert!(out.contains("Allowed repo:read"), "{out}");
    waiting.await.expect("join").expect("token");

    let waiting = ask_in_background(&env, "cli-denied", &["repo:read"]).await;
    let c = next_consent(&mut ctl).await;
    env.cli_ok(&["consent", "deny", &c.id]);
    let e = waiting.await.expect("join").expect_err("denied");
    assert_eq!(code(&e), Some("consent_denied"));
}

#[tokio::test]
async fn restart_during_a_pending_consent_leaves_nothing_half_made() {
    let mut env = env_with("");
    let mut ctl = subscribed(&env).await;
    let waiting = ask_in_background(&env, "restarted", &["repo:read"]).await;
    next_consent(&mut ctl).await;
    env.stop_daemon();
    assert!(
        waiting.await.expect("join").is_err(),
        "the waiting agent is told"
    );
    env.start_daemon().expect("restart");
    let mut ctl = env.control().await;
    assert!(ctl
        .call::<ConsentList>(&NoParams {})
        .await
        .expect("list")
        .consents
        .is_empty());
    let agents = ctl.call::<AgentsList>(&NoParams {}).await.expect("agents");
    assert!(agents.agents.iter().all(|a| a.grants.is_empty()));
}

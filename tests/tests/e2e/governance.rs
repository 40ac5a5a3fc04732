//! The governance half, end to end against the real daemon, keychain and
//! provider: the agent lifecycle, the policy step (allow, deny, require
//! approval, the seed article's calendar policy as written, hot reload, a
//! broken file keeping the last good policy, also across a restart), and
//! delegation: a 3-level chain with shrinking scopes and every hostile case.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use valetkey_ipc::control::{
    ConsentKind, ConsentList, Decision, PolicyStatus, PolicyStatusResult, Revoke, RevokeParams,
    RevokeTarget,
};
use valetkey_ipc::methods::{
    AgentInfo, ConsentWait, ConsentWaitParams, DelegationCreate, DelegationCreateParams,
    DelegationCreateResult, NoParams, RequestContext, ResourceContext, TokenGet, TokenGetParams,
    Whoami,
};
use valetkey_ipc::policy::Action;
use valetkey_ipc::{Client, ClientError, DelegationToken};

use crate::harness::{code, decide, next_consent, subscribed, TestEnv};

fn reason(e: &ClientError) -> Option<String> {
    e.rpc()
        .and_then(|r| r.data_field("reason"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

fn data(e: &ClientError, key: &str) -> serde_json::Value {
    e.rpc()
        .and_then(|r| r.data_field(key))
        .cloned()
        .unwrap_or_default()
}

fn get(scopes: &[&str]) -> TokenGetParams {
    TokenGetParams::new("local", scopes)
}

async fn policy_status(env: &TestEnv) -> PolicyStatusResult {
    env.control()
        .await
        .call::<PolicyStatus>(&NoParams {})
        .await
        .expect("policy.status")
}

/// Waits until the daemon's policy status satisfies `f`.
async fn wait_policy(env: &TestEnv, f: impl Fn(&PolicyStatusResult) -> bool) -> PolicyStatusResult {
    for _ in 0..100 {
        let s = policy_status(env).await;
        if f(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the policy did not reload: {:?}", policy_status(env).await);
}

fn policy_dir(env: &TestEnv) -> std::path::PathBuf {
    env.path("config/valetkey/policies")
}

#[tokio::test]
async fn lifecycle_suspend_resume_review_deprecate() {
    let (env, mut c) = TestEnv::with_agent("life", &["repo:read"]).await;
    c.token("local", &["repo:read"])
        .await
        .expect("active agent gets a token");

    let out = env.cli_ok(&[
        "agents",
        "edit",
        "life",
        "--purpose",
        "code review",
        "--classification",
        "confidential",
        "--environment",
        "dev",
        "--provider",
        "local",
    ]);
    assert!(
        out.contains("code review") && out.contains("confidential"),
        "{out}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["agents", "show", "life", "--json"])).expect("json");
    assert_eq!(shown["purpose"], "code review");
    assert_eq!(
        shown["declared_purpose"], "e2e test",
        "hello cannot overwrite the registered purpose"
    );
    assert_eq!(shown["environment"], "dev");
    assert_eq!(shown["providers"][0], "local");
    assert!(shown["owner"].as_str().is_some_and(|o| !o.is_empty()));

    // Suspended: refused at once, on a connection that was open before too.
    let out = env.cli_ok(&["agents", "suspend", "life"]);
    assert!(out.contains("suspended"), "{out}");
    let mut c = env.agent("life").await;
    let e = c
        .token("local", &["repo:read"])
        .await
        .expect_err("suspended");
    assert_eq!(code(&e), Some("agent_suspended"));
    // Resumed: the grant was kept.
    env.cli_ok(&["agents", "resume", "life"]);
    c.token("local", &["repo:read"])
        .await
        .expect("resumed agent keeps its grant");

    env.cli_ok(&["agents", "review", "life"]);
    let shown: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["agents", "show", "life", "--json"])).expect("json");
    assert!(shown["reviewed_at"].as_i64().is_some_and(|t| t > 0));

    // Deprecated: no grants, nothing new.
    let o = env.cli(&["agents", "deprecate", "life"]);
    assert!(!o.status.success(), "deprecate needs --yes");
    let out = env.cli_ok(&["agents", "deprecate", "life", "--yes"]);
    assert!(out.contains("1 grant(s) removed"), "{out}");
    let mut c = env.agent("life").await;
    let e = c
        .token("local", &["repo:read"])
        .await
        .expect_err("deprecated");
    assert_eq!(code(&e), Some("agent_deprecated"));
    let w = c.call::<Whoami>(&NoParams {}).await.expect("whoami");
    assert!(w.grants.is_empty(), "a deprecated agent keeps no grants");

    let audit = env.cli_ok(&["audit", "--agent", "life", "--json"]);
    for change in ["edited", "suspended", "resumed", "reviewed", "deprecated"] {
        assert!(
            audit.contains(&format!("\"outcome\":\"{change}\"")),
            "{change} in {audit}"
        );
    }
    assert!(
        audit.contains("refused:agent_suspended") && audit.contains("refused:agent_deprecated")
    );
}

const USER_POLICY: &str = r#"package valetkey.authz
import rego.v1

allow if input.agent.status == "active"

deny contains "repo:write is not for agents on weekdays or weekends" if "repo:write" in input.scopes

require_approval contains "issues:read needs a look from you" if {
	"issues:read" in input.scopes
	not input.human_approval.exists
}
"#;

#[tokio::test]
async fn policy_allows_denies_and_asks_and_reloads_keeping_the_last_good_one() {
    let (mut env, mut c) =
        TestEnv::with_agent("pol", &["repo:read", "repo:write", "issues:read"]).await;
    let before = policy_status(&env).await;
    assert!(before.files.is_empty(), "built-in policy only: {before:?}");
    c.token("local", &["repo:write"])
        .await
        .expect("the built-in policy allows");

    // Hot reload: a user policy appears.
    std::fs::create_dir_all(policy_dir(&env)).expect("dir");
    std::fs::write(policy_dir(&env).join("team.rego"), USER_POLICY).expect("write");
    wait_policy(&env, |s| s.files == ["team.rego"]).await;

    c.token("local", &["repo:read"]).await.expect("allowed");
    let e = c.token("local", &["repo:write"]).await.expect_err("denied");
    assert_eq!(code(&e), Some("policy_denied"));
    assert_eq!(data(&e, "rule"), "data.valetkey.authz.deny");
    assert!(data(&e, "reasons")
        .to_string()
        .contains("repo:write is not for agents"));

    // Require approval: a prompt even though a standing grant exists.
    let mut ctl = subscribed(&env).await;
    let p = TokenGetParams {
        wait: Some(false),
        ..get(&["issues:read"])
    };
    let e = c.call::<TokenGet>(&p).await.expect_err("needs approval");
    assert_eq!(code(&e), Some("consent_required"));
    assert_eq!(reason(&e).as_deref(), Some("approval"));
    let consent = next_consent(&mut ctl).await;
    assert_eq!(consent.kind, ConsentKind::Approval);
    assert_eq!(consent.reasons, ["issues:read needs a look from you"]);
    decide(&mut ctl, &consent.id, Decision::Once, None)
        .await
        .expect("approve");
    let t = c
        .call::<ConsentWait>(&ConsentWaitParams {
            consent_id: consent.id.clone(),
        })
        .await
        .expect("approved token");
    assert_eq!(t.scopes, ["issues:read"]);
    // Approval covers that request only.
    let e = c.call::<TokenGet>(&p).await.expect_err("asks again");
    assert_eq!(reason(&e).as_deref(), Some("approval"));

    // A broken file is refused; the last good policy stays in force.
    std::fs::write(
        policy_dir(&env).join("team.rego"),
        "package valetkey.authz\nallow if {\n",
    )
    .expect("write");
    let s = wait_policy(&env, |s| s.error.is_some()).await;
    assert!(
        s.error.as_deref().is_some_and(|e| e.contains("team.rego")),
        "{s:?}"
    );
    assert!(s.last_good);
    let e = c
        .token("local", &["repo:write"])
        .await
        .expect_err("old policy still denies");
    assert_eq!(code(&e), Some("policy_denied"));
    c.token("local", &["repo:read"])
        .await
        .expect("old policy still allows");
    let status = env.cli_ok(&["policy", "status"]);
    assert!(
        status.contains("refused:") && status.contains("last good"),
        "{status}"
    );

    // Also across a restart: the last good copy is used, never nothing.
    env.stop_daemon();
    env.start_daemon().expect("restart");
    let mut c = env.agent("pol").await;
    let e = c
        .token("local", &["repo:write"])
        .await
        .expect_err("last good after restart");
    assert_eq!(code(&e), Some("policy_denied"));
    c.token("local", &["repo:read"])
        .await
        .expect("allowed after restart");

    // Fixed: back to the files.
    std::fs::write(
        policy_dir(&env).join("team.rego"),
        USER_POLICY.replace("repo:write", "none:such"),
    )
    .expect("write");
    wait_policy(&env, |s| s.error.is_none() && !s.last_good).await;
    c.token("local", &["repo:write"])
        .await
        .expect("the fixed policy allows");

    let audit = env.cli_ok(&["audit", "--agent", "pol", "--json"]);
    assert!(
        audit.contains("\"verdict\":\"deny\"")
            && audit.contains("\"verdict\":\"require_approval\"")
    );
    // Reloads are recorded too, the refused one with its error.
    let all = env.cli_ok(&["audit", "--json"]);
    assert!(
        all.contains("\"kind\":\"policy.reload\",") && all.contains("\"outcome\":\"refused\""),
        "{all}"
    );
}

fn calendar_read(owner: Option<&str>, kind: &str, action: Action) -> TokenGetParams {
    TokenGetParams {
        context: Some(RequestContext {
            action: Some(action),
            tool: Some("google-calendar-api:events.list".into()),
            resource: Some(ResourceContext {
                kind: Some(kind.into()),
                owner: owner.map(str::to_owned),
                sensitivity: None,
            }),
        }),
        ..get(&["repo:read"])
    }
}

#[tokio::test]
async fn the_seed_articles_calendar_policy_loads_as_written_and_each_rule_holds_both_ways() {
    // Its own tests first, through the CLI, in v0 mode.
    let examples = crate::harness::repo().join("../examples/policies");
    let env = TestEnv::new().expect("env");
    let out = env.cli_ok(&[
        "policy",
        "test",
        "--dir",
        &examples.to_string_lossy(),
        "--rego-version",
        "v0",
    ]);
    assert!(out.contains("9 passed, 0 failed"), "{out}");
    // The same files in v1 mode are refused (they are v0 syntax).
    let o = env.cli(&[
        "policy",
        "test",
        "--dir",
        &examples.to_string_lossy(),
        "--rego-version",
        "v1",
    ]);
    assert!(!o.status.success());
    drop(env);

    let mut env = TestEnv::new().expect("env");
    env.write_config("\n[policy]\nrego_version = \"v0\"\n")
        .expect("config");
    std::fs::create_dir_all(policy_dir(&env)).expect("dir");
    std::fs::copy(
        examples.join("calendar.rego"),
        policy_dir(&env).join("calendar.rego"),
    )
    .expect("copy");
    env.start_daemon().expect("daemon");
    env.login();
    env.grant_self("cal", &["repo:read"]);
    let s = policy_status(&env).await;
    assert_eq!(s.files, ["calendar.rego"], "{s:?}");
    let mut c = env.agent("cal").await;

    // allow: only for purpose calendar-management…
    let e = c
        .call::<TokenGet>(&calendar_read(None, "calendar-events", Action::Read))
        .await
        .expect_err("purpose not registered yet");
    assert_eq!(code(&e), Some("policy_denied"));
    assert_eq!(data(&e, "rule"), "data.valetkey.authz.allow");
    env.cli_ok(&["agents", "edit", "cal", "--purpose", "calendar-management"]);
    // …reading the delegating user's own calendar events.
    c.call::<TokenGet>(&calendar_read(None, "calendar-events", Action::Read))
        .await
        .expect("the allow rule holds");
    let e = c
        .call::<TokenGet>(&calendar_read(None, "email", Action::Read))
        .await
        .expect_err("not calendar events");
    assert_eq!(data(&e, "rule"), "data.valetkey.authz.allow");

    // deny: delete without human approval.
    let e = c
        .call::<TokenGet>(&calendar_read(None, "calendar-events", Action::Delete))
        .await
        .expect_err("delete");
    assert_eq!(code(&e), Some("policy_denied"));
    assert_eq!(data(&e, "rule"), "data.valetkey.authz.deny");

    // deny: another user's data without an admin scope.
    let e = c
        .call::<TokenGet>(&calendar_read(Some("bob"), "calendar-events", Action::Read))
        .await
        .expect_err("cross-user");
    assert_eq!(data(&e, "rule"), "data.valetkey.authz.deny");

    // `policy check` explains the same decision offline.
    let input = env.path("input.json");
    let mut doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::harness::repo().join("../docs/examples/policy-input.json"))
            .expect("example input"),
    )
    .expect("json");
    doc["resource"]["owner"] = "someone-else".into();
    std::fs::write(&input, doc.to_string()).expect("write");
    let o = env.cli(&["policy", "check", "--input", &input.to_string_lossy()]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "deny exits 4: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("data.valetkey.authz.deny"));
}

async fn sub_agent(
    env: &TestEnv,
    name: &str,
    token: &DelegationToken,
) -> Result<Client, ClientError> {
    let mut c = Client::connect(&env.socket).await.expect("connect");
    c.hello_delegated(
        AgentInfo {
            name: name.into(),
            version: "1".into(),
            purpose: "sub-agent".into(),
        },
        token.clone(),
    )
    .await?;
    Ok(c)
}

fn delegate(sub: &str, scopes: &[&str], ttl: u64) -> DelegationCreateParams {
    DelegationCreateParams {
        sub_agent: sub.into(),
        provider: "local".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ttl_secs: ttl,
        max_depth: None,
        wait: None,
    }
}

/// Re-encodes a token with another header or payload, keeping the signature.
fn tamper(
    t: &DelegationToken,
    header: Option<serde_json::Value>,
    payload: Option<serde_json::Value>,
) -> DelegationToken {
    let parts: Vec<&str> = t.expose().split('.').collect();
    let h = header.map_or(parts[0].to_owned(), |h| B64.encode(h.to_string()));
    let p = payload.map_or(parts[1].to_owned(), |p| B64.encode(p.to_string()));
    DelegationToken::new(format!("{h}.{p}.{}", parts[2]))
}

fn claims(t: &DelegationToken) -> serde_json::Value {
    let p = t.expose().split('.').nth(1).expect("payload");
    serde_json::from_slice(&B64.decode(p).expect("b64")).expect("json")
}

#[tokio::test]
async fn a_three_level_chain_shrinks_and_every_hostile_token_is_refused() {
    let (env, mut root) =
        TestEnv::with_agent("planner", &["repo:read", "repo:write", "issues:read"]).await;
    let mut ctl = subscribed(&env).await;
    let mut secrets = Vec::new();

    // Level 1: the planner hands the researcher two of its three scopes.
    let t1: DelegationCreateResult = root
        .call::<DelegationCreate>(&delegate("researcher", &["repo:read", "issues:read"], 600))
        .await
        .expect("depth 1");
    assert_eq!(t1.depth, 1);
    let c1 = claims(&t1.token);
    assert_eq!(c1["sub"], "agent:researcher");
    assert_eq!(c1["act"]["sub"], "agent:planner");
    assert!(c1["act"]["act"]["sub"]
        .as_str()
        .is_some_and(|u| u.starts_with("user:")));
    assert_eq!(c1["scope"], "issues:read repo:read");
    assert!(c1["aud"]
        .as_str()
        .is_some_and(|a| a.starts_with("urn:valetkey:broker:")));
    let mut researcher = sub_agent(&env, "researcher", &t1.token)
        .await
        .expect("hello as researcher");
    let got = researcher
        .token("local", &["repo:read"])
        .await
        .expect("researcher token");
    secrets.push(got.access_token.expose().to_owned());
    let e = researcher
        .token("local", &["repo:write"])
        .await
        .expect_err("not delegated");
    assert_eq!(code(&e), Some("scope_not_granted"));

    // Hostile: a scope superset.
    let e = researcher
        .call::<DelegationCreate>(&delegate("fetcher", &["repo:read", "repo:write"], 60))
        .await
        .expect_err("superset");
    assert_eq!(code(&e), Some("scope_not_granted"));

    // Level 2: one scope, shorter.
    let t2 = researcher
        .call::<DelegationCreate>(&delegate("fetcher", &["repo:read"], 300))
        .await
        .expect("depth 2");
    assert_eq!(
        (t2.depth, t2.scopes.clone()),
        (2, vec!["repo:read".to_string()])
    );
    let mut fetcher = sub_agent(&env, "fetcher", &t2.token)
        .await
        .expect("hello as fetcher");
    fetcher
        .token("local", &["repo:read"])
        .await
        .expect("fetcher token");

    // Hostile: a longer TTL than the parent's.
    let e = fetcher
        .call::<DelegationCreate>(&delegate("summarizer", &["repo:read"], 100_000))
        .await
        .expect_err("longer ttl");
    assert_eq!(
        (code(&e), reason(&e).as_deref()),
        (Some("delegation_refused"), Some("ttl"))
    );

    // Level 3 needs a person (the seed article's rule).
    let waiting = {
        let mut f = sub_agent(&env, "fetcher", &t2.token)
            .await
            .expect("second fetcher connection");
        tokio::spawn(async move {
            f.call::<DelegationCreate>(&delegate("summarizer", &["repo:read"], 60))
                .await
        })
    };
    let consent = next_consent(&mut ctl).await;
    assert_eq!(consent.kind, ConsentKind::Delegation);
    let ask = consent.delegation.clone().expect("delegation facts");
    assert_eq!((ask.sub_agent.as_str(), ask.depth), ("summarizer", 3));
    assert_eq!(
        ask.chain.len(),
        5,
        "user, planner, researcher, fetcher, summarizer: {:?}",
        ask.chain
    );
    decide(&mut ctl, &consent.id, Decision::Once, None)
        .await
        .expect("approve");
    let t3 = waiting
        .await
        .expect("join")
        .expect("depth 3 after approval");
    assert_eq!(t3.depth, 3);
    let mut summarizer = sub_agent(&env, "summarizer", &t3.token)
        .await
        .expect("hello as summarizer");
    let w = summarizer
        .call::<Whoami>(&NoParams {})
        .await
        .expect("whoami");
    let del = w.delegation.expect("delegated identity");
    assert_eq!(
        del.chain.last().map(String::as_str),
        Some("agent:summarizer")
    );
    assert_eq!(del.chain[1], "agent:planner");
    let got = summarizer
        .token("local", &["repo:read"])
        .await
        .expect("depth-3 token");
    secrets.push(got.access_token.expose().to_owned());

    // Hostile: depth 4.
    let e = summarizer
        .call::<DelegationCreate>(&delegate("deeper", &["repo:read"], 30))
        .await
        .expect_err("depth 4");
    assert_eq!(
        (code(&e), reason(&e).as_deref()),
        (Some("delegation_refused"), Some("depth"))
    );

    // Hostile: a forged signature (payload widened, signature kept).
    let mut forged = claims(&t2.token);
    forged["scope"] = "repo:read repo:write".into();
    let e = sub_agent(&env, "fetcher", &tamper(&t2.token, None, Some(forged)))
        .await
        .err()
        .expect("forged");
    assert_eq!(
        (code(&e), reason(&e).as_deref()),
        (Some("delegation_invalid"), Some("signature"))
    );
    // Hostile: alg none, no signature.
    let none = tamper(
        &t2.token,
        Some(serde_json::json!({"alg": "none", "typ": "vk-delegation+jwt", "kid": t2.kid})),
        None,
    );
    let none = DelegationToken::new(format!(
        "{}.",
        none.expose().rsplit_once('.').expect("dot").0
    ));
    let e = sub_agent(&env, "fetcher", &none)
        .await
        .err()
        .expect("alg none");
    assert_eq!(reason(&e).as_deref(), Some("alg"));
    // Hostile: a wrong kid.
    let wrong = tamper(
        &t2.token,
        Some(serde_json::json!({"alg": "EdDSA", "typ": "vk-delegation+jwt", "kid": "not-our-key"})),
        None,
    );
    let e = sub_agent(&env, "fetcher", &wrong).await.err().expect("kid");
    assert_eq!(reason(&e).as_deref(), Some("kid"));
    // Hostile: a sub-agent presenting its parent's token.
    let e = sub_agent(&env, "fetcher", &t1.token)
        .await
        .err()
        .expect("parent's token");
    assert_eq!(
        (code(&e), reason(&e).as_deref()),
        (Some("delegation_invalid"), Some("subject"))
    );
    // Hostile: expired.
    let short = root
        .call::<DelegationCreate>(&delegate("brief", &["repo:read"], 1))
        .await
        .expect("short token");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = sub_agent(&env, "brief", &short.token)
        .await
        .err()
        .expect("expired");
    assert_eq!(reason(&e).as_deref(), Some("expired"));

    // The JWKS publishes the signing key.
    let jwks: serde_json::Value = serde_json::from_str(&env.cli_ok(&["jwks"])).expect("jwks");
    assert_eq!(jwks["keys"][0]["kid"], t1.kid.as_str());
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");

    // The audit shows who acted on whose behalf.
    let audit = env.cli_ok(&["audit", "--agent", "summarizer", "--json"]);
    assert!(
        audit.contains(
            "\"agent:planner\",\"agent:researcher\",\"agent:fetcher\",\"agent:summarizer\""
        ),
        "{audit}"
    );

    // Hostile: replay after the parent was revoked. Revoking the
    // researcher's token kills everything below, at once.
    let r = ctl
        .call::<Revoke>(&RevokeParams {
            target: RevokeTarget::Delegation {
                jti: t1.jti.clone(),
            },
        })
        .await
        .expect("revoke by jti");
    assert!(r.connections_closed >= 3, "{r:?}");
    for (name, t) in [
        ("researcher", &t1.token),
        ("fetcher", &t2.token),
        ("summarizer", &t3.token),
    ] {
        let e = sub_agent(&env, name, t)
            .await
            .err()
            .expect("replay refused");
        assert_eq!(code(&e), Some("delegation_revoked"), "{name}");
    }
    root.token("local", &["repo:read"])
        .await
        .expect("the root agent is untouched");

    // Suspending an ancestor travels down the chain too.
    let ta = root
        .call::<DelegationCreate>(&delegate("helper", &["repo:read"], 300))
        .await
        .expect("new delegation");
    sub_agent(&env, "helper", &ta.token)
        .await
        .expect("valid before");
    env.cli_ok(&["agents", "suspend", "planner"]);
    let e = sub_agent(&env, "helper", &ta.token)
        .await
        .err()
        .expect("ancestor suspended");
    assert_eq!(code(&e), Some("delegation_revoked"));

    for t in [&t1.token, &t2.token, &t3.token, &ta.token] {
        secrets.push(t.expose().to_owned());
    }
    let listed = ctl.call::<ConsentList>(&NoParams {}).await.expect("list");
    assert!(listed.consents.is_empty());
    env.assert_no_leaks(&secrets, &[&audit]);
}

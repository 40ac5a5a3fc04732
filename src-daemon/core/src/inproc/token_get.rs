//! `token.get`, step by step: resolve the provider, authorize by grant or
//! delegation, the policy, then issue. Each refusal is the first check
//! that fails, with its own code, and each outcome is audited.

use std::sync::atomic::Ordering;

use valetkey_ipc::control::{ConsentKind, Decision};
use valetkey_ipc::ErrorCode;

use super::{ask, code, g, token, Answer, World};

const FULL: &str = r#"
[providers.full]
issuer = "https://full.example"
client_id = "valetkey"
allowed_scopes = ["a", "b"]
narrows_on_refresh = false
allow_full_scope = true
"#;

const NO_WRITES_ON_MONDAYS: &str = r#"package valetkey.authz
import rego.v1

allow if input.provider in {"gh", "wide"}

deny contains "no writes on Mondays" if {
	"write" in input.scopes
	input.time.weekday_utc == "Monday"
}
"#;

async fn refused(
    w: &World,
    c: &crate::caller::Caller,
    p: valetkey_ipc::methods::TokenGetParams,
) -> ErrorCode {
    code(crate::access::token::handle(&w.d, g(c), p).await)
}

#[tokio::test]
async fn the_request_and_provider_are_checked_before_anything_else() {
    let w = World::new();
    let c = w.agent("coder", "coder");
    w.d.set_paused(true);
    // Bad params and a bad provider win over "paused" and "no login".
    assert_eq!(
        refused(&w, &c, ask("gh", &["has space"], false)).await,
        ErrorCode::InvalidParams
    );
    assert_eq!(
        refused(&w, &c, ask("nope", &["read"], false)).await,
        ErrorCode::UnknownProvider
    );
    assert_eq!(
        refused(&w, &c, ask("gh", &["root"], false)).await,
        ErrorCode::ScopeNotAllowed
    );
    let mut p = ask("gh", &["read"], false);
    p.resource = Some("https://elsewhere.example".into());
    assert_eq!(refused(&w, &c, p).await, ErrorCode::ScopeNotAllowed);
    assert_eq!(
        refused(&w, &c, ask("gh", &["read"], false)).await,
        ErrorCode::IssuingPaused
    );
    w.d.set_paused(false);
    assert_eq!(
        refused(&w, &c, ask("gh", &["read"], false)).await,
        ErrorCode::ProviderLoginRequired
    );
    // Nothing reached the provider, and every refusal was recorded.
    assert_eq!(w.upstream.refreshes.load(Ordering::SeqCst), 0);
    let outcomes = w.audit("token.get");
    assert_eq!(
        outcomes,
        [
            "refused:invalid_params",
            "refused:unknown_provider",
            "refused:scope_not_allowed",
            "refused:scope_not_allowed",
            "refused:issuing_paused",
            "refused:provider_login_required",
        ]
    );
}

#[tokio::test]
async fn a_grant_covers_its_scopes_for_its_binary_only() {
    let w = World::new();
    w.login("gh", &["read", "write"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read"]).await;
    let e = crate::access::token::handle(&w.d, g(&c), ask("gh", &["read", "write"], false)).await;
    let e = valetkey_ipc::RpcError::from(e.expect_err("not granted"));
    assert_eq!(e.code, ErrorCode::ScopeNotGranted.code());
    let data = e.data.expect("data");
    assert_eq!(data["missing"], serde_json::json!(["write"]));
    assert_eq!(data["granted"], serde_json::json!(["read"]));
    // The same name from another binary has no grant: it is asked.
    let imposter = w.agent("coder", "evil");
    assert_eq!(
        refused(&w, &imposter, ask("gh", &["read"], false)).await,
        ErrorCode::ConsentRequired
    );
}

#[tokio::test]
async fn cached_tokens_are_per_agent_and_per_scope_set() {
    let w = World::new();
    w.login("gh", &["read", "write"]);
    let a = w.agent("a", "a");
    let b = w.agent("b", "b");
    w.grant(&a, "gh", &["read", "write"]).await;
    w.grant(&b, "gh", &["read"]).await;
    assert_eq!(
        token(&w.get(&a, "gh", &["read", "write"]).await.expect("t")),
        "access-1"
    );
    assert_eq!(
        token(&w.get(&b, "gh", &["read"]).await.expect("t")),
        "access-2"
    );
    // A narrower ask is a new, narrower token, not the wider cached one.
    let narrow = w.get(&a, "gh", &["read"]).await.expect("t");
    assert_eq!(
        (token(&narrow), narrow.0.scopes.as_slice()),
        ("access-3", &["read".to_string()][..])
    );
    // The cached token ends on the clock.
    w.clock.advance(600);
    assert_eq!(
        token(&w.get(&b, "gh", &["read"]).await.expect("t")),
        "access-4"
    );
}

#[tokio::test]
async fn the_policy_refuses_before_anyone_is_asked_and_reads_the_injected_clock() {
    let w = World::with_policy(Some(NO_WRITES_ON_MONDAYS), "");
    w.login("gh", &["read", "write"]);
    let c = w.agent("coder", "coder");
    let denied = |r: Result<_, crate::error::BrokerError>| {
        let e = valetkey_ipc::RpcError::from(r.expect_err("denied"));
        assert_eq!(e.code, ErrorCode::PolicyDenied.code(), "{}", e.message);
        assert!(e.message.contains("no writes on Mondays"), "{}", e.message);
    };
    denied(w.get(&c, "gh", &["read", "write"]).await);
    assert_eq!(w.d.consents.pending_count(), 0, "nobody was asked");
    // Tuesday: the same request goes on to consent, and is granted.
    w.clock.advance(24 * 3600);
    w.grant(&c, "gh", &["read", "write"]).await;
    // Next Monday the grant stands, and the policy still refuses.
    w.clock.advance(6 * 24 * 3600);
    denied(w.get(&c, "gh", &["read", "write"]).await);
    assert_eq!(
        token(&w.get(&c, "gh", &["read"]).await.expect("reads are fine")),
        "access-2"
    );
}

#[tokio::test]
async fn a_policy_approval_is_for_one_request_and_makes_no_grant() {
    let w = World::new();
    w.login("gh", &["admin", "read"]);
    let c = w.agent("coder", "coder");
    assert_eq!(
        refused(&w, &c, ask("gh", &["admin"], false)).await,
        ErrorCode::ConsentRequired
    );
    let p = w.prompt().await;
    assert_eq!(p.kind, ConsentKind::Approval);
    assert!(
        p.reasons.iter().any(|r| r.contains("needs your approval")),
        "{:?}",
        p.reasons
    );
    w.decide(&p.id, Decision::Always, None).expect("approved");
    let params = valetkey_ipc::methods::ConsentWaitParams { consent_id: p.id };
    let h = crate::access::token::handle_wait(&w.d, g(&c), params)
        .await
        .expect("token");
    assert_eq!(h.0.scopes, ["admin"]);
    assert!(w
        .d
        .store
        .list_grants(None, true)
        .expect("grants")
        .is_empty());
    assert_eq!(
        refused(&w, &c, ask("gh", &["admin"], false)).await,
        ErrorCode::ConsentRequired,
        "the next one is asked again"
    );
}

#[tokio::test]
async fn the_login_must_cover_what_is_issued() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    let r = w.allow(&c, "gh", &["write"], Decision::Always).await;
    assert_eq!(code(r), ErrorCode::ProviderLoginRequired);
    assert_eq!(w.upstream.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_provider_that_cannot_narrow_hands_out_only_the_full_login() {
    let w = World::with_policy(None, FULL);
    w.login("wide", &["a", "b"]);
    w.login("full", &["a", "b"]);
    w.upstream.answer(Answer::Wider);
    let c = w.agent("coder", "coder");
    // Narrower than the login: refused unless the user accepted full tokens.
    let r = w.allow(&c, "wide", &["a"], Decision::Always).await;
    assert_eq!(code(r), ErrorCode::ScopeNotAllowed);
    assert_eq!(
        w.get(&c, "wide", &["a", "b"]).await.err().map(|e| e.code()),
        Some(ErrorCode::ScopeNotGranted)
    );
    let h = w
        .allow(&c, "full", &["a"], Decision::Always)
        .await
        .expect("full token");
    assert_eq!(h.0.scopes, ["a", "b"]);
}

#[tokio::test]
async fn a_token_wider_than_asked_is_not_handed_out() {
    let w = World::new();
    w.login("gh", &["admin", "read", "write"]);
    w.upstream.answer(Answer::Wider);
    let c = w.agent("coder", "coder");
    let r = w.allow(&c, "gh", &["read"], Decision::Always).await;
    let e = valetkey_ipc::RpcError::from(r.expect_err("too wide"));
    assert_eq!(e.code, ErrorCode::ScopeNotAllowed.code());
    assert!(
        e.message.contains("more scopes than asked (admin write)"),
        "{}",
        e.message
    );
    assert!(
        w.d.tokens.cache.take(None, None).is_empty(),
        "and not cached"
    );
}

#[tokio::test]
async fn a_suspended_agent_is_refused_with_its_grant_intact() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read"]).await;
    let id = c.agent.as_ref().expect("greeted").0;
    w.d.store
        .set_agent_status(id, crate::store::SUSPENDED)
        .expect("suspend");
    assert_eq!(
        code(w.get(&c, "gh", &["read"]).await),
        ErrorCode::AgentSuspended
    );
    assert_eq!(w.d.store.list_grants(None, true).expect("grants").len(), 1);
    w.d.store
        .set_agent_status(id, crate::store::ACTIVE)
        .expect("resume");
    assert_eq!(
        token(&w.get(&c, "gh", &["read"]).await.expect("token")),
        "access-1"
    );
}

#[tokio::test]
async fn a_sub_agent_gets_what_its_delegation_names_and_no_more() {
    let w = World::new();
    w.login("gh", &["read", "write"]);
    w.login("wide", &["a", "b"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read", "write"]).await;
    let (helper, _) = super::revoke::sub_agent(&w, &c, &["read"]).await;
    assert_eq!(
        code(w.get(&helper, "gh", &["read", "write"]).await),
        ErrorCode::ScopeNotGranted
    );
    assert_eq!(
        code(w.get(&helper, "wide", &["a", "b"]).await),
        ErrorCode::ScopeNotGranted
    );
    assert_eq!(
        w.get(&helper, "gh", &["read"])
            .await
            .expect("token")
            .0
            .scopes,
        ["read"]
    );
    // The delegation ends on the clock.
    w.clock.advance(601);
    w.d.tokens.cache.take(None, None);
    assert_eq!(
        code(w.get(&helper, "gh", &["read"]).await),
        ErrorCode::DelegationInvalid
    );
}

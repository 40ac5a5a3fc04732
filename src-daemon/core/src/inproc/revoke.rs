//! Revocation and what hangs off it: grants, cached tokens, live
//! connections, pending prompts, sub-agents' delegations, upstream tokens.

use std::sync::atomic::Ordering;

use valetkey_ipc::control::{Decision, RevokeResult, RevokeTarget};
use valetkey_ipc::methods::DelegationCreateParams;
use valetkey_ipc::ErrorCode;

use super::{ask, code, g, hello, token, World};
use crate::caller::Caller;

async fn revoke(w: &World, target: RevokeTarget) -> RevokeResult {
    crate::consent::revoke::revoke(&w.d, target)
        .await
        .expect("revoked")
}

fn agent_id(c: &Caller) -> i64 {
    c.agent.as_ref().expect("greeted").0
}

/// `parent` delegates `scopes` on gh to a sub-agent, which connects with
/// the token from binary `helper`.
pub(super) async fn sub_agent(w: &World, parent: &Caller, scopes: &[&str]) -> (Caller, String) {
    let p = DelegationCreateParams {
        sub_agent: "helper".into(),
        provider: "gh".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ttl_secs: 600,
        max_depth: None,
        wait: Some(false),
    };
    let made = crate::access::delegate::create(&w.d, g(parent), p)
        .await
        .expect("delegated");
    let mut c = w.connect("helper");
    let mut h = hello("helper");
    h.delegation = Some(made.token);
    crate::access::hello::handle(&w.d, &mut c, h).expect("sub-agent hello");
    (c, made.jti)
}

#[tokio::test]
async fn revoking_an_agent_cuts_everything_it_holds_and_suspends_it() {
    let w = World::new();
    w.login("gh", &["read"]);
    w.login("wide", &["a", "b"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read"]).await;
    let mut live = w.d.live.register(agent_id(&c), c.session);
    let second = w.agent("coder", "coder");
    let (pending, result) = tokio::join!(w.get(&second, "wide", &["a", "b"]), async {
        w.prompt().await;
        revoke(
            &w,
            RevokeTarget::Agent {
                name: "coder".into(),
            },
        )
        .await
    });
    assert_eq!(
        result,
        RevokeResult {
            grants_removed: 1,
            tokens_dropped: 1,
            tokens_revoked_upstream: 1,
            connections_closed: 1,
        }
    );
    assert_eq!(
        code(pending),
        ErrorCode::ConsentDenied,
        "its open prompt was denied"
    );
    assert!(
        *live.borrow_and_update() == Some(crate::live::Cut::Suspended),
        "its connection was told to close"
    );
    assert_eq!(
        *w.upstream.revoked_access.lock().expect("lock"),
        ["access-1"]
    );
    assert_eq!(
        code(w.get(&c, "gh", &["read"]).await),
        ErrorCode::AgentSuspended
    );
    // Reinstated, it has to ask again: the old grant is gone for good.
    let name = valetkey_ipc::control::AgentNameParams {
        name: "coder".into(),
    };
    crate::agents::agents_reinstate(&w.d, name).expect("reinstated");
    let r = crate::access::token::handle(&w.d, g(&c), ask("gh", &["read"], false)).await;
    assert_eq!(code(r), ErrorCode::ConsentRequired);
}

#[tokio::test]
async fn revoking_a_grant_kills_the_delegations_made_under_it() {
    let w = World::new();
    w.login("gh", &["read", "write"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read", "write"]).await;
    let (helper, _) = sub_agent(&w, &c, &["read"]).await;
    assert_eq!(
        token(
            &w.get(&helper, "gh", &["read"])
                .await
                .expect("sub-agent token")
        ),
        "access-2"
    );
    let bystander = w.agent("bystander", "bystander");
    w.grant(&bystander, "gh", &["read"]).await;

    let id = w.d.store.list_grants(Some("coder"), false).expect("grants")[0].id;
    let r = revoke(&w, RevokeTarget::Grant { id }).await;
    assert_eq!(
        (r.grants_removed, r.tokens_dropped),
        (1, 2),
        "the grant's and the sub-agent's tokens"
    );
    assert_eq!(
        code(w.get(&helper, "gh", &["read"]).await),
        ErrorCode::DelegationRevoked
    );
    let again = crate::access::token::handle(&w.d, g(&c), ask("gh", &["read"], false)).await;
    assert_eq!(code(again), ErrorCode::ConsentRequired);
    // Another agent's grant on the same provider stands, and its cached
    // token was not touched.
    assert_eq!(
        token(&w.get(&bystander, "gh", &["read"]).await.expect("token")),
        "access-3"
    );
    assert_eq!(w.upstream.refreshes.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn revoking_a_delegation_leaves_the_parent_alone() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read"]).await;
    let (helper, jti) = sub_agent(&w, &c, &["read"]).await;
    w.get(&helper, "gh", &["read"])
        .await
        .expect("sub-agent token");
    let r = revoke(&w, RevokeTarget::Delegation { jti }).await;
    assert_eq!((r.grants_removed, r.tokens_dropped), (0, 1));
    assert_eq!(
        code(w.get(&helper, "gh", &["read"]).await),
        ErrorCode::DelegationRevoked
    );
    assert_eq!(
        token(&w.get(&c, "gh", &["read"]).await.expect("parent's token")),
        "access-1"
    );
}

#[tokio::test]
async fn revoking_everything_removes_every_grant_but_suspends_nobody() {
    let w = World::new();
    w.login("gh", &["read"]);
    let a = w.agent("a", "a");
    let b = w.agent("b", "b");
    w.grant(&a, "gh", &["read"]).await;
    w.grant(&b, "gh", &["read"]).await;
    let r = revoke(&w, RevokeTarget::All).await;
    assert_eq!(
        (
            r.grants_removed,
            r.tokens_dropped,
            r.tokens_revoked_upstream
        ),
        (2, 2, 2)
    );
    for c in [&a, &b] {
        let r = crate::access::token::handle(&w.d, g(c), ask("gh", &["read"], false)).await;
        assert_eq!(
            code(r),
            ErrorCode::ConsentRequired,
            "asks again, not suspended"
        );
    }
    // After a new consent the agent works again.
    let h = w
        .allow(&a, "gh", &["read"], Decision::Always)
        .await
        .expect("token");
    assert_eq!(token(&h), "access-3");
}

#[tokio::test]
async fn revoking_what_does_not_exist_says_so_and_changes_nothing() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read"]).await;
    for t in [
        RevokeTarget::Grant { id: 999 },
        RevokeTarget::Agent {
            name: "nobody".into(),
        },
        RevokeTarget::Delegation { jti: "nope".into() },
    ] {
        let r = crate::consent::revoke::revoke(&w.d, t).await;
        assert_eq!(code(r), ErrorCode::NotFound);
    }
    assert_eq!(
        token(&w.get(&c, "gh", &["read"]).await.expect("token")),
        "access-1"
    );
    assert_eq!(w.d.store.list_grants(None, true).expect("grants").len(), 1);
}

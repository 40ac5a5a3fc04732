//! Every way a consent can end, as the waiting agent and the store see it.

use valetkey_ipc::control::{ConsentKind, Decision};
use valetkey_ipc::ErrorCode;

use super::{ask, code, g, token, World};

fn grants(w: &World) -> Vec<(String, Vec<String>)> {
    let rows = w.d.store.list_grants(None, true).expect("grants");
    rows.into_iter().map(|g| (g.provider, g.scopes)).collect()
}

#[tokio::test]
async fn allow_always_makes_a_grant_and_the_next_request_asks_nobody() {
    let w = World::new();
    w.login("gh", &["read", "write"]);
    let c = w.agent("coder", "coder");
    let h = w.grant(&c, "gh", &["read"]).await;
    assert_eq!(token(&h), "access-1");
    assert_eq!(grants(&w), [("gh".to_string(), vec!["read".to_string()])]);
    let again = w.get(&c, "gh", &["read"]).await.expect("token");
    assert_eq!(token(&again), "access-1", "from the cache");
    assert_eq!(w.d.consents.pending_count(), 0);
    // The grant is for read: write needs a new consent.
    let r = crate::access::token::handle(&w.d, g(&c), ask("gh", &["write"], false)).await;
    assert_eq!(code(r), ErrorCode::ScopeNotGranted);
}

#[tokio::test]
async fn allow_once_hands_out_one_token_and_leaves_no_grant() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    let h = w
        .allow(&c, "gh", &["read"], Decision::Once)
        .await
        .expect("token");
    assert_eq!(token(&h), "access-1");
    assert!(grants(&w).is_empty());
    let r = crate::access::token::handle(&w.d, g(&c), ask("gh", &["read"], false)).await;
    assert_eq!(code(r), ErrorCode::ConsentRequired, "asked again");
}

#[tokio::test]
async fn allow_for_a_while_makes_a_grant_that_ends_on_the_clock() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    let d = Decision::For {
        duration_secs: 3600,
    };
    w.allow(&c, "gh", &["read"], d).await.expect("token");
    w.clock.advance(3599);
    assert!(w.get(&c, "gh", &["read"]).await.is_ok());
    w.clock.advance(2);
    let r = crate::access::token::handle(&w.d, g(&c), ask("gh", &["read"], false)).await;
    assert_eq!(code(r), ErrorCode::ConsentRequired, "the grant expired");
}

#[tokio::test]
async fn a_narrowed_allow_hands_out_only_what_was_allowed() {
    let w = World::new();
    w.login("gh", &["read", "write"]);
    let c = w.agent("coder", "coder");
    let (got, decided) = tokio::join!(w.get(&c, "gh", &["read", "write"]), async {
        let p = w.prompt().await;
        // Widening is refused; the prompt stays open.
        let wider = w.decide(&p.id, Decision::Always, Some(&["admin", "read"]));
        assert_eq!(code(wider), ErrorCode::InvalidParams);
        w.decide(&p.id, Decision::Always, Some(&["read"]))
    });
    assert_eq!(decided.expect("decided").scopes, ["read"]);
    assert_eq!(got.expect("token").0.scopes, ["read"]);
    assert_eq!(grants(&w), [("gh".to_string(), vec!["read".to_string()])]);
}

#[tokio::test]
async fn deny_refuses_and_deny_remembered_refuses_at_once_next_time() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    let d = Decision::Deny { remember: false };
    assert_eq!(
        code(w.allow(&c, "gh", &["read"], d).await),
        ErrorCode::ConsentDenied
    );
    let d = Decision::Deny { remember: true };
    assert_eq!(
        code(w.allow(&c, "gh", &["read"], d).await),
        ErrorCode::ConsentDenied
    );
    // Remembered: refused without a prompt.
    assert_eq!(
        code(w.get(&c, "gh", &["read"]).await),
        ErrorCode::ConsentDenied
    );
    assert_eq!(w.d.consents.pending_count(), 0);
    // Bound to the binary: the same name from another binary is asked.
    let other = w.agent("coder", "coder-v2");
    let r = crate::access::token::handle(&w.d, g(&other), ask("gh", &["read"], false)).await;
    assert_eq!(code(r), ErrorCode::ConsentRequired);
    assert_eq!(
        w.upstream
            .refreshes
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn an_unanswered_prompt_times_out_on_the_clock_and_a_late_allow_grants_nothing() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    let (got, late) = tokio::join!(w.get(&c, "gh", &["read"]), async {
        let p = w.prompt().await;
        w.clock
            .advance(w.d.config.consent.timeout.as_secs() as i64 + 1);
        crate::consent::flow::expire_overdue(&w.d);
        w.decide(&p.id, Decision::Always, None)
    });
    assert_eq!(code(got), ErrorCode::ConsentTimeout);
    assert_eq!(code(late), ErrorCode::NotFound);
    assert!(grants(&w).is_empty());
}

#[tokio::test]
async fn without_waiting_the_agent_gets_an_id_and_collects_with_consent_wait() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    let r = crate::access::token::handle(&w.d, g(&c), ask("gh", &["read"], false)).await;
    let e = valetkey_ipc::RpcError::from(r.expect_err("consent required"));
    assert_eq!(e.code, ErrorCode::ConsentRequired.code());
    let id = e
        .data
        .as_ref()
        .and_then(|d| d["consent_id"].as_str())
        .expect("id")
        .to_owned();
    let p = w.prompt().await;
    assert_eq!((p.id.as_str(), p.kind), (id.as_str(), ConsentKind::Access));
    w.decide(&id, Decision::Always, None).expect("decided");
    let params = valetkey_ipc::methods::ConsentWaitParams {
        consent_id: id.clone(),
    };
    let h = crate::access::token::handle_wait(&w.d, g(&c), params)
        .await
        .expect("token");
    assert_eq!(token(&h), "access-1");
    // Another agent cannot collect it.
    let thief = w.agent("thief", "thief");
    let params = valetkey_ipc::methods::ConsentWaitParams { consent_id: id };
    let r = crate::access::token::handle_wait(&w.d, g(&thief), params).await;
    assert_eq!(code(r), ErrorCode::UnknownConsent);
}

#[tokio::test]
async fn a_locked_session_refuses_new_prompts_and_settles_open_ones() {
    let w = World::with_policy(None, "[consent]\non_lock = \"refuse\"\n");
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    let (got, decided) = tokio::join!(w.get(&c, "gh", &["read"]), async {
        let p = w.prompt().await;
        crate::consent::flow::session_changed(&w.d, true);
        w.decide(&p.id, Decision::Always, None)
    });
    assert_eq!(code(got), ErrorCode::UserAway);
    assert_eq!(code(decided), ErrorCode::SessionLocked);
    assert_eq!(code(w.get(&c, "gh", &["read"]).await), ErrorCode::UserAway);
    crate::consent::flow::session_changed(&w.d, false);
    assert!(w.grant(&c, "gh", &["read"]).await.0.scopes == ["read"]);
}

#[tokio::test]
async fn an_agent_that_floods_prompts_is_refused_and_the_user_told_once() {
    let w = World::new();
    w.login("gh", &["read", "write", "admin"]);
    let c = w.agent("coder", "coder");
    let mut events = w.d.events.subscribe();
    assert_eq!(w.d.config.consent.max_pending_per_agent, 3);
    let sets: [&[&str]; 5] = [
        &["read"],
        &["write"],
        &["admin"],
        &["read", "write"],
        &["admin", "read"],
    ];
    let mut codes = vec![];
    for s in sets {
        let r = crate::access::token::handle(&w.d, g(&c), ask("gh", s, false)).await;
        codes.push(code(r));
    }
    use ErrorCode::{ConsentRateLimited as Limited, ConsentRequired as Asked};
    assert_eq!(codes, [Asked, Asked, Asked, Limited, Limited]);
    assert_eq!(w.d.consents.pending_count(), 3);
    let mut floods = 0;
    while let Ok(e) = events.try_recv() {
        floods += matches!(e, valetkey_ipc::control::Event::ConsentFlood { .. }) as u32;
    }
    assert_eq!(floods, 1);
}

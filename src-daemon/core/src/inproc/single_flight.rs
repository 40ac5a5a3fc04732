//! The token service against its ports: one refresh for many misses, and
//! a rotated refresh token that is never lost.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use valetkey_ipc::control::Decision;
use valetkey_ipc::ErrorCode;

use super::{code, token, Answer, World};
use crate::keychain::Item;

/// Misses piled up behind one upstream refresh, then let through.
async fn pile_up(w: &Arc<World>, n: usize) -> Vec<String> {
    let c = Arc::new(w.agent("coder", "coder"));
    w.grant(&c, "gh", &["read"]).await;
    w.d.tokens.cache.take(None, None);
    w.upstream.hold();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (w, c) = (w.clone(), c.clone());
        set.spawn(async move {
            w.get(&c, "gh", &["read"])
                .await
                .map(|h| token(&h).to_owned())
        });
    }
    // Every task runs until it waits: one on the provider, the rest on the
    // provider's flight.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    w.upstream.release();
    let mut got = vec![];
    while let Some(r) = set.join_next().await {
        got.push(r.expect("task").expect("token"));
    }
    got
}

#[tokio::test]
async fn a_hundred_concurrent_misses_make_one_refresh() {
    let w = Arc::new(World::new());
    w.login("gh", &["read", "write"]);
    let got = pile_up(&w, 100).await;
    // One refresh for the consent grant, one for the hundred.
    assert_eq!(w.upstream.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(w.d.tokens.refresh_count(), 2);
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|t| t == "access-2"), "{got:?}");
    // Rotation was sequential: each refresh presented the token the one
    // before it stored.
    assert_eq!(
        *w.upstream.presented.lock().expect("lock"),
        ["refresh-0", "refresh-1"]
    );
    assert_eq!(
        w.keychain.peek(Item::RefreshToken("gh")).as_deref(),
        Some("refresh-2")
    );
    // The first hand-out on the connection is written; the 99 repeats are
    // counted for one `token.reused` record, not written one by one.
    let issued = w
        .audit("token.get")
        .iter()
        .filter(|o| *o == "issued")
        .count();
    assert_eq!(
        issued, 2,
        "the consent's hand-out and the first of the hundred"
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_the_keychain_refuses_is_kept_and_used_next() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read"]).await;
    assert_eq!(
        w.keychain.peek(Item::RefreshToken("gh")).as_deref(),
        Some("refresh-1")
    );
    w.d.tokens.cache.take(None, None);

    w.keychain.fail_writes.store(true, Ordering::SeqCst);
    // The provider rotated to refresh-2 but it could not be stored: no
    // access token goes out (fail closed) ...
    assert_eq!(
        code(w.get(&c, "gh", &["read"]).await),
        ErrorCode::KeychainUnavailable
    );
    assert!(w.d.tokens.cache.take(None, None).is_empty());
    // ... and the keychain still holds the now-dead refresh-1.
    assert_eq!(
        w.keychain.peek(Item::RefreshToken("gh")).as_deref(),
        Some("refresh-1")
    );

    w.keychain.fail_writes.store(false, Ordering::SeqCst);
    let h = w
        .get(&c, "gh", &["read"])
        .await
        .expect("token once the keychain is back");
    assert_eq!(token(&h), "access-3");
    // The next refresh presented refresh-2 from memory, not the dead one,
    // and its successor reached the keychain.
    let presented = w.upstream.presented.lock().expect("lock").clone();
    assert_eq!(presented, ["refresh-0", "refresh-1", "refresh-2"]);
    assert_eq!(
        w.keychain.peek(Item::RefreshToken("gh")).as_deref(),
        Some("refresh-3")
    );
}

#[tokio::test]
async fn a_dead_refresh_token_asks_for_a_login_and_drops_the_cache() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    w.grant(&c, "gh", &["read"]).await;
    let other = w.agent("other", "other");
    w.upstream.answer(Answer::InvalidGrant);
    let r = w.allow(&other, "gh", &["read"], Decision::Always).await;
    assert_eq!(code(r), ErrorCode::ProviderLoginRequired);
    // The first agent's cached token is gone too: the login it came from
    // is dead.
    assert_eq!(
        code(w.get(&c, "gh", &["read"]).await),
        ErrorCode::ProviderLoginRequired
    );
    assert_eq!(
        w.upstream.refreshes.load(Ordering::SeqCst),
        2,
        "no refresh once the login is known dead"
    );
    // A new login works again.
    w.upstream.answer(Answer::Keep);
    w.login("gh", &["read"]);
    assert!(w.get(&c, "gh", &["read"]).await.is_ok());
}

#[tokio::test]
async fn a_locked_keychain_refuses_with_its_own_code_and_nothing_is_refreshed() {
    let w = World::new();
    w.login("gh", &["read"]);
    let c = w.agent("coder", "coder");
    w.keychain.locked.store(true, Ordering::SeqCst);
    let r = w.allow(&c, "gh", &["read"], Decision::Always).await;
    assert_eq!(code(r), ErrorCode::KeychainLocked);
    assert_eq!(w.upstream.refreshes.load(Ordering::SeqCst), 0);
    w.keychain.locked.store(false, Ordering::SeqCst);
    assert_eq!(
        token(&w.get(&c, "gh", &["read"]).await.expect("token")),
        "access-1"
    );
}

//! A refresh token rotated as the daemon dies (issue 32): the provider
//! has answered with a new one and counts the old one as used, and the
//! keychain never got the new one. The rotation journal holds it, and the
//! next daemon's first refresh puts it in the keychain and uses it. Each
//! "daemon" here is a token service of its own over the same keychain,
//! provider and journal directory; dropping one is the kill.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::World;
use crate::keychain::Item;
use crate::tokens::journal::Journal;
use crate::tokens::service::Request;
use crate::tokens::TokenService;

fn daemon(w: &World, dir: &std::path::Path) -> TokenService {
    TokenService::new(w.keychain.clone(), w.upstream.clone()).with_journal(dir.to_owned())
}

fn presented(w: &World) -> Vec<String> {
    w.upstream.presented.lock().expect("lock").clone()
}

fn sealed(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "sealed"))
                .count()
        })
        .unwrap_or(0)
}

/// The first daemon refreshes; the provider rotates to `refresh-1`; the
/// daemon dies before the keychain holds it (the write fails, and its
/// memory goes with it).
async fn killed_in_the_window(w: &World, dir: &std::path::Path) {
    w.login("gh", &["read"]);
    // The journal's key is made while the keychain still takes writes.
    Journal::open(dir, &*w.keychain).await.expect("journal");
    w.keychain.fail_writes.store(true, Ordering::SeqCst);
    let p = w.d.provider("gh").expect("gh");
    let scopes = ["read".to_owned()];
    let first = daemon(w, dir);
    assert!(first.get(&w.d.store, &p, &req(&scopes)).await.is_err());
    drop(first);
    w.keychain.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(presented(w), ["refresh-0"]);
    assert_eq!(
        w.keychain.peek(Item::RefreshToken("gh")).as_deref(),
        Some("refresh-0")
    );
    assert_eq!(sealed(dir), 1, "journalled");
}

/// A daemon started after the kill refreshes once.
async fn next_daemon_refreshes(w: &World, dir: &std::path::Path) {
    let p = w.d.provider("gh").expect("gh");
    let scopes = ["read".to_owned()];
    daemon(w, dir)
        .get(&w.d.store, &p, &req(&scopes))
        .await
        .expect("token");
}

fn req(scopes: &[String]) -> Request<'_> {
    Request {
        agent_id: 1,
        scopes,
        resource: None,
        generation: 0,
        now: 1_000_000,
    }
}

#[tokio::test]
async fn a_token_rotated_as_the_daemon_died_is_used_by_the_next_one() {
    let w = Arc::new(World::new());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("rotations");
    killed_in_the_window(&w, &dir).await;

    next_daemon_refreshes(&w, &dir).await;
    // It presented the rotated token, not the one the provider had used
    // up (which a rotating provider answers by revoking the login).
    assert_eq!(presented(&w), ["refresh-0", "refresh-1"]);
    assert_eq!(
        w.keychain.peek(Item::RefreshToken("gh")).as_deref(),
        Some("refresh-2")
    );
    assert_eq!(
        sealed(&dir),
        0,
        "the journal is emptied once the keychain holds it"
    );
}

#[tokio::test]
async fn a_login_made_since_wins_over_the_journal() {
    let w = Arc::new(World::new());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("rotations");
    killed_in_the_window(&w, &dir).await;
    // The user logged in again before the next daemon started.
    w.keychain.put(Item::RefreshToken("gh"), "refresh-login");

    next_daemon_refreshes(&w, &dir).await;
    assert_eq!(presented(&w), ["refresh-0", "refresh-login"]);
    assert_eq!(sealed(&dir), 0);
}

/// The keychain refuses two rotations in a row (locked, say), so the
/// daemon runs on the token it holds in memory; then it is killed. The
/// journal still names what the keychain holds, and the next daemon gets
/// the newest token, not the one of the first rotation.
#[tokio::test]
async fn after_two_refused_writes_the_next_daemon_gets_the_newest_token() {
    let w = Arc::new(World::new());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("rotations");
    w.login("gh", &["read"]);
    Journal::open(&dir, &*w.keychain).await.expect("journal");
    w.keychain.fail_writes.store(true, Ordering::SeqCst);
    let p = w.d.provider("gh").expect("gh");
    let scopes = ["read".to_owned()];
    let first = daemon(&w, &dir);
    assert!(first.get(&w.d.store, &p, &req(&scopes)).await.is_err());
    assert!(first.get(&w.d.store, &p, &req(&scopes)).await.is_err());
    // It presented the token it held in memory the second time.
    assert_eq!(presented(&w), ["refresh-0", "refresh-1"]);
    drop(first);
    w.keychain.fail_writes.store(false, Ordering::SeqCst);

    next_daemon_refreshes(&w, &dir).await;
    assert_eq!(presented(&w), ["refresh-0", "refresh-1", "refresh-2"]);
    assert_eq!(
        w.keychain.peek(Item::RefreshToken("gh")).as_deref(),
        Some("refresh-3")
    );
    assert_eq!(sealed(&dir), 0);
}

/// A keychain locked at the first refresh keeps the journal closed only
/// until it unlocks: the next refresh opens it (makes its key).
#[tokio::test]
async fn a_journal_a_locked_keychain_kept_closed_opens_once_it_unlocks() {
    let w = Arc::new(World::new());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("rotations");
    w.login("gh", &["read"]);
    let p = w.d.provider("gh").expect("gh");
    let scopes = ["read".to_owned()];
    let svc = daemon(&w, &dir);
    w.keychain.locked.store(true, Ordering::SeqCst);
    assert!(svc.get(&w.d.store, &p, &req(&scopes)).await.is_err());
    assert!(w.keychain.peek(Item::JournalKey).is_none());
    w.keychain.locked.store(false, Ordering::SeqCst);
    svc.get(&w.d.store, &p, &req(&scopes)).await.expect("token");
    assert!(w.keychain.peek(Item::JournalKey).is_some(), "opened");
}

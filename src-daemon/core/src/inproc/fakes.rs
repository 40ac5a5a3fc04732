//! The two ports, faked: a keychain in a map and a provider that rotates
//! refresh tokens. Both count what they were asked and fail on demand, so
//! a test can state exactly what crossed the process boundary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::Provider;
use crate::keychain::{BoxFuture, Item, Keychain, KeychainError};
use crate::oauth::{TokenSet, Upstream, UpstreamError};
use crate::secret::Secret;

/// A keychain held in memory.
#[derive(Default)]
pub struct FakeKeychain {
    items: Mutex<HashMap<String, Secret>>,
    /// Every write fails with `Unavailable` while set.
    pub fail_writes: AtomicBool,
    /// Every read fails with `Locked` while set.
    pub locked: AtomicBool,
}

impl FakeKeychain {
    /// What an item holds now, as plain text.
    pub fn peek(&self, item: Item<'_>) -> Option<String> {
        let items = self.items.lock().expect("lock");
        items.get(&item.user()).map(|s| s.expose().to_owned())
    }

    /// Stores an item without going through the port.
    pub fn put(&self, item: Item<'_>, value: &str) {
        let mut items = self.items.lock().expect("lock");
        items.insert(item.user(), Secret::new(value.into()));
    }
}

impl Keychain for FakeKeychain {
    fn get<'a>(&'a self, item: Item<'a>) -> BoxFuture<'a, Result<Option<Secret>, KeychainError>> {
        Box::pin(async move {
            if self.locked.load(Ordering::SeqCst) {
                return Err(KeychainError::Locked);
            }
            Ok(self.items.lock().expect("lock").get(&item.user()).cloned())
        })
    }

    fn set<'a>(
        &'a self,
        item: Item<'a>,
        value: &'a Secret,
    ) -> BoxFuture<'a, Result<(), KeychainError>> {
        Box::pin(async move {
            if self.fail_writes.load(Ordering::SeqCst) {
                return Err(KeychainError::Unavailable("the fake refuses writes".into()));
            }
            let mut items = self.items.lock().expect("lock");
            items.insert(item.user(), value.clone());
            Ok(())
        })
    }

    fn delete<'a>(&'a self, item: Item<'a>) -> BoxFuture<'a, Result<(), KeychainError>> {
        Box::pin(async move {
            self.items.lock().expect("lock").remove(&item.user());
            Ok(())
        })
    }
}

/// What the fake provider answers a refresh with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A token for what was asked, and a rotated refresh token.
    Rotate,
    /// A token for what was asked; the refresh token stays.
    Keep,
    /// A token carrying every allowed scope, whatever was asked.
    Wider,
    /// `invalid_grant`: the refresh token is dead.
    InvalidGrant,
}

/// A provider that hands out `access-N` and rotates to `refresh-N`.
pub struct FakeUpstream {
    /// How refreshes are answered.
    pub answer: Mutex<Answer>,
    /// Refreshes wait for a permit here while [`FakeUpstream::hold`] is on.
    gate: Semaphore,
    held: AtomicBool,
    /// Refresh calls made.
    pub refreshes: AtomicU32,
    /// The refresh tokens presented, in order.
    pub presented: Mutex<Vec<String>>,
    /// Access tokens revoked (RFC 7009), in order.
    pub revoked_access: Mutex<Vec<String>>,
    /// Refresh tokens revoked, in order.
    pub revoked_refresh: Mutex<Vec<String>>,
}

impl Default for FakeUpstream {
    fn default() -> Self {
        Self {
            answer: Mutex::new(Answer::Rotate),
            gate: Semaphore::new(0),
            held: AtomicBool::new(false),
            refreshes: AtomicU32::new(0),
            presented: Mutex::default(),
            revoked_access: Mutex::default(),
            revoked_refresh: Mutex::default(),
        }
    }
}

impl FakeUpstream {
    /// Refreshes block until [`FakeUpstream::release`].
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// Lets every held refresh (and every later one) through.
    pub fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Sets how refreshes are answered.
    pub fn answer(&self, a: Answer) {
        *self.answer.lock().expect("lock") = a;
    }

    fn set(n: u32, p: &Provider, scopes: &[String], a: Answer) -> TokenSet {
        TokenSet {
            access_token: Secret::new(format!("access-{n}")),
            token_type: "Bearer".into(),
            expires_in: Some(Duration::from_secs(600)),
            scopes: Some(match a {
                Answer::Wider => p.allowed_scopes.clone(),
                _ => scopes.to_vec(),
            }),
            refresh_token: (a == Answer::Rotate).then(|| Secret::new(format!("refresh-{n}"))),
        }
    }
}

impl Upstream for FakeUpstream {
    fn refresh<'a>(
        &'a self,
        p: &'a Provider,
        refresh_token: &'a Secret,
        _client_secret: Option<&'a Secret>,
        scopes: &'a [String],
        _resource: Option<&'a str>,
    ) -> BoxFuture<'a, Result<TokenSet, UpstreamError>> {
        Box::pin(async move {
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            let presented = refresh_token.expose().to_owned();
            self.presented.lock().expect("lock").push(presented);
            if self.held.load(Ordering::SeqCst) {
                let _permit = self.gate.acquire().await.expect("gate open");
            }
            let a = *self.answer.lock().expect("lock");
            if a == Answer::InvalidGrant {
                return Err(UpstreamError::InvalidGrant {
                    provider: p.name.clone(),
                    detail: "refresh token revoked".into(),
                });
            }
            Ok(Self::set(n, p, scopes, a))
        })
    }

    fn revoke<'a>(
        &'a self,
        _p: &'a Provider,
        refresh_token: &'a Secret,
        _client_secret: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<bool, UpstreamError>> {
        revoked(&self.revoked_refresh, refresh_token)
    }

    fn revoke_access_token<'a>(
        &'a self,
        _p: &'a Provider,
        access_token: &'a Secret,
        _client_secret: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<bool, UpstreamError>> {
        revoked(&self.revoked_access, access_token)
    }
    fn scoped_token<'a>(
        &'a self,
        _p: &'a Provider,
        _client_secret: &'a Secret,
        _url: &'a str,
        token: &'a Secret,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Secret, UpstreamError>> {
        let narrowed = format!("{}.scoped.{}", token.expose(), body["permissions"]);
        Box::pin(async move { Ok(Secret::new(narrowed)) })
    }
}

/// Notes a revoked token in `list`; the fake provider supports RFC 7009.
fn revoked<'a>(
    list: &'a Mutex<Vec<String>>,
    token: &Secret,
) -> BoxFuture<'a, Result<bool, UpstreamError>> {
    let t = token.expose().to_owned();
    Box::pin(async move {
        list.lock().expect("lock").push(t);
        Ok(true)
    })
}

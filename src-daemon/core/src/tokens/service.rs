//! Turning a validated request into an access token.
//!
//! Providers rotate refresh tokens, and a reused one revokes the whole
//! grant (two concurrent refreshes with the same token kill it for both).
//! So refreshes are single-flight per provider: one tokio mutex per
//! provider, held across the upstream call, with the cache re-checked after
//! it is acquired, so 100 concurrent cold requests make one refresh. A
//! rotated refresh token is written to the keychain before any access token
//! goes out; if that write fails, the new token is kept in memory
//! (`pending`) and used for the next refresh, so it is never lost. Before
//! the keychain, it is written to the rotation journal ([`super::journal`]),
//! which a daemon killed in between replays at its next refresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use valetkey_ipc::ErrorCode;

use super::journal::{digest, Journal};
use super::{CacheKey, CachedToken, KeyRef, TokenCache};
use crate::config::Provider;
use crate::error::BrokerError;
use crate::keychain::{Item, Keychain};
use crate::oauth::Upstream;
use crate::secret::Secret;
use crate::store::Store;

/// Default lifetime assumed when a provider omits `expires_in`.
const DEFAULT_LIFETIME_SECS: u64 = 600;

/// The cache plus the refresh machinery, over its two ports.
pub struct TokenService {
    /// Live access tokens.
    pub cache: TokenCache,
    /// Where refresh tokens and client secrets are read and rotated.
    keychain: Arc<dyn Keychain>,
    /// The provider's token endpoint.
    upstream: Arc<dyn Upstream>,
    /// One async mutex per provider: the single-flight gate.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Rotated refresh tokens the keychain refused to store yet.
    pending: Mutex<HashMap<String, Secret>>,
    /// Where the rotation journal lives (none: no journal).
    journal_dir: Option<std::path::PathBuf>,
    /// The journal, opened at the first refresh that can (its key comes
    /// from the keychain, which may be locked until then).
    journal: tokio::sync::OnceCell<Journal>,
    /// Upstream refreshes made (for `status` and tests).
    refreshes: AtomicU64,
    /// The last token id handed out by a refresh.
    ids: AtomicU64,
}

/// The first "scope" of a narrowed token's cache key.
const NARROWED: &str = "\"narrowed at GitHub\"";

/// What a request needs besides the provider.
pub struct Request<'a> {
    /// The agent's registry id (tokens are cached per agent).
    pub agent_id: i64,
    /// Sorted, deduplicated scopes.
    pub scopes: &'a [String],
    /// Resource indicator.
    pub resource: Option<&'a str>,
    /// Provider login generation.
    pub generation: i64,
    /// Now (Unix seconds, from the daemon's clock).
    pub now: u64,
}

impl TokenService {
    /// A service with an empty cache over these ports.
    pub fn new(keychain: Arc<dyn Keychain>, upstream: Arc<dyn Upstream>) -> Self {
        Self {
            cache: TokenCache::default(),
            keychain,
            upstream,
            flights: Mutex::default(),
            pending: Mutex::default(),
            journal_dir: None,
            journal: tokio::sync::OnceCell::new(),
            refreshes: AtomicU64::new(0),
            ids: AtomicU64::new(0),
        }
    }

    /// With the rotation journal in `dir`.
    pub fn with_journal(mut self, dir: std::path::PathBuf) -> Self {
        self.journal_dir = Some(dir);
        self
    }

    /// The journal, opened on first use; a failure (a locked keychain) is
    /// not kept, so a later refresh opens it.
    async fn journal(&self) -> Option<&Journal> {
        let dir = self.journal_dir.as_deref()?;
        self.journal
            .get_or_try_init(|| Journal::open(dir, &*self.keychain))
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "no rotation journal yet: a daemon killed as a token rotates may lose the login"))
            .ok()
    }

    /// Puts a journalled token in the keychain when the keychain still
    /// holds the one it replaced (the daemon was killed in between).
    async fn replay(&self, j: &Journal, p: &Provider) {
        let r = match j.read(&p.keychain_key) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => return tracing::warn!(provider = %p.name, error = %e, "rotation journal"),
        };
        let item = Item::RefreshToken(&p.keychain_key);
        let current = match self.keychain.get(item).await {
            Ok(c) => c,
            Err(e) => {
                return tracing::warn!(provider = %p.name, error = %e, "cannot replay the rotation journal yet")
            }
        };
        if current.as_ref().map(|c| digest(c.expose())) != Some(r.replaces) {
            // Stored after all, or a login or logout since: it wins.
            return j.clear(&p.keychain_key);
        }
        match self.keychain.set(item, &r.token).await {
            Ok(()) => {
                tracing::warn!(provider = %p.name, "a refresh token rotated as the daemon stopped was recovered from the rotation journal");
                j.clear(&p.keychain_key);
            }
            Err(e) => {
                tracing::warn!(provider = %p.name, error = %e, "cannot replay the rotation journal yet")
            }
        }
    }

    /// Forgets everything held for `provider` (its cached access tokens
    /// and a rotated refresh token not yet stored): after a new login or a
    /// logout, nothing from the old login may be handed out or used.
    pub fn forget_provider(&self, provider: &str) {
        self.cache.clear_provider(provider);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(provider);
    }

    /// Upstream refreshes so far.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    fn flight(&self, provider: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(provider.to_owned())
            .or_default()
            .clone()
    }

    /// A token from the cache, or from one upstream refresh (whose
    /// outcome is audited in `store`).
    pub async fn get(
        &self,
        store: &Store,
        p: &Provider,
        req: &Request<'_>,
    ) -> Result<(Arc<CachedToken>, bool), BrokerError> {
        let key = KeyRef {
            agent_id: req.agent_id,
            provider: &p.name,
            scopes: req.scopes,
            resource: req.resource,
        };
        if let Some(t) = self.cache.get(key, req.generation, req.now) {
            return Ok((t, true));
        }
        let gate = self.flight(&p.name);
        let _flight = gate.lock().await;
        if let Some(t) = self.cache.get(key, req.generation, req.now) {
            return Ok((t, true));
        }
        // Boxed: a miss is rare, and the refresh future is large.
        let token = Box::pin(self.refresh(store, p, req)).await?;
        self.cache.insert(
            CacheKey::new(req.agent_id, &p.name, req.scopes, req.resource),
            token.clone(),
        );
        Ok((token, false))
    }

    /// The token for `req` (whose scopes may name repositories), narrowed
    /// at GitHub (`url`, see [`crate::oauth::github`]) from `full`, the
    /// provider's token for the same scopes without repositories. Cached
    /// like any other until `full` expires, under `req`'s scopes and a
    /// mark no scope can be (a quote is not a scope character), so it
    /// never stands in for the provider's own token. The flag says whether
    /// it came from the cache.
    pub async fn narrowed(
        &self,
        p: &Provider,
        url: &str,
        full: &Arc<CachedToken>,
        req: &Request<'_>,
        body: &serde_json::Value,
    ) -> Result<(Arc<CachedToken>, bool), BrokerError> {
        let mut keyed = vec![NARROWED.to_owned()];
        keyed.extend(req.scopes.iter().cloned());
        let key = KeyRef {
            agent_id: req.agent_id,
            provider: &p.name,
            scopes: &keyed,
            resource: req.resource,
        };
        if let Some(t) = self.cache.get(key, req.generation, req.now) {
            return Ok((t, true));
        }
        let secret = Self::client_secret(self.keychain.as_ref(), p)
            .await?
            .ok_or_else(|| {
                BrokerError::rpc(
                    ErrorCode::ProviderRejected,
                    "narrowing at GitHub needs the app's client secret",
                )
            })?;
        let token = self
            .upstream
            .scoped_token(p, &secret, url, &full.token, body)
            .await?;
        let t = Arc::new(CachedToken {
            id: self.ids.fetch_add(1, Ordering::Relaxed) + 1,
            token,
            token_type: full.token_type.clone(),
            expires_at: full.expires_at,
            scopes: req.scopes.to_vec(),
            generation: req.generation,
            provider: p.name.clone(),
            resource: req.resource.map(str::to_owned),
        });
        self.cache.insert(
            CacheKey::new(req.agent_id, &p.name, &keyed, req.resource),
            t.clone(),
        );
        tracing::info!(provider = %p.name, scopes = %req.scopes.join(" "), "token narrowed at GitHub");
        Ok((t, false))
    }

    async fn refresh_token(&self, p: &Provider) -> Result<Secret, BrokerError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p.name)
            .cloned();
        if let Some(rt) = pending {
            return Ok(rt);
        }
        if let Some(j) = self.journal().await {
            self.replay(j, p).await;
        }
        self.keychain
            .get(Item::RefreshToken(&p.keychain_key))
            .await?
            .ok_or_else(|| {
                BrokerError::rpc(
                    ErrorCode::ProviderLoginRequired,
                    format!(
                        "no login for {0} in the keychain; run `valetkey login {0}`",
                        p.name
                    ),
                )
            })
    }

    /// The client secret of a confidential client.
    pub async fn client_secret(
        keychain: &dyn Keychain,
        p: &Provider,
    ) -> Result<Option<Secret>, BrokerError> {
        if !p.confidential {
            return Ok(None);
        }
        match keychain.get(Item::ClientSecret(&p.keychain_key)).await? {
            Some(s) => Ok(Some(s)),
            None => Err(BrokerError::rpc(
                ErrorCode::ProviderRejected,
                format!(
                    "{0} is a confidential client but its secret is not in the keychain; run `valetkey provider set-secret {0}`",
                    p.name
                ),
            )),
        }
    }

    async fn refresh(
        &self,
        store: &Store,
        p: &Provider,
        req: &Request<'_>,
    ) -> Result<Arc<CachedToken>, BrokerError> {
        let rt = self.refresh_token(p).await?;
        let secret = Self::client_secret(&*self.keychain, p).await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let r = self.exchange(store, p, req, &rt, secret.as_ref()).await;
        let mut rec = crate::audit::by_user("refresh", None);
        rec.provider = Some(p.name.clone());
        rec.scopes = req.scopes.to_vec();
        match &r {
            Ok((t, rotated)) => {
                rec.granted = t.scopes.clone();
                rec.outcome = if *rotated { "rotated" } else { "refreshed" }.into();
            }
            Err(e) => {
                rec.outcome = format!("refused:{}", e.code().name());
                rec.detail = Some(e.to_string());
            }
        }
        // The refresh already happened upstream: a failure to record it is
        // reported by the token.get record that follows, which fails closed.
        let _ = crate::audit::write(store, &rec);
        r.map(|(t, _)| t)
    }

    /// Journals `new_rt`, which replaces `old`; best effort (the
    /// keychain write follows either way). Whether it is durable there.
    fn journal_write(&self, p: &Provider, old: &Secret, new_rt: &Secret) -> bool {
        let Some(j) = self.journal.get() else {
            return false;
        };
        // An entry still there means the keychain did not take the last
        // rotation either (it refused, `pending`): the keychain still holds
        // what that entry replaced, and the replay must match that.
        let replaces = match j.read(&p.keychain_key) {
            Ok(Some(prev)) => prev.replaces,
            _ => digest(old.expose()),
        };
        match j.write(&p.keychain_key, &replaces, new_rt) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(provider = %p.name, error = %e, "rotation journal not written");
                false
            }
        }
    }

    async fn exchange(
        &self,
        store: &Store,
        p: &Provider,
        req: &Request<'_>,
        rt: &Secret,
        secret: Option<&Secret>,
    ) -> Result<(Arc<CachedToken>, bool), BrokerError> {
        let got = match self
            .upstream
            .refresh(p, rt, secret, req.scopes, req.resource)
            .await
        {
            Ok(t) => t,
            Err(e @ crate::oauth::UpstreamError::InvalidGrant { .. }) => {
                tracing::warn!(provider = %p.name, "provider rejected the refresh token; login required");
                store.mark_login_required(&p.name)?;
                self.cache.clear_provider(&p.name);
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&p.name);
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        // The rotation window: from the provider's answer (it has rotated
        // the token) to the new one being held by the keychain. A kill in
        // it loses the login where the provider counts the old token as
        // reused; its length is logged for scripts/crash.sh.
        let answered = std::time::Instant::now();
        if let Some(new_rt) = &got.refresh_token {
            let journalled = self.journal_write(p, rt, new_rt);
            let durable_us = micros(answered);
            if let Err(e) = self
                .keychain
                .set(Item::RefreshToken(&p.keychain_key), new_rt)
                .await
            {
                tracing::error!(provider = %p.name, error = %e, "could not store the rotated refresh token; keeping it in memory");
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(p.name.clone(), new_rt.clone());
                return Err(e.into());
            }
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&p.name);
            if let Some(j) = self.journal.get() {
                j.clear(&p.keychain_key);
            }
            let keychain_us = micros(answered);
            let window_us = if journalled { durable_us } else { keychain_us };
            tracing::info!(provider = %p.name, window_us, keychain_us, "refresh token rotated and stored");
        }
        let scopes = got.scopes.clone().unwrap_or_else(|| req.scopes.to_vec());
        let extra = crate::scope::missing(&scopes, req.scopes);
        if !extra.is_empty() && !p.allow_full_scope {
            return Err(BrokerError::rpc(
                ErrorCode::ScopeNotAllowed,
                format!(
                    "{} returned a token with more scopes than asked ({}); it was not handed out. \
                     Set allow_full_scope = true for this provider to accept that",
                    p.name,
                    extra.join(" ")
                ),
            ));
        }
        let lifetime = got
            .expires_in
            .map(|d| d.as_secs())
            .unwrap_or(DEFAULT_LIFETIME_SECS);
        Ok((
            Arc::new(CachedToken {
                id: self.ids.fetch_add(1, Ordering::Relaxed) + 1,
                token: got.access_token,
                token_type: got.token_type,
                expires_at: req.now + lifetime,
                scopes,
                generation: req.generation,
                provider: p.name.clone(),
                resource: req.resource.map(str::to_owned),
            }),
            got.refresh_token.is_some(),
        ))
    }
}

/// Microseconds since `t`.
fn micros(t: std::time::Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

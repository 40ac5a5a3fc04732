//! Access tokens kept in memory per (agent, provider, scope set, resource)
//! until shortly before they expire. Values are [`Secret`]s: zeroed on
//! drop, never printed.
//!
//! Why per agent: revoking one agent must be able to drop (and revoke at
//! the provider) exactly the tokens that agent holds, without touching a
//! token another agent was handed. The price is one refresh per agent and
//! scope set instead of one per scope set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::secret::Secret;

/// A token is not handed out when it has less than this left to live.
pub const EXPIRY_MARGIN_SECS: u64 = 30;

/// What a cached token is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The agent's registry id.
    pub agent_id: i64,
    /// Provider name.
    pub provider: String,
    /// Sorted, space-joined scopes.
    pub scopes: String,
    /// RFC 8707 resource.
    pub resource: Option<String>,
}

impl CacheKey {
    /// Builds a key; `scopes` must already be sorted and deduplicated.
    pub fn new(agent_id: i64, provider: &str, scopes: &[String], resource: Option<&str>) -> Self {
        Self {
            agent_id,
            provider: provider.to_owned(),
            scopes: scopes.join(" "),
            resource: resource.map(str::to_owned),
        }
    }
}

/// A cached access token.
#[derive(Debug)]
pub struct CachedToken {
    /// Unique for the daemon's life (the audit trail counts repeat
    /// hand-outs per token and connection).
    pub id: u64,
    /// The token.
    pub token: Secret,
    /// `Bearer` and so on.
    pub token_type: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// What it carries.
    pub scopes: Vec<String>,
    /// The provider login generation it came from.
    pub generation: i64,
}

/// The cache. A std `Mutex`: held only for a map lookup or insert.
#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<CacheKey, Arc<CachedToken>>>,
    /// Ids of tokens that left the cache since [`TokenCache::take_left`].
    left: Mutex<Vec<u64>>,
}

impl TokenCache {
    /// A live token for `key` from login `generation`, if any.
    pub fn get(&self, key: &CacheKey, generation: i64, now: u64) -> Option<Arc<CachedToken>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(t) if t.generation == generation && t.expires_at > now + EXPIRY_MARGIN_SECS => {
                Some(t.clone())
            }
            Some(_) => {
                if let Some(t) = map.remove(key) {
                    self.gone(&[t.id]);
                }
                None
            }
            None => None,
        }
    }

    /// Stores a token.
    pub fn insert(&self, key: CacheKey, token: Arc<CachedToken>) {
        let old = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, token);
        if let Some(t) = old {
            self.gone(&[t.id]);
        }
    }

    fn gone(&self, ids: &[u64]) {
        if !ids.is_empty() {
            self.left
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(ids);
        }
    }

    /// Drops tokens with less than the margin left at `now`.
    pub fn sweep(&self, now: u64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids = vec![];
        map.retain(|_, t| {
            let live = t.expires_at > now + EXPIRY_MARGIN_SECS;
            if !live {
                ids.push(t.id);
            }
            live
        });
        drop(map);
        self.gone(&ids);
    }

    /// The ids of tokens that left the cache since the last call.
    pub fn take_left(&self) -> Vec<u64> {
        std::mem::take(&mut *self.left.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Removes and returns the tokens of one agent (or of every agent),
    /// optionally only for one provider.
    pub fn take(
        &self,
        agent_id: Option<i64>,
        provider: Option<&str>,
    ) -> Vec<(CacheKey, Arc<CachedToken>)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<CacheKey> = map
            .keys()
            .filter(|k| agent_id.is_none_or(|a| k.agent_id == a))
            .filter(|k| provider.is_none_or(|p| k.provider == p))
            .cloned()
            .collect();
        let taken: Vec<(CacheKey, Arc<CachedToken>)> = keys
            .into_iter()
            .filter_map(|k| map.remove(&k).map(|t| (k, t)))
            .collect();
        drop(map);
        self.gone(&taken.iter().map(|(_, t)| t.id).collect::<Vec<_>>());
        taken
    }

    /// Drops every token of a provider.
    pub fn clear_provider(&self, provider: &str) {
        self.take(None, Some(provider));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(exp: u64, generation: i64) -> Arc<CachedToken> {
        Arc::new(CachedToken {
            id: exp ^ generation as u64,
            token: Secret::new("t".into()),
            token_type: "Bearer".into(),
            expires_at: exp,
            scopes: vec!["a".into()],
            generation,
        })
    }

    #[test]
    fn hands_out_only_fresh_tokens_of_the_current_generation() {
        let c = TokenCache::default();
        let k = CacheKey::new(1, "p", &["a".into()], None);
        c.insert(k.clone(), tok(1000, 1));
        assert!(c.get(&k, 1, 900).is_some());
        assert!(
            c.get(&k, 1, 1000 - EXPIRY_MARGIN_SECS).is_none(),
            "inside the margin"
        );
        c.insert(k.clone(), tok(1000, 1));
        assert!(c.get(&k, 2, 900).is_none(), "old generation");
        assert!(c.get(&k, 1, 900).is_none(), "and it was evicted");
    }

    #[test]
    fn keys_separate_scopes_and_resources() {
        let c = TokenCache::default();
        c.insert(CacheKey::new(1, "p", &["a".into()], None), tok(1000, 1));
        assert!(c
            .get(
                &CacheKey::new(1, "p", &["a".into(), "b".into()], None),
                1,
                0
            )
            .is_none());
        assert!(c
            .get(&CacheKey::new(1, "p", &["a".into()], Some("r")), 1, 0)
            .is_none());
        c.insert(CacheKey::new(2, "p", &["a".into()], None), tok(1000, 1));
        assert!(
            c.get(&CacheKey::new(3, "p", &["a".into()], None), 1, 0)
                .is_none(),
            "agents never share a token"
        );
        assert_eq!(c.take(Some(2), None).len(), 1);
        assert!(c
            .get(&CacheKey::new(1, "p", &["a".into()], None), 1, 0)
            .is_some());
        c.clear_provider("p");
        assert!(c
            .get(&CacheKey::new(1, "p", &["a".into()], None), 1, 0)
            .is_none());
    }

    #[test]
    fn every_way_out_of_the_cache_is_reported_once() {
        let c = TokenCache::default();
        let k = |a| CacheKey::new(a, "p", &["a".into()], None);
        let t = |id, exp| {
            Arc::new(CachedToken {
                id,
                token: Secret::new("t".into()),
                token_type: "Bearer".into(),
                expires_at: exp,
                scopes: vec![],
                generation: 1,
            })
        };
        c.insert(k(1), t(1, 1000));
        c.insert(k(1), t(2, 1000));
        c.insert(k(2), t(3, 100));
        c.insert(k(3), t(4, 1000));
        c.insert(k(4), t(5, 1000));
        assert_eq!(c.take_left(), vec![1], "replaced");
        c.sweep(500);
        assert_eq!(c.take_left(), vec![3], "expired");
        assert!(c.get(&k(3), 2, 0).is_none());
        assert_eq!(c.take_left(), vec![4], "an older login's");
        c.take(Some(1), None);
        c.clear_provider("p");
        assert_eq!(c.take_left(), vec![2, 5], "revoked, then the provider's");
        assert!(c.take_left().is_empty());
    }
}

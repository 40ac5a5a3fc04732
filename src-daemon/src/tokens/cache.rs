//! Access tokens kept in memory per (provider, scope set, resource) until
//! shortly before they expire. Values are [`Secret`]s: zeroed on drop,
//! never printed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::secret::Secret;

/// A token is not handed out when it has less than this left to live.
pub const EXPIRY_MARGIN_SECS: u64 = 30;

/// What a cached token is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Provider name.
    pub provider: String,
    /// Sorted, space-joined scopes.
    pub scopes: String,
    /// RFC 8707 resource.
    pub resource: Option<String>,
}

impl CacheKey {
    /// Builds a key; `scopes` must already be sorted and deduplicated.
    pub fn new(provider: &str, scopes: &[String], resource: Option<&str>) -> Self {
        Self {
            provider: provider.to_owned(),
            scopes: scopes.join(" "),
            resource: resource.map(str::to_owned),
        }
    }
}

/// A cached access token.
#[derive(Debug)]
pub struct CachedToken {
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
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores a token.
    pub fn insert(&self, key: CacheKey, token: Arc<CachedToken>) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, token);
    }

    /// Drops every token of a provider.
    pub fn clear_provider(&self, provider: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| k.provider != provider);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(exp: u64, generation: i64) -> Arc<CachedToken> {
        Arc::new(CachedToken {
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
        let k = CacheKey::new("p", &["a".into()], None);
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
        c.insert(CacheKey::new("p", &["a".into()], None), tok(1000, 1));
        assert!(c
            .get(&CacheKey::new("p", &["a".into(), "b".into()], None), 1, 0)
            .is_none());
        assert!(c
            .get(&CacheKey::new("p", &["a".into()], Some("r")), 1, 0)
            .is_none());
        c.clear_provider("p");
        assert!(c
            .get(&CacheKey::new("p", &["a".into()], None), 1, 0)
            .is_none());
    }
}

//! Access tokens kept in memory per (agent, provider, scope set, resource)
//! until shortly before they expire. Values are [`Secret`]s: zeroed on
//! drop, never printed.
//!
//! Why per agent: revoking one agent must be able to drop (and revoke at
//! the provider) exactly the tokens that agent holds, without touching a
//! token another agent was handed. The price is one refresh per agent and
//! scope set instead of one per scope set.

use rustc_hash::FxHashMap;
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
    /// Sorted, deduplicated scopes.
    pub scopes: Vec<String>,
    /// RFC 8707 resource.
    pub resource: Option<String>,
}

/// A [`CacheKey`] borrowed from a request: a lookup allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    /// The agent's registry id.
    pub agent_id: i64,
    /// Provider name.
    pub provider: &'a str,
    /// Sorted, deduplicated scopes.
    pub scopes: &'a [String],
    /// RFC 8707 resource.
    pub resource: Option<&'a str>,
}

impl CacheKey {
    /// Builds a key; `scopes` must already be sorted and deduplicated.
    pub fn new(agent_id: i64, provider: &str, scopes: &[String], resource: Option<&str>) -> Self {
        Self {
            agent_id,
            provider: provider.to_owned(),
            scopes: scopes.to_vec(),
            resource: resource.map(str::to_owned),
        }
    }

    /// The key, borrowed.
    pub fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            agent_id: self.agent_id,
            provider: &self.provider,
            scopes: &self.scopes,
            resource: self.resource.as_deref(),
        }
    }

    fn is(&self, k: &KeyRef<'_>) -> bool {
        self.provider == k.provider
            && self.scopes.as_slice() == k.scopes
            && self.resource.as_deref() == k.resource
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
    /// The provider that issued it.
    pub provider: String,
    /// The RFC 8707 resource it is for.
    pub resource: Option<String>,
}

/// Tokens by agent: an agent holds a handful, so each lookup is one hash
/// of an integer and a short scan.
type Map = FxHashMap<i64, Vec<(CacheKey, Arc<CachedToken>)>>;

/// The cache. A std `Mutex`: held only for a map lookup or insert.
#[derive(Default)]
pub struct TokenCache {
    map: Mutex<Map>,
    /// Ids of tokens that left the cache since [`TokenCache::take_left`].
    left: Mutex<Vec<u64>>,
}

impl TokenCache {
    /// A live token for `key` from login `generation`, if any.
    pub fn get(&self, key: KeyRef<'_>, generation: i64, now: u64) -> Option<Arc<CachedToken>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let v = map.get_mut(&key.agent_id)?;
        let i = v.iter().position(|(k, _)| k.is(&key))?;
        let t = &v[i].1;
        if t.generation == generation && t.expires_at > now + EXPIRY_MARGIN_SECS {
            return Some(t.clone());
        }
        let (_, gone) = v.swap_remove(i);
        drop(map);
        self.gone(&[gone.id]);
        None
    }

    /// Stores a token.
    pub fn insert(&self, key: CacheKey, token: Arc<CachedToken>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let v = map.entry(key.agent_id).or_default();
        let old = match v.iter().position(|(k, _)| k.is(&key.as_ref())) {
            Some(i) => Some(std::mem::replace(&mut v[i].1, token).id),
            None => {
                v.push((key, token));
                None
            }
        };
        drop(map);
        if let Some(id) = old {
            self.gone(&[id]);
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
        for v in map.values_mut() {
            v.retain(|(_, t)| {
                let live = t.expires_at > now + EXPIRY_MARGIN_SECS;
                if !live {
                    ids.push(t.id);
                }
                live
            });
        }
        map.retain(|_, v| !v.is_empty());
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
        let mut taken = Vec::new();
        for (agent, v) in map.iter_mut() {
            if agent_id.is_some_and(|a| a != *agent) {
                continue;
            }
            let (out, keep): (Vec<_>, Vec<_>) = std::mem::take(v)
                .into_iter()
                .partition(|(k, _)| provider.is_none_or(|p| k.provider == p));
            *v = keep;
            taken.extend(out);
        }
        map.retain(|_, v| !v.is_empty());
        drop(map);
        self.gone(&taken.iter().map(|(_, t)| t.id).collect::<Vec<_>>());
        taken
    }

    /// Drops agent `agent_id`'s token `id`, if it is still cached (a
    /// server said it is no longer valid); `false` when it had already
    /// been replaced, so concurrent callers that saw the same dead token
    /// cause one refresh between them.
    pub fn drop_id(&self, agent_id: i64, id: u64) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = map.get_mut(&agent_id) else {
            return false;
        };
        let Some(i) = v.iter().position(|(_, t)| t.id == id) else {
            return false;
        };
        v.swap_remove(i);
        drop(map);
        self.gone(&[id]);
        true
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
            provider: "p".into(),
            resource: None,
        })
    }

    #[test]
    fn hands_out_only_fresh_tokens_of_the_current_generation() {
        let c = TokenCache::default();
        let k = CacheKey::new(1, "p", &["a".into()], None);
        c.insert(k.clone(), tok(1000, 1));
        assert!(c.get(k.as_ref(), 1, 900).is_some());
        assert!(
            c.get(k.as_ref(), 1, 1000 - EXPIRY_MARGIN_SECS).is_none(),
            "inside the margin"
        );
        c.insert(k.clone(), tok(1000, 1));
        assert!(c.get(k.as_ref(), 2, 900).is_none(), "old generation");
        assert!(c.get(k.as_ref(), 1, 900).is_none(), "and it was evicted");
    }

    #[test]
    fn keys_separate_scopes_and_resources() {
        let c = TokenCache::default();
        c.insert(CacheKey::new(1, "p", &["a".into()], None), tok(1000, 1));
        assert!(c
            .get(
                CacheKey::new(1, "p", &["a".into(), "b".into()], None).as_ref(),
                1,
                0
            )
            .is_none());
        assert!(c
            .get(
                CacheKey::new(1, "p", &["a".into()], Some("r")).as_ref(),
                1,
                0
            )
            .is_none());
        c.insert(CacheKey::new(2, "p", &["a".into()], None), tok(1000, 1));
        assert!(
            c.get(CacheKey::new(3, "p", &["a".into()], None).as_ref(), 1, 0)
                .is_none(),
            "agents never share a token"
        );
        assert_eq!(c.take(Some(2), None).len(), 1);
        assert!(c
            .get(CacheKey::new(1, "p", &["a".into()], None).as_ref(), 1, 0)
            .is_some());
        c.clear_provider("p");
        assert!(c
            .get(CacheKey::new(1, "p", &["a".into()], None).as_ref(), 1, 0)
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
                provider: "p".into(),
                resource: None,
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
        assert!(c.get(k(3).as_ref(), 2, 0).is_none());
        assert_eq!(c.take_left(), vec![4], "an older login's");
        c.take(Some(1), None);
        c.clear_provider("p");
        assert_eq!(c.take_left(), vec![2, 5], "revoked, then the provider's");
        assert!(c.take_left().is_empty());
    }
}

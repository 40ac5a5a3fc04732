//! What a request reads, kept in memory: agents, grants, remembered
//! denials and providers' login state. The daemon is the database's only
//! writer, so it can: the mirror is loaded when the store opens, and every
//! method that writes one of these rows refreshes it from the database
//! while it still holds the connection, so the mirror changes in commit
//! order and a cached hand-out reads nothing from SQLite.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use rustc_hash::FxHashMap;

use super::agents::{agent_from_row, AgentRow, AGENT_COLS};
use super::grants::{grant_from_row, GrantRow, GRANT_COLS};
use super::providers::{provider_from_row, ProviderState, PROVIDER_COLS};

/// The rows the hot path reads.
#[derive(Debug, Default)]
pub(super) struct Mirror {
    /// Agents by id.
    pub agents: FxHashMap<i64, Arc<AgentRow>>,
    /// Agent ids by name.
    pub names: HashMap<String, i64>,
    /// Grants by agent id (an agent has a handful).
    pub grants: FxHashMap<i64, Vec<Arc<GrantRow>>>,
    /// Remembered denials: (agent id, provider, binary).
    pub denials: HashSet<(i64, String, String)>,
    /// Login state by provider name.
    pub providers: HashMap<String, Arc<ProviderState>>,
}

impl Mirror {
    /// Everything, from the database.
    pub fn load(c: &Connection) -> rusqlite::Result<Mirror> {
        let mut m = Mirror::default();
        let mut stmt = c.prepare(&format!("SELECT {AGENT_COLS} FROM agents"))?;
        for a in stmt.query_map([], agent_from_row)? {
            m.put_agent(a?);
        }
        let mut stmt = c.prepare(&format!(
            "SELECT {GRANT_COLS} FROM grants g JOIN agents a ON a.id = g.agent_id"
        ))?;
        for g in stmt.query_map([], grant_from_row)? {
            m.put_grant(g?);
        }
        let mut stmt = c.prepare("SELECT agent_id, provider, binary_sha256 FROM denials")?;
        for d in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            m.denials.insert(d?);
        }
        let mut stmt = c.prepare(&format!("SELECT name, {PROVIDER_COLS} FROM providers"))?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, provider_from_row(r, 1)?))
        })?;
        for p in rows {
            let (name, st) = p?;
            m.providers.insert(name, Arc::new(st));
        }
        Ok(m)
    }

    fn put_agent(&mut self, a: AgentRow) {
        self.names.insert(a.name.clone(), a.id);
        self.agents.insert(a.id, Arc::new(a));
    }

    fn put_grant(&mut self, g: GrantRow) {
        let v = self.grants.entry(g.agent_id).or_default();
        v.retain(|x| x.id != g.id);
        v.push(Arc::new(g));
    }

    /// Re-reads agent `id` (after a write to it).
    pub fn refresh_agent(&mut self, c: &Connection, id: i64) -> rusqlite::Result<()> {
        let row = c
            .prepare_cached(&format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?1"))?
            .query_row([id], agent_from_row)
            .optional()?;
        match row {
            Some(a) => self.put_agent(a),
            None => {
                if let Some(a) = self.agents.remove(&id) {
                    self.names.remove(&a.name);
                }
                self.grants.remove(&id);
            }
        }
        Ok(())
    }

    /// Re-reads grant `id` (after a write to it).
    pub fn refresh_grant(&mut self, c: &Connection, id: i64) -> rusqlite::Result<()> {
        let row = c
            .prepare_cached(&format!(
                "SELECT {GRANT_COLS} FROM grants g JOIN agents a ON a.id = g.agent_id WHERE g.id = ?1"
            ))?
            .query_row([id], grant_from_row)
            .optional()?;
        match row {
            Some(g) => self.put_grant(g),
            None => self.forget_grants(|g| g.id == id),
        }
        Ok(())
    }

    /// Drops the grants `gone` selects (after they were deleted).
    pub fn forget_grants(&mut self, gone: impl Fn(&GrantRow) -> bool) {
        for v in self.grants.values_mut() {
            v.retain(|g| !gone(g));
        }
        self.grants.retain(|_, v| !v.is_empty());
    }

    /// Re-reads provider `name`'s login state.
    pub fn refresh_provider(&mut self, c: &Connection, name: &str) -> rusqlite::Result<()> {
        let row = c
            .prepare_cached(&format!(
                "SELECT {PROVIDER_COLS} FROM providers WHERE name = ?1"
            ))?
            .query_row(params![name], |r| provider_from_row(r, 0))
            .optional()?;
        match row {
            Some(st) => self.providers.insert(name.to_owned(), Arc::new(st)),
            None => self.providers.remove(name),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::clock::fixed;
    use crate::store::{GrantFilter, NewGrant, Store, SUSPENDED};

    #[test]
    fn the_mirror_answers_as_a_fresh_load_of_the_database_after_every_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let clock = fixed::clock();
        let s = Store::open(&path, clock.clone()).expect("open");
        let id = s
            .upsert_agent_seen("bot", "p", "1", "/bin/bot", "aa")
            .expect("hello");
        let scopes = vec!["repo:read".to_string()];
        let grant = |expires_at| NewGrant {
            agent_id: id,
            provider: "gh",
            scopes: &scopes,
            binary_sha256: "aa",
            expires_at,
            proxy_only: false,
        };
        let gid = s
            .upsert_grant(&grant(Some(fixed::MONDAY_MORNING + 60)))
            .expect("grant");
        s.add_denial(id, "other", "aa").expect("deny");
        s.record_login("gh", &scopes).expect("login");
        s.set_agent_status(id, SUSPENDED).expect("suspend");
        s.touch_grant(gid).expect("touch");
        let same = |s: &Store, fresh: &Store| {
            assert_eq!(
                s.agent_by_id(id).expect("a"),
                fresh.agent_by_id(id).expect("a")
            );
            assert_eq!(
                s.agent_by_name("bot").expect("a"),
                fresh.agent_by_name("bot").expect("a")
            );
            assert_eq!(
                s.live_grant(id, "gh", "aa").expect("g"),
                fresh.live_grant(id, "gh", "aa").expect("g")
            );
            assert_eq!(
                s.denied(id, "other", "aa").expect("d"),
                fresh.denied(id, "other", "aa").expect("d")
            );
            assert_eq!(
                s.provider_state("gh").expect("p"),
                fresh.provider_state("gh").expect("p")
            );
        };
        let fresh = Store::open(&path, clock.clone()).expect("reopen");
        same(&s, &fresh);
        let g = s.live_grant(id, "gh", "aa").expect("q").expect("live");
        assert_eq!(g.last_used_at, Some(fixed::MONDAY_MORNING));
        assert_eq!(s.agent_status(id).expect("s").as_deref(), Some(SUSPENDED));
        assert!(s.provider_state("gh").expect("p").logged_in_at.is_some());

        // Expiry is read against the store's clock.
        clock.advance(61);
        assert!(
            s.live_grant(id, "gh", "aa").expect("q").is_none(),
            "expired"
        );
        clock.set(fixed::MONDAY_MORNING);

        // Deletions and un-denials leave the mirror too.
        s.delete_grants(GrantFilter::Id(gid)).expect("delete");
        s.clear_denials(id).expect("clear");
        s.record_logout("gh").expect("logout");
        let fresh = Store::open(&path, clock.clone()).expect("reopen");
        same(&s, &fresh);
        assert!(s.live_grant(id, "gh", "aa").expect("q").is_none());
        assert!(!s.denied(id, "other", "aa").expect("d"));
        assert!(s.provider_state("gh").expect("p").logged_in_at.is_none());
    }
}

//! Standing grants: agent × binary × provider → scopes, with an optional end.

use std::sync::Arc;

use rusqlite::params;

use super::{Store, StoreError};

/// A grant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// Stable id.
    pub id: i64,
    /// The agent's id.
    pub agent_id: i64,
    /// The agent's name.
    pub agent_name: String,
    /// Provider name.
    pub provider: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The binary the grant is bound to.
    pub binary_sha256: String,
    /// Created (unix seconds).
    pub created_at: i64,
    /// End (unix seconds), or `None` for "until revoked".
    pub expires_at: Option<i64>,
    /// Last token handed out under it.
    pub last_used_at: Option<i64>,
    /// Allowed for an egress proxy: serves the proxy only, never a raw
    /// token to the agent.
    pub proxy_only: bool,
}

/// Which grants [`Store::delete_grants`] deletes.
#[derive(Debug, Clone, Copy)]
pub enum GrantFilter {
    /// One grant.
    Id(i64),
    /// Every grant of one agent.
    Agent(i64),
    /// Every grant.
    All,
}

/// A grant to create.
#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    /// The agent's id.
    pub agent_id: i64,
    /// Provider name.
    pub provider: &'a str,
    /// Scopes.
    pub scopes: &'a [String],
    /// Bound binary.
    pub binary_sha256: &'a str,
    /// End, if any.
    pub expires_at: Option<i64>,
    /// Serves the egress proxy only.
    pub proxy_only: bool,
}

pub(super) const GRANT_COLS: &str = "g.id, g.agent_id, a.name, g.provider, g.scopes, g.binary_sha256, g.created_at, g.expires_at, g.last_used_at, g.proxy_only";

pub(super) fn grant_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRow> {
    let scopes: String = r.get(4)?;
    Ok(GrantRow {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        agent_name: r.get(2)?,
        provider: r.get(3)?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        binary_sha256: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        last_used_at: r.get(8)?,
        proxy_only: r.get(9)?,
    })
}

impl Store {
    /// Creates or replaces the grant for (agent, provider, binary): the
    /// newest decision is the grant, `proxy_only` included.
    pub fn upsert_grant(&self, g: &NewGrant<'_>) -> Result<i64, StoreError> {
        let scopes = crate::scope::ScopeSet::new(g.scopes.iter().cloned());
        let conn = self.conn();
        let id = conn.query_row(
            "INSERT INTO grants (agent_id, provider, scopes, binary_sha256, created_at, expires_at, proxy_only)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(agent_id, provider, binary_sha256)
             DO UPDATE SET scopes = ?3, created_at = ?5, expires_at = ?6, proxy_only = ?7
             RETURNING id",
            params![
                g.agent_id,
                g.provider,
                scopes.join(" "),
                g.binary_sha256,
                self.now(),
                g.expires_at,
                g.proxy_only
            ],
            |r| r.get(0),
        )?;
        self.mirror_mut().refresh_grant(&conn, id)?;
        Ok(id)
    }

    /// The live grant for this agent, binary and provider, if any.
    pub fn live_grant(
        &self,
        agent_id: i64,
        provider: &str,
        binary_sha256: &str,
    ) -> Result<Option<Arc<GrantRow>>, StoreError> {
        let now = self.now();
        Ok(self.mirror().grants.get(&agent_id).and_then(|v| {
            v.iter()
                .find(|g| {
                    g.provider == provider
                        && g.binary_sha256 == binary_sha256
                        && g.expires_at.is_none_or(|e| e > now)
                })
                .cloned()
        }))
    }

    /// A live grant by id.
    pub fn live_grant_by_id(&self, id: i64) -> Result<Option<Arc<GrantRow>>, StoreError> {
        let now = self.now();
        Ok(self
            .mirror()
            .grants
            .values()
            .flatten()
            .find(|g| g.id == id && g.expires_at.is_none_or(|e| e > now))
            .cloned())
    }

    /// Deletes grants matching `filter` (one grant, one agent's, or all)
    /// in one statement and returns what was deleted.
    pub fn delete_grants(&self, filter: GrantFilter) -> Result<Vec<GrantRow>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (clause, arg) = match filter {
            GrantFilter::Id(id) => ("g.id = ?1", Some(id)),
            GrantFilter::Agent(id) => ("g.agent_id = ?1", Some(id)),
            GrantFilter::All => ("?1 IS NULL", None),
        };
        let rows: Vec<GrantRow> = tx
            .prepare(&format!(
                "SELECT {GRANT_COLS} FROM grants g JOIN agents a ON a.id = g.agent_id WHERE {clause}"
            ))?
            .query_map([arg], grant_from_row)?
            .collect::<Result<_, _>>()?;
        for r in &rows {
            tx.execute("DELETE FROM grants WHERE id = ?1", [r.id])?;
            // The revocation list by grant id: every delegation derived from it.
            tx.execute(
                "UPDATE delegations SET revoked_at = ?2, revoked_reason = 'grant revoked'
                 WHERE root_grant_id = ?1 AND revoked_at IS NULL",
                params![r.id, self.now()],
            )?;
        }
        tx.commit()?;
        self.mirror_mut()
            .forget_grants(|g| rows.iter().any(|r| r.id == g.id));
        Ok(rows)
    }

    /// Grants, optionally only one agent's, live ones only unless `all`.
    pub fn list_grants(&self, agent: Option<&str>, all: bool) -> Result<Vec<GrantRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {GRANT_COLS} FROM grants g JOIN agents a ON a.id = g.agent_id
             WHERE (?1 IS NULL OR a.name = ?1) AND (?2 OR g.expires_at IS NULL OR g.expires_at > ?3)
             ORDER BY a.name, g.provider"
        ))?;
        let rows = stmt
            .query_map(params![agent, all, self.now()], grant_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Notes that a token was handed out under a grant.
    pub fn touch_grant(&self, grant_id: i64) -> Result<(), StoreError> {
        let now = self.now();
        let conn = self.conn();
        conn.prepare_cached("UPDATE grants SET last_used_at = ?2 WHERE id = ?1")?
            .execute(params![grant_id, now])?;
        let mut m = self.mirror_mut();
        if let Some(g) = m.grants.values_mut().flatten().find(|g| g.id == grant_id) {
            Arc::make_mut(g).last_used_at = Some(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_bind_to_binary_and_expire() {
        let s = Store::open_in_memory(crate::clock::fixed::clock()).expect("db");
        let id = s
            .upsert_agent_seen("bot", "p", "1", "/bin/bot", "aa")
            .expect("agent");
        let scopes = vec!["repo:read".to_string()];
        s.upsert_grant(&NewGrant {
            agent_id: id,
            provider: "gh",
            scopes: &scopes,
            binary_sha256: "aa",
            expires_at: None,
            proxy_only: false,
        })
        .expect("grant");
        assert!(s.live_grant(id, "gh", "aa").expect("q").is_some());
        assert!(
            s.live_grant(id, "gh", "bb").expect("q").is_none(),
            "other binary"
        );
        let any_gh = |s: &Store| {
            s.list_grants(Some("bot"), true)
                .expect("q")
                .iter()
                .any(|g| g.agent_id == id && g.provider == "gh")
        };
        assert!(any_gh(&s));

        s.upsert_grant(&NewGrant {
            agent_id: id,
            provider: "gh",
            scopes: &scopes,
            binary_sha256: "aa",
            expires_at: Some(s.now() - 1),
            proxy_only: false,
        })
        .expect("replace");
        assert!(
            s.live_grant(id, "gh", "aa").expect("q").is_none(),
            "expired"
        );
        assert_eq!(s.list_grants(Some("bot"), false).expect("q").len(), 0);
        assert_eq!(s.list_grants(Some("bot"), true).expect("q").len(), 1);

        assert_eq!(
            s.delete_grants(GrantFilter::Agent(id))
                .expect("revoke")
                .len(),
            1
        );
        assert!(!any_gh(&s));
    }

    #[test]
    fn provider_generation_moves_on_login_and_logout() {
        let s = Store::open_in_memory(crate::clock::fixed::clock()).expect("db");
        assert_eq!(
            s.provider_state("p").expect("q"),
            crate::store::ProviderState::default().into()
        );
        s.record_login("p", &["a".into(), "b".into()])
            .expect("login");
        let st = s.provider_state("p").expect("q");
        assert_eq!(st.login_scopes, vec!["a", "b"]);
        let g = st.generation;
        s.mark_login_required("p").expect("mark");
        let st = s.provider_state("p").expect("q");
        assert!(st.login_required && st.generation > g);
        s.record_login("p", &["a".into()]).expect("again");
        assert!(!s.provider_state("p").expect("q").login_required);
    }
}

//! Delegation tokens the broker signed: one row per `jti`, linked to its
//! parent's `jti` and to the root agent's grant. The rows are the
//! revocation list: a token is only good while its row, and every
//! ancestor's row, has no `revoked_at`. Rows are never deleted while a
//! token could still be presented, so revocation cannot be undone by
//! rowid reuse.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// A delegation to record.
#[derive(Debug, Clone)]
pub struct NewDelegation<'a> {
    /// Token id.
    pub jti: &'a str,
    /// The parent token's id (`None` when the issuer acts on its own grant).
    pub parent_jti: Option<&'a str>,
    /// The root agent's grant.
    pub root_grant_id: i64,
    /// The agent that asked for it.
    pub issuer_agent_id: i64,
    /// The sub-agent's name.
    pub sub_agent: &'a str,
    /// Provider.
    pub provider: &'a str,
    /// Scopes, sorted.
    pub scopes: &'a [String],
    /// Its depth.
    pub depth: u32,
    /// Its depth limit.
    pub max_depth: u32,
    /// Signing key.
    pub kid: &'a str,
    /// End (unix seconds).
    pub expires_at: i64,
}

/// A delegation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationRow {
    /// Token id.
    pub jti: String,
    /// Parent token id.
    pub parent_jti: Option<String>,
    /// Root grant.
    pub root_grant_id: i64,
    /// The agent that asked for it.
    pub issuer_agent_id: i64,
    /// The sub-agent's name.
    pub sub_agent: String,
    /// Provider.
    pub provider: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Depth.
    pub depth: u32,
    /// Depth limit.
    pub max_depth: u32,
    /// Signing key.
    pub kid: String,
    /// Created (unix seconds).
    pub created_at: i64,
    /// End (unix seconds).
    pub expires_at: i64,
    /// The binary that first presented it.
    pub bound_sha256: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Why.
    pub revoked_reason: Option<String>,
}

const COLS: &str = "jti, parent_jti, root_grant_id, issuer_agent_id, sub_agent, provider, scopes, depth, max_depth, kid, created_at, expires_at, bound_sha256, revoked_at, revoked_reason";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DelegationRow> {
    let scopes: String = r.get(6)?;
    Ok(DelegationRow {
        jti: r.get(0)?,
        parent_jti: r.get(1)?,
        root_grant_id: r.get(2)?,
        issuer_agent_id: r.get(3)?,
        sub_agent: r.get(4)?,
        provider: r.get(5)?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        depth: r.get(7)?,
        max_depth: r.get(8)?,
        kid: r.get(9)?,
        created_at: r.get(10)?,
        expires_at: r.get(11)?,
        bound_sha256: r.get(12)?,
        revoked_at: r.get(13)?,
        revoked_reason: r.get(14)?,
    })
}

/// Every token at or below the ones `seed` selects (a recursive CTE).
const DESCENDANTS: &str = "WITH RECURSIVE down(jti) AS (
        SELECT jti FROM delegations WHERE {seed}
        UNION SELECT d.jti FROM delegations d JOIN down ON d.parent_jti = down.jti)";

impl Store {
    /// Records a new delegation (before its token leaves the daemon).
    pub fn insert_delegation(&self, d: &NewDelegation<'_>) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO delegations (jti, parent_jti, root_grant_id, issuer_agent_id, sub_agent, provider, scopes, depth, max_depth, kid, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                d.jti,
                d.parent_jti,
                d.root_grant_id,
                d.issuer_agent_id,
                d.sub_agent,
                d.provider,
                d.scopes.join(" "),
                d.depth,
                d.max_depth,
                d.kid,
                self.now(),
                d.expires_at
            ],
        )?;
        Ok(())
    }

    /// One delegation by id.
    pub fn delegation(&self, jti: &str) -> Result<Option<DelegationRow>, StoreError> {
        let conn = self.conn();
        let r = conn
            .prepare_cached(&format!("SELECT {COLS} FROM delegations WHERE jti = ?1"))?
            .query_row([jti], row)
            .optional()?;
        Ok(r)
    }

    /// The token and its ancestors, the token first.
    pub fn delegation_chain(&self, jti: &str) -> Result<Vec<DelegationRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "WITH RECURSIVE up(jti, parent_jti, n) AS (
                SELECT jti, parent_jti, 0 FROM delegations WHERE jti = ?1
                UNION ALL SELECT d.jti, d.parent_jti, up.n + 1 FROM delegations d JOIN up ON d.jti = up.parent_jti
                WHERE up.n < 16)
             SELECT {COLS} FROM delegations WHERE jti IN (SELECT jti FROM up) ORDER BY depth DESC"
        ))?;
        let rows = stmt.query_map([jti], row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Binds a token to the binary that first presents it; false when it is
    /// already bound to another binary.
    pub fn bind_delegation(&self, jti: &str, sha256: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE delegations SET bound_sha256 = ?2 WHERE jti = ?1 AND (bound_sha256 IS NULL OR bound_sha256 = ?2)",
            params![jti, sha256],
        )?;
        Ok(n > 0)
    }

    fn revoke_where(
        &self,
        seed: &str,
        p: &[&dyn rusqlite::ToSql],
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let cte = DESCENDANTS.replace("{seed}", seed);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let names: Vec<String> = {
            let mut stmt = tx.prepare(&format!(
                "{cte} SELECT DISTINCT sub_agent FROM delegations WHERE jti IN down AND revoked_at IS NULL"
            ))?;
            let names = stmt.query_map(p, |r| r.get(0))?.collect::<Result<_, _>>()?;
            names
        };
        let mut all: Vec<&dyn rusqlite::ToSql> = p.to_vec();
        let t = self.now();
        all.push(&t);
        all.push(&reason);
        let n = p.len();
        tx.execute(
            &format!(
                "{cte} UPDATE delegations SET revoked_at = ?{}, revoked_reason = ?{} WHERE jti IN down AND revoked_at IS NULL",
                n + 1,
                n + 2
            ),
            all.as_slice(),
        )?;
        tx.commit()?;
        Ok(names)
    }

    /// Revokes a token and everything below it; returns the sub-agents
    /// whose tokens died.
    pub fn revoke_delegation_tree(
        &self,
        jti: &str,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_where("jti = ?1", &[&jti], reason)
    }

    /// Revokes every token derived from these grants.
    pub fn revoke_delegations_of_grants(
        &self,
        grant_ids: &[i64],
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for g in grant_ids {
            names.extend(self.revoke_where("root_grant_id = ?1", &[g], reason)?);
        }
        Ok(names)
    }

    /// Revokes every token an agent issued or holds, and everything below.
    pub fn revoke_delegations_of_agent(
        &self,
        agent_id: i64,
        name: &str,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_where(
            "issuer_agent_id = ?1 OR sub_agent = ?2",
            &[&agent_id, &name],
            reason,
        )
    }

    /// Revokes every token still standing.
    pub fn revoke_all_delegations(&self, reason: &str) -> Result<Vec<String>, StoreError> {
        self.revoke_where("revoked_at IS NULL", &[], reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(
        jti: &'a str,
        parent: Option<&'a str>,
        issuer: i64,
        sub: &'a str,
        scopes: &'a [String],
    ) -> NewDelegation<'a> {
        NewDelegation {
            jti,
            parent_jti: parent,
            root_grant_id: 7,
            issuer_agent_id: issuer,
            sub_agent: sub,
            provider: "p",
            scopes,
            depth: parent.map_or(1, |_| 2),
            max_depth: 3,
            kid: "k",
            expires_at: crate::clock::fixed::MONDAY_MORNING + 60,
        }
    }

    #[test]
    fn revoking_a_parent_revokes_the_subtree_only() {
        let s = Store::open_in_memory(crate::clock::fixed::clock()).expect("db");
        let sc = vec!["a".to_string()];
        s.insert_delegation(&new("j1", None, 1, "b", &sc))
            .expect("1");
        s.insert_delegation(&new("j2", Some("j1"), 2, "c", &sc))
            .expect("2");
        s.insert_delegation(&new("j3", None, 1, "d", &sc))
            .expect("3");
        let chain = s.delegation_chain("j2").expect("chain");
        assert_eq!(
            chain.iter().map(|r| r.jti.as_str()).collect::<Vec<_>>(),
            ["j2", "j1"]
        );
        let names = s.revoke_delegation_tree("j1", "test").expect("revoke");
        assert_eq!(names.len(), 2);
        assert!(s
            .delegation("j2")
            .expect("q")
            .and_then(|r| r.revoked_at)
            .is_some());
        assert!(s
            .delegation("j3")
            .expect("q")
            .and_then(|r| r.revoked_at)
            .is_none());
        // By grant: everything in the tree.
        s.revoke_delegations_of_grants(&[7], "grant")
            .expect("grant");
        assert!(s
            .delegation("j3")
            .expect("q")
            .and_then(|r| r.revoked_at)
            .is_some());
    }

    #[test]
    fn a_token_binds_to_its_first_binary() {
        let s = Store::open_in_memory(crate::clock::fixed::clock()).expect("db");
        let sc = vec!["a".to_string()];
        s.insert_delegation(&new("j1", None, 1, "b", &sc))
            .expect("1");
        assert!(s.bind_delegation("j1", "aa").expect("bind"));
        assert!(s.bind_delegation("j1", "aa").expect("again"));
        assert!(!s.bind_delegation("j1", "bb").expect("other"));
    }
}

//! The agent registry: a row per declared name, bound to every attested
//! binary it has been seen with.

use rusqlite::{params, OptionalExtension};

use super::{now, Store, StoreError};

/// An agent in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Stable id.
    pub id: i64,
    /// Declared name.
    pub name: String,
    /// Declared purpose (latest).
    pub purpose: String,
    /// Declared version (latest).
    pub version: String,
    /// First seen (unix seconds).
    pub created_at: i64,
    /// Last `hello` (unix seconds).
    pub last_seen: i64,
    /// `active` or `suspended`.
    pub status: String,
}

/// A binary an agent was seen running as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRow {
    /// Executable path at the time.
    pub exe: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Last seen (unix seconds).
    pub last_seen: i64,
}

fn agent_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        id: r.get(0)?,
        name: r.get(1)?,
        purpose: r.get(2)?,
        version: r.get(3)?,
        created_at: r.get(4)?,
        last_seen: r.get(5)?,
        status: r.get(6)?,
    })
}

const AGENT_COLS: &str = "id, name, purpose, version, created_at, last_seen, status";

/// The status of an agent in good standing.
pub const ACTIVE: &str = "active";
/// The status of a suspended agent.
pub const SUSPENDED: &str = "suspended";

impl Store {
    /// Records a `hello`: creates or updates the agent and binds the binary.
    pub fn upsert_agent_seen(
        &self,
        name: &str,
        purpose: &str,
        version: &str,
        exe: &str,
        sha256: &str,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let t = now();
        let id: i64 = tx.query_row(
            "INSERT INTO agents (name, purpose, version, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT(name) DO UPDATE SET purpose = ?2, version = ?3, last_seen = ?4
             RETURNING id",
            params![name, purpose, version, t],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO agent_binaries (agent_id, sha256, exe, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT(agent_id, sha256) DO UPDATE SET exe = ?3, last_seen = ?4",
            params![id, sha256, exe, t],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Creates an agent that has not connected yet, bound to a binary the
    /// user named (`valetkey grant add --binary`).
    pub fn ensure_agent(&self, name: &str, exe: &str, sha256: &str) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let t = now();
        let id: i64 = tx.query_row(
            "INSERT INTO agents (name, created_at, last_seen) VALUES (?1, ?2, 0)
             ON CONFLICT(name) DO UPDATE SET name = name RETURNING id",
            params![name, t],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO agent_binaries (agent_id, sha256, exe, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, 0)",
            params![id, sha256, exe, t],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// An agent by name.
    pub fn agent_by_name(&self, name: &str) -> Result<Option<AgentRow>, StoreError> {
        let conn = self.conn();
        let row = conn
            .prepare_cached(&format!("SELECT {AGENT_COLS} FROM agents WHERE name = ?1"))?
            .query_row([name], agent_from_row)
            .optional()?;
        Ok(row)
    }

    /// Every agent, by name.
    pub fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {AGENT_COLS} FROM agents ORDER BY name"))?;
        let rows = stmt
            .query_map([], agent_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The binaries an agent was seen with, most recent first.
    pub fn agent_binaries(&self, agent_id: i64) -> Result<Vec<BinaryRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT exe, sha256, last_seen FROM agent_binaries WHERE agent_id = ?1 ORDER BY last_seen DESC, first_seen DESC",
        )?;
        let rows = stmt
            .query_map([agent_id], |r| {
                Ok(BinaryRow {
                    exe: r.get(0)?,
                    sha256: r.get(1)?,
                    last_seen: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Sets `active` or `suspended`; false when no such agent.
    pub fn set_agent_status(&self, agent_id: i64, status: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE agents SET status = ?2 WHERE id = ?1",
            params![agent_id, status],
        )?;
        Ok(n > 0)
    }

    /// Whether the agent is suspended.
    pub fn agent_suspended(&self, agent_id: i64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let s: Option<String> = conn
            .prepare_cached("SELECT status FROM agents WHERE id = ?1")?
            .query_row([agent_id], |r| r.get(0))
            .optional()?;
        Ok(s.as_deref() == Some(SUSPENDED))
    }

    /// Remembers a "deny" for this agent binary and provider.
    pub fn add_denial(
        &self,
        agent_id: i64,
        provider: &str,
        sha256: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO denials (agent_id, provider, binary_sha256, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![agent_id, provider, sha256, now()],
        )?;
        Ok(())
    }

    /// Whether a remembered denial applies.
    pub fn denied(&self, agent_id: i64, provider: &str, sha256: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM denials WHERE agent_id = ?1 AND provider = ?2 AND binary_sha256 = ?3",
            )?
            .query_row(params![agent_id, provider, sha256], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// Forgets every remembered denial of an agent.
    pub fn clear_denials(&self, agent_id: i64) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM denials WHERE agent_id = ?1", [agent_id])?)
    }
}

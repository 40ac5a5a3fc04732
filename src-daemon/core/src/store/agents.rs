//! The agent registry: a row per declared name, bound to every attested
//! binary it has been seen with, plus the governance record a person owns
//! (purpose, owner, classification, allowed tools and providers, review
//! date, lifecycle status).
//!
//! `hello` only ever fills the record in: it sets `declared_purpose` every
//! time, but `purpose` and `display_name` only when the agent is new, so
//! an agent cannot rewrite what the user registered about it.

use std::sync::Arc;

use rusqlite::params;

use super::{Store, StoreError};

/// An agent in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Stable id.
    pub id: i64,
    /// Declared name.
    pub name: String,
    /// Registered purpose (set from the first `hello`, then by `agents edit`).
    pub purpose: String,
    /// Declared version (latest).
    pub version: String,
    /// First seen (unix seconds).
    pub created_at: i64,
    /// Last `hello` (unix seconds).
    pub last_seen: i64,
    /// `active`, `suspended` or `deprecated`.
    pub status: String,
    /// Name shown to people.
    pub display_name: String,
    /// What the last `hello` declared as purpose.
    pub declared_purpose: String,
    /// The OS user who owns it.
    pub owner: String,
    /// `public`, `internal` or `confidential`.
    pub classification: String,
    /// Free text such as `dev`.
    pub environment: String,
    /// Tools it may use (empty: any).
    pub tools: Vec<String>,
    /// Providers it may use (empty: any).
    pub providers: Vec<String>,
    /// Last review (unix seconds).
    pub reviewed_at: Option<i64>,
}

/// The fields `agents edit` may change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentEdit {
    /// Name shown to people.
    pub display_name: Option<String>,
    /// Registered purpose.
    pub purpose: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Classification.
    pub classification: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Tools.
    pub tools: Option<Vec<String>>,
    /// Providers.
    pub providers: Option<Vec<String>>,
}

/// The OS user running this process (who every agent acts for).
pub fn os_user() -> String {
    os_user_ref().to_owned()
}

/// [`os_user`], read once.
pub fn os_user_ref() -> &'static str {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("uid{}", rustix::process::geteuid().as_raw()))
    })
}

fn words(s: String) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
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

pub(super) fn agent_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        id: r.get(0)?,
        name: r.get(1)?,
        purpose: r.get(2)?,
        version: r.get(3)?,
        created_at: r.get(4)?,
        last_seen: r.get(5)?,
        status: r.get(6)?,
        display_name: r.get(7)?,
        declared_purpose: r.get(8)?,
        owner: r.get(9)?,
        classification: r.get(10)?,
        environment: r.get(11)?,
        tools: words(r.get(12)?),
        providers: words(r.get(13)?),
        reviewed_at: r.get(14)?,
    })
}

pub(super) const AGENT_COLS: &str = "id, name, purpose, version, created_at, last_seen, status, display_name, declared_purpose, owner, classification, environment, tools, providers, reviewed_at";

/// The status of an agent in good standing.
pub const ACTIVE: &str = "active";
/// The status of a suspended agent.
pub const SUSPENDED: &str = "suspended";
/// The status of a retired agent.
pub const DEPRECATED: &str = "deprecated";

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
        let t = self.now();
        let id: i64 = tx.query_row(
            "INSERT INTO agents (name, purpose, declared_purpose, version, created_at, last_seen, display_name, owner)
             VALUES (?1, ?2, ?2, ?3, ?4, ?4, ?1, ?5)
             ON CONFLICT(name) DO UPDATE SET declared_purpose = ?2, version = ?3, last_seen = ?4,
                purpose = CASE WHEN purpose = '' THEN ?2 ELSE purpose END
             RETURNING id",
            params![name, purpose, version, t, os_user()],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO agent_binaries (agent_id, sha256, exe, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT(agent_id, sha256) DO UPDATE SET exe = ?3, last_seen = ?4",
            params![id, sha256, exe, t],
        )?;
        tx.commit()?;
        self.mirror_mut().refresh_agent(&conn, id)?;
        Ok(id)
    }

    /// Creates an agent that has not connected yet, bound to a binary the
    /// user named (`valetkey grant add --binary`).
    pub fn ensure_agent(&self, name: &str, exe: &str, sha256: &str) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let t = self.now();
        let id: i64 = tx.query_row(
            "INSERT INTO agents (name, created_at, last_seen, display_name, owner) VALUES (?1, ?2, 0, ?1, ?3)
             ON CONFLICT(name) DO UPDATE SET name = name RETURNING id",
            params![name, t, os_user()],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO agent_binaries (agent_id, sha256, exe, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, 0)",
            params![id, sha256, exe, t],
        )?;
        tx.commit()?;
        self.mirror_mut().refresh_agent(&conn, id)?;
        Ok(id)
    }

    /// An agent by name.
    pub fn agent_by_name(&self, name: &str) -> Result<Option<Arc<AgentRow>>, StoreError> {
        let m = self.mirror();
        Ok(m.names.get(name).and_then(|id| m.agents.get(id)).cloned())
    }

    /// An agent by id.
    pub fn agent_by_id(&self, id: i64) -> Result<Option<Arc<AgentRow>>, StoreError> {
        Ok(self.mirror().agents.get(&id).cloned())
    }

    /// Runs one statement on agent `id`, then refreshes its mirror; false
    /// when no row changed.
    fn write_agent(
        &self,
        id: i64,
        sql: &str,
        p: &[&dyn rusqlite::ToSql],
    ) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn.execute(sql, p)?;
        self.mirror_mut().refresh_agent(&conn, id)?;
        Ok(n > 0)
    }

    /// Applies an edit; false when no such agent.
    pub fn edit_agent(&self, id: i64, e: &AgentEdit) -> Result<bool, StoreError> {
        self.write_agent(
            id,
            "UPDATE agents SET
                display_name = COALESCE(?2, display_name),
                purpose = COALESCE(?3, purpose),
                owner = COALESCE(?4, owner),
                classification = COALESCE(?5, classification),
                environment = COALESCE(?6, environment),
                tools = COALESCE(?7, tools),
                providers = COALESCE(?8, providers)
             WHERE id = ?1",
            params![
                id,
                e.display_name,
                e.purpose,
                e.owner,
                e.classification,
                e.environment,
                e.tools.as_ref().map(|t| t.join(" ")),
                e.providers.as_ref().map(|t| t.join(" ")),
            ],
        )
    }

    /// Records a review now.
    pub fn review_agent(&self, id: i64) -> Result<bool, StoreError> {
        self.write_agent(
            id,
            "UPDATE agents SET reviewed_at = ?2 WHERE id = ?1",
            params![id, self.now()],
        )
    }

    /// The agent's lifecycle status (`None` when no such agent).
    pub fn agent_status(&self, agent_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .mirror()
            .agents
            .get(&agent_id)
            .map(|a| a.status.clone()))
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

    /// Sets `active`, `suspended` or `deprecated`; false when no such agent.
    pub fn set_agent_status(&self, agent_id: i64, status: &str) -> Result<bool, StoreError> {
        self.write_agent(
            agent_id,
            "UPDATE agents SET status = ?2 WHERE id = ?1",
            params![agent_id, status],
        )
    }

    /// Remembers a "deny" for this agent binary and provider.
    pub fn add_denial(
        &self,
        agent_id: i64,
        provider: &str,
        sha256: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR REPLACE INTO denials (agent_id, provider, binary_sha256, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![agent_id, provider, sha256, self.now()],
        )?;
        self.mirror_mut()
            .denials
            .insert((agent_id, provider.to_owned(), sha256.to_owned()));
        Ok(())
    }

    /// Whether a remembered denial applies.
    pub fn denied(&self, agent_id: i64, provider: &str, sha256: &str) -> Result<bool, StoreError> {
        Ok(self
            .mirror()
            .denials
            .iter()
            .any(|(a, p, s)| *a == agent_id && p == provider && s == sha256))
    }

    /// Forgets every remembered denial of an agent.
    pub fn clear_denials(&self, agent_id: i64) -> Result<usize, StoreError> {
        let conn = self.conn();
        let n = conn.execute("DELETE FROM denials WHERE agent_id = ?1", [agent_id])?;
        self.mirror_mut().denials.retain(|(a, _, _)| *a != agent_id);
        Ok(n)
    }
}

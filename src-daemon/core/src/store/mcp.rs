//! Remote MCP servers (`valetkey mcp add`): what discovery found, kept as
//! the JSON of [`McpServer`]. Read once at start-up into
//! [`crate::mcp::Servers`]; written only through the daemon.

use rusqlite::params;
use valetkey_ipc::control::McpServer;

use super::{Store, StoreError};

/// One stored server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpRow {
    /// What discovery found.
    pub server: McpServer,
    /// When it was added (Unix seconds).
    pub added_at: i64,
}

impl Store {
    /// Every stored MCP server, by name. A row that no longer parses is
    /// skipped with a warning (it stays in the database).
    pub fn mcp_servers(&self) -> Result<Vec<McpRow>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, record, added_at FROM mcp_servers ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, record, added_at) = row?;
            match serde_json::from_str::<McpServer>(&record) {
                Ok(server) => out.push(McpRow { server, added_at }),
                Err(e) => {
                    tracing::warn!(%name, error = %e, "a stored MCP server does not parse; skipped")
                }
            }
        }
        Ok(out)
    }

    /// Stores `server` (replacing one of the same name); returns when it
    /// was added.
    pub fn put_mcp_server(&self, server: &McpServer) -> Result<i64, StoreError> {
        let record = serde_json::to_string(server)
            .map_err(|e| StoreError::NotFound(format!("cannot encode the server: {e}")))?;
        let now = self.now();
        self.conn().execute(
            "INSERT INTO mcp_servers (name, record, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET record = ?2, added_at = ?3",
            params![server.name, record, now],
        )?;
        Ok(now)
    }

    /// Rewrites a stored server's record (a step-up widened its scopes),
    /// keeping when it was added.
    pub fn update_mcp_server(&self, server: &McpServer) -> Result<(), StoreError> {
        let record = serde_json::to_string(server)
            .map_err(|e| StoreError::NotFound(format!("cannot encode the server: {e}")))?;
        self.conn().execute(
            "UPDATE mcp_servers SET record = ?2 WHERE name = ?1",
            params![server.name, record],
        )?;
        Ok(())
    }

    /// Forgets a server; `false` when there was none.
    pub fn delete_mcp_server(&self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM mcp_servers WHERE name = ?1", [name])?;
        Ok(n > 0)
    }
}

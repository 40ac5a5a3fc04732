//! The activity log the tray's "Activity" view shows: one sentence per
//! event, kept across restarts and trimmed to the newest 10,000 rows.
//!
//! Summaries are built from names, scopes and ids only, never from token
//! material. Issue 5's hash-chained audit trail will subsume this table.

use rusqlite::params;
use valetkey_ipc::control::ActivityEntry;

use super::{Store, StoreError};

const KEEP: i64 = 10_000;

impl Store {
    /// Appends one entry.
    pub fn record_activity(
        &self,
        kind: &str,
        agent: Option<&str>,
        summary: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let id: i64 = conn
            .prepare_cached(
                "INSERT INTO activity (ts, kind, agent, summary) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            )?
            .query_row(params![self.now(), kind, agent, summary], |r| r.get(0))?;
        if id % 1000 == 0 {
            conn.execute("DELETE FROM activity WHERE id <= ?1", [id - KEEP])?;
        }
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub fn list_activity(&self, limit: u32) -> Result<Vec<ActivityEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, ts, kind, agent, summary FROM activity ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok(ActivityEntry {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    kind: r.get(2)?,
                    agent: r.get(3)?,
                    summary: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

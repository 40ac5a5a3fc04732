//! Small daemon-wide facts that must survive restarts (the broker's id).

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

impl Store {
    /// A value by key.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        let v = conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        Ok(v)
    }

    /// The value for `key`, set to `make()` first if there is none. The
    /// first writer wins, so two processes agree.
    pub fn meta_or_init(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, make()],
        )?;
        let v = conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?;
        Ok(v)
    }
}

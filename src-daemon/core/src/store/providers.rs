//! Login state per provider. The refresh token itself is in the keychain;
//! this row says whether one should be there and whether it still works.
//! Read from the in-memory mirror; every write refreshes it.

use std::sync::Arc;

use rusqlite::params;

use super::{Store, StoreError};

/// What the daemon knows about a provider's login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderState {
    /// When the last login finished, if ever.
    pub logged_in_at: Option<i64>,
    /// The scopes the login granted (what the refresh token holds).
    pub login_scopes: Vec<String>,
    /// The provider rejected the refresh token; a new login is needed.
    pub login_required: bool,
    /// Bumped on every login, logout and invalidation; cached access tokens
    /// from an older generation are discarded.
    pub generation: i64,
}

/// The columns [`provider_from_row`] reads, in order.
pub(super) const PROVIDER_COLS: &str = "logged_in_at, login_scopes, login_required, generation";

/// A [`ProviderState`] from [`PROVIDER_COLS`] starting at column `at`.
pub(super) fn provider_from_row(
    r: &rusqlite::Row<'_>,
    at: usize,
) -> rusqlite::Result<ProviderState> {
    let scopes: String = r.get(at + 1)?;
    Ok(ProviderState {
        logged_in_at: r.get(at)?,
        login_scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        login_required: r.get(at + 2)?,
        generation: r.get(at + 3)?,
    })
}

impl Store {
    /// The state of `name` (default when never seen).
    pub fn provider_state(&self, name: &str) -> Result<Arc<ProviderState>, StoreError> {
        Ok(self
            .mirror()
            .providers
            .get(name)
            .cloned()
            .unwrap_or_default())
    }

    /// Runs one statement on provider `name`, then refreshes its mirror.
    fn write_provider(
        &self,
        name: &str,
        sql: &str,
        p: &[&dyn rusqlite::ToSql],
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(sql, p)?;
        self.mirror_mut().refresh_provider(&conn, name)?;
        Ok(())
    }

    /// Records a finished login with the scopes it granted.
    pub fn record_login(&self, name: &str, scopes: &[String]) -> Result<(), StoreError> {
        self.write_provider(
            name,
            "INSERT INTO providers (name, logged_in_at, login_scopes, login_required, generation)
             VALUES (?1, ?2, ?3, 0, 1)
             ON CONFLICT(name) DO UPDATE SET logged_in_at = ?2, login_scopes = ?3,
                login_required = 0, generation = generation + 1",
            params![name, self.now(), scopes.join(" ")],
        )
    }

    /// Records a logout.
    pub fn record_logout(&self, name: &str) -> Result<(), StoreError> {
        self.write_provider(
            name,
            "UPDATE providers SET logged_in_at = NULL, login_scopes = '', login_required = 0,
                generation = generation + 1 WHERE name = ?1",
            params![name],
        )
    }

    /// Marks the login as rejected by the provider (`invalid_grant`).
    pub fn mark_login_required(&self, name: &str) -> Result<(), StoreError> {
        self.write_provider(
            name,
            "UPDATE providers SET login_required = 1, generation = generation + 1 WHERE name = ?1",
            params![name],
        )
    }
}

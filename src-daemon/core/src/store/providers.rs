//! Login state per provider. The refresh token itself is in the keychain;
//! this row says whether one should be there and whether it still works.

use rusqlite::{params, OptionalExtension};

use super::{now, Store, StoreError};

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

impl Store {
    /// The state of `name` (default when never seen).
    pub fn provider_state(&self, name: &str) -> Result<ProviderState, StoreError> {
        let conn = self.conn();
        let row = conn
            .prepare_cached(
                "SELECT logged_in_at, login_scopes, login_required, generation FROM providers WHERE name = ?1",
            )?
            .query_row([name], |r| {
                let scopes: String = r.get(1)?;
                Ok(ProviderState {
                    logged_in_at: r.get(0)?,
                    login_scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                    login_required: r.get(2)?,
                    generation: r.get(3)?,
                })
            })
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    /// Records a finished login with the scopes it granted.
    pub fn record_login(&self, name: &str, scopes: &[String]) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO providers (name, logged_in_at, login_scopes, login_required, generation)
             VALUES (?1, ?2, ?3, 0, 1)
             ON CONFLICT(name) DO UPDATE SET logged_in_at = ?2, login_scopes = ?3,
                login_required = 0, generation = generation + 1",
            params![name, now(), scopes.join(" ")],
        )?;
        Ok(())
    }

    /// Records a logout.
    pub fn record_logout(&self, name: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE providers SET logged_in_at = NULL, login_scopes = '', login_required = 0,
                generation = generation + 1 WHERE name = ?1",
            [name],
        )?;
        Ok(())
    }

    /// Marks the login as rejected by the provider (`invalid_grant`).
    pub fn mark_login_required(&self, name: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE providers SET login_required = 1, generation = generation + 1 WHERE name = ?1",
            [name],
        )?;
        Ok(())
    }
}

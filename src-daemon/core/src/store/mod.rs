//! The state database: providers' login state, the agent registry and
//! grants. Never tokens: those live in the keychain (refresh tokens) and in
//! memory (access tokens).
//!
//! SQLite in WAL mode. The daemon is its only writer and the only one that
//! runs the numbered migrations (keyed on `PRAGMA user_version`); the CLI
//! opens it read-only, to verify and export the audit trail, and asks the
//! daemon for everything else. The connection sits behind a std `Mutex` that is
//! only ever held for one statement or transaction, never across an
//! `.await`.

mod activity;
mod agents;
mod audit;
mod delegations;
mod grants;
mod meta;
mod migrations;
mod providers;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

pub use agents::{os_user, AgentEdit, AgentRow, BinaryRow, ACTIVE, DEPRECATED, SUSPENDED};
pub use audit::{hash_of as audit_hash, AuditFilter, AuditRecord, Checkpoint, GENESIS};
pub use delegations::{DelegationRow, NewDelegation};
pub use grants::{GrantFilter, GrantRow, NewGrant};
pub use providers::ProviderState;

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file or its directory could not be prepared.
    #[error("cannot open state database {path}: {source}")]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A row the caller named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database was written by a newer Valet Key.
    #[error("state database schema version {found} is newer than this build understands ({known}); upgrade valetkey")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
}

/// A handle to the state database.
pub struct Store {
    conn: Mutex<Connection>,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`: the
    /// writer's connection. Only with the `writer` feature, which only the
    /// daemon enables: the CLI cannot build a writable store at all.
    #[cfg(feature = "writer")]
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            crate::dirs::ensure_dir(dir).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// Opens the database read-only, for `valetkey audit verify` and
    /// `audit export`: the daemon is its only writer, and only the daemon
    /// runs migrations, so a schema this build does not know is refused
    /// rather than changed.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        use rusqlite::OpenFlags;
        if !path.exists() {
            return Err(StoreError::NotFound(format!(
                "there is no state database at {} yet; valetkeyd creates it when it first starts",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = migrations::known();
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        if found < known {
            return Err(StoreError::NotFound(format!(
                "the state database {} has schema version {found}, older than this build's {known}; start valetkeyd once to upgrade it",
                path.display()
            )));
        }
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory database, for tests.
    #[cfg(any(test, feature = "writer"))]
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    #[cfg(any(test, feature = "writer"))]
    fn init(mut conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::run(&mut conn)?;
        let store = Store {
            conn: Mutex::new(conn),
        };
        store.chain_legacy_audit()?;
        Ok(store)
    }

    /// Locks the connection. A poisoned lock only means another thread
    /// panicked mid-statement; SQLite's own transactions keep the data
    /// consistent, so the connection is still safe to use.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection, for modules outside `store` that own a
    /// table (the signing keys).
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        Ok(f(&self.conn())?)
    }
}

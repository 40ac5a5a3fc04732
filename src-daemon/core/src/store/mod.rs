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
mod mcp;
mod meta;
mod migrations;
mod mirror;
mod providers;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rusqlite::Connection;

use crate::clock::SharedClock;

pub use agents::{
    os_user, os_user_ref, AgentEdit, AgentRow, BinaryRow, ACTIVE, DEPRECATED, SUSPENDED,
};
pub use audit::{hash_of as audit_hash, AuditFilter, AuditRecord, Checkpoint, GENESIS};
pub use delegations::{DelegationRow, NewDelegation};
pub use grants::{GrantFilter, GrantRow, NewGrant};
pub use mcp::McpRow;
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
    /// Agents, grants, denials and logins, in memory (see [`mirror`]).
    mirror: RwLock<mirror::Mirror>,
    /// Where row timestamps and expiry checks get the time.
    clock: SharedClock,
}

/// The WAL beside the database at `path` (`state.db-wal`).
pub fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`: the
    /// writer's connection. Only with the `writer` feature, which only the
    /// daemon enables: the CLI cannot build a writable store at all.
    #[cfg(any(test, feature = "writer"))]
    pub fn open(path: &Path, clock: SharedClock) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            crate::dirs::ensure_dir(dir).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        Self::init(conn, clock)
    }

    /// Moves the WAL into the database file every 2 s from a thread of its
    /// own, so the thread that serves agents never pays for a checkpoint.
    /// PASSIVE: it never waits for, or blocks, the writer.
    #[cfg(feature = "writer")]
    pub fn spawn_checkpointer(path: &Path) -> std::io::Result<()> {
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                let conn = match Connection::open(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "the WAL checkpointer cannot open the database; the WAL will grow");
                        return;
                    }
                };
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(2));
                    if let Err(e) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                    }
                }
            })?;
        Ok(())
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
        // With no WAL there is no connection open anywhere (SQLite removes
        // it when the last one closes): the file holds every record, and
        // it is read as it is (`immutable`), because a read-only reader
        // that may not create the WAL cannot read a WAL database otherwise.
        // A daemon that starts meanwhile writes its WAL beside it; see
        // [`wal_path`] for the caller's check.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if wal_path(path).exists() {
            Connection::open_with_flags(path, flags)?
        } else {
            let uri = url::Url::from_file_path(path)
                .map(|mut u| {
                    u.set_query(Some("immutable=1"));
                    u.to_string()
                })
                .map_err(|()| {
                    StoreError::NotFound(format!("{} is not an absolute path", path.display()))
                })?;
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)?
        };
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
            mirror: RwLock::new(mirror::Mirror::load(&conn)?),
            conn: Mutex::new(conn),
            clock: crate::clock::system(),
        })
    }

    /// An in-memory database, for tests.
    #[cfg(any(test, feature = "writer"))]
    pub fn open_in_memory(clock: SharedClock) -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?, clock)
    }

    #[cfg(any(test, feature = "writer"))]
    fn init(mut conn: Connection, clock: SharedClock) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Every commit is fsynced before it returns: the records written
        // are the ones that gate a hand-out (first issuances, refusals,
        // grants, revocations); repeats are only counted (audit::reuse).
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints run on a thread of their own (spawn_checkpointer),
        // never on the serving thread.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::run(&mut conn)?;
        let store = Store {
            mirror: RwLock::new(mirror::Mirror::load(&conn)?),
            conn: Mutex::new(conn),
            clock,
        };
        store.chain_legacy_audit()?;
        Ok(store)
    }

    /// Seconds since the epoch, by the store's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The clock the store reads.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// Locks the connection. A poisoned lock only means another thread
    /// panicked mid-statement; SQLite's own transactions keep the data
    /// consistent, so the connection is still safe to use.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The in-memory rows, for reading. Held only for a lookup.
    fn mirror(&self) -> RwLockReadGuard<'_, mirror::Mirror> {
        self.mirror.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The in-memory rows, for refreshing after a write (while the
    /// connection is still held, so refreshes follow commit order).
    fn mirror_mut(&self) -> RwLockWriteGuard<'_, mirror::Mirror> {
        self.mirror.write().unwrap_or_else(|p| p.into_inner())
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

//! The OS keychain (Secret Service on Linux): the only place refresh tokens
//! and client secrets are stored.
//!
//! The store crate speaks D-Bus through a blocking API that starts its own
//! runtime, so every call runs on tokio's blocking pool (calling it on a
//! runtime thread panics), bounded by a timeout so a wedged keychain turns
//! into `keychain_unavailable` instead of a hang. One store (one D-Bus
//! connection) is kept for the daemon's life: opening one costs ~5 ms,
//! a lookup on a kept one ~0.5 ms. After a platform failure the connection
//! is dropped and re-opened on the next call, so the daemon recovers when
//! the keychain comes back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyring_core::api::CredentialStoreApi;
use keyring_core::Error as KrError;
use zbus_secret_service_keyring_store::Store as SsStore;

use crate::secret::Secret;

/// Keychain failures, mapped to what a user can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeychainError {
    /// The collection is locked.
    #[error("the OS keychain is locked; unlock it (log in to the desktop, or run `gnome-keyring-daemon --unlock`) and retry")]
    Locked,
    /// No Secret Service reachable.
    #[error("no OS keychain is reachable ({0}); start a Secret Service such as gnome-keyring in this session")]
    Unavailable(String),
    /// Anything else the store reported.
    #[error("the OS keychain failed: {0}")]
    Other(String),
}

/// Which secret an item holds.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// A provider's refresh token.
    RefreshToken(&'a str),
    /// A confidential provider client's secret.
    ClientSecret(&'a str),
    /// A delegation signing key (PKCS#8, base64), by key id.
    SigningKey(&'a str),
    /// The key that seals the rotation journal (base64).
    JournalKey,
}

impl Item<'_> {
    /// The Secret Service `username` attribute (`service` is always `valetkey`).
    pub fn user(&self) -> String {
        match self {
            Item::RefreshToken(p) => format!("refresh-token:{p}"),
            Item::ClientSecret(p) => format!("client-secret:{p}"),
            Item::SigningKey(k) => format!("signing-key:{k}"),
            Item::JournalKey => "rotation-journal-key".into(),
        }
    }

    fn label(&self) -> String {
        match self {
            Item::RefreshToken(p) => format!("Valet Key refresh token for {p}"),
            Item::ClientSecret(p) => format!("Valet Key client secret for {p}"),
            Item::SigningKey(k) => format!("Valet Key delegation signing key {k}"),
            Item::JournalKey => "Valet Key rotation journal key".into(),
        }
    }
}

/// The `service` attribute of every item.
pub const SERVICE: &str = "valetkey";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A future a port returns: boxed, so the ports can be trait objects.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where secrets live, as the core sees it: the daemon passes the real
/// [`SecretService`]; the in-process tests pass a fake that can fail on
/// demand. Every method is one keychain round trip.
pub trait Keychain: Send + Sync {
    /// Reads an item; `Ok(None)` when it does not exist.
    fn get<'a>(&'a self, item: Item<'a>) -> BoxFuture<'a, Result<Option<Secret>, KeychainError>>;
    /// Writes (creates or replaces) an item.
    fn set<'a>(
        &'a self,
        item: Item<'a>,
        value: &'a Secret,
    ) -> BoxFuture<'a, Result<(), KeychainError>>;
    /// Deletes an item; deleting a missing one is not an error.
    fn delete<'a>(&'a self, item: Item<'a>) -> BoxFuture<'a, Result<(), KeychainError>>;
}

impl Keychain for SecretService {
    fn get<'a>(&'a self, item: Item<'a>) -> BoxFuture<'a, Result<Option<Secret>, KeychainError>> {
        Box::pin(SecretService::get(self, item))
    }
    fn set<'a>(
        &'a self,
        item: Item<'a>,
        value: &'a Secret,
    ) -> BoxFuture<'a, Result<(), KeychainError>> {
        Box::pin(SecretService::set(self, item, value))
    }
    fn delete<'a>(&'a self, item: Item<'a>) -> BoxFuture<'a, Result<(), KeychainError>> {
        Box::pin(SecretService::delete(self, item))
    }
}

/// The Secret Service keychain (over D-Bus). Cheap to clone.
#[derive(Clone, Default)]
pub struct SecretService {
    store: Arc<Mutex<Slot>>,
}

/// Holds the store connection. Dropping the store blocks on its own
/// runtime, which panics on a tokio thread, so a drop that happens inside a
/// runtime is moved to a plain thread.
#[derive(Default)]
struct Slot(Option<Arc<SsStore>>);

impl Slot {
    fn clear(&mut self) {
        if let Some(store) = self.0.take() {
            drop_off_runtime(store);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.clear();
    }
}

fn drop_off_runtime(store: Arc<SsStore>) {
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = std::thread::Builder::new()
            .name("keychain-drop".into())
            .spawn(move || drop(store));
    } else {
        drop(store);
    }
}

fn map_err(e: KrError) -> KeychainError {
    match e {
        KrError::NoStorageAccess(_) => KeychainError::Locked,
        KrError::PlatformFailure(inner) => KeychainError::Unavailable(inner.to_string()),
        other => KeychainError::Other(other.to_string()),
    }
}

impl SecretService {
    /// A keychain that connects on first use.
    pub fn new() -> Self {
        Self::default()
    }

    fn store(&self) -> Result<Arc<SsStore>, KeychainError> {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.0.as_ref() {
            return Ok(s.clone());
        }
        let s = SsStore::new().map_err(map_err)?;
        slot.0 = Some(s.clone());
        Ok(s)
    }

    fn forget_connection(&self) {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Builds an entry. Blocking: call only inside [`SecretService::run`].
    fn entry(&self, user: &str, label: &str) -> Result<keyring_core::Entry, KeychainError> {
        let mods = HashMap::from([("label", label)]);
        self.store()?
            .build(SERVICE, user, Some(&mods))
            .map_err(map_err)
    }

    /// Runs a blocking keychain operation off the runtime, with a timeout.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&SecretService) -> Result<T, KeychainError> + Send + 'static,
    ) -> Result<T, KeychainError> {
        let this = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let r = op(&this);
            if matches!(r, Err(KeychainError::Unavailable(_))) {
                this.forget_connection();
            }
            r
        });
        match tokio::time::timeout(TIMEOUT, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(KeychainError::Other(format!(
                "keychain task failed: {join}"
            ))),
            Err(_) => {
                self.forget_connection();
                Err(KeychainError::Unavailable(format!(
                    "no answer within {} s",
                    TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// Reads an item; `Ok(None)` when it does not exist.
    pub async fn get(&self, item: Item<'_>) -> Result<Option<Secret>, KeychainError> {
        let (user, label) = (item.user(), item.label());
        self.run(move |k| match k.entry(&user, &label)?.get_password() {
            Ok(p) => Ok(Some(Secret::new(p))),
            Err(KrError::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        })
        .await
    }

    /// Writes (creates or replaces) an item.
    pub async fn set(&self, item: Item<'_>, value: &Secret) -> Result<(), KeychainError> {
        let (user, label) = (item.user(), item.label());
        let value = value.clone();
        self.run(move |k| {
            k.entry(&user, &label)?
                .set_password(value.expose())
                .map_err(map_err)
        })
        .await
    }

    /// Deletes an item; deleting a missing one is not an error.
    pub async fn delete(&self, item: Item<'_>) -> Result<(), KeychainError> {
        let (user, label) = (item.user(), item.label());
        self.run(move |k| match k.entry(&user, &label)?.delete_credential() {
            Ok(()) | Err(KrError::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e)),
        })
        .await
    }
}

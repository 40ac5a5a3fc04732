//! The rotation journal: a rotated refresh token made durable on local
//! disk the moment the provider hands it over, before the keychain is
//! asked to hold it.
//!
//! A provider that rotates refresh tokens counts the old one as reused
//! once it has answered, and revokes the login if it comes back. A daemon
//! killed between that answer and the keychain's write (a Secret Service
//! call over D-Bus: 5.7 ms at p50, 17 ms at p99 here) loses the login. A
//! sealed file written with `fsync` (about 1.4 ms) shortens that window,
//! and the next refresh after a restart puts its token in the keychain.
//!
//! Each entry is one file per provider, `SHA256(keychain key).sealed`:
//! AES-256-GCM under a key kept in the keychain (fetched once and held in
//! memory, so the write needs no D-Bus call), with the provider's
//! keychain key as associated data. It holds the new token and the
//! SHA-256 of the token it replaces, and is replayed only while the
//! keychain still holds that one: a login made meanwhile, or a write that
//! landed, wins. No token is written in the clear, and the journal is
//! removed once the keychain holds its token.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::keychain::{Item, Keychain};
use crate::secret::Secret;

/// The keychain item of the journal's sealing key.
pub const KEY_ITEM: Item<'static> = Item::JournalKey;

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal directory or file.
    #[error("rotation journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The sealing key.
    #[error("rotation journal key: {0}")]
    Key(String),
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// SHA-256 (hex) of the refresh token this one replaces.
    replaces: String,
    /// The new refresh token.
    token: String,
}

/// An entry read back: the token, and what it replaces.
pub struct Replayed {
    /// The new refresh token.
    pub token: Secret,
    /// SHA-256 (hex) of the token it replaced.
    pub replaces: String,
}

/// The journal in `dir`, sealed with `key`.
pub struct Journal {
    dir: PathBuf,
    key: LessSafeKey,
}

/// SHA-256 of `s`, hex.
pub fn digest(s: &str) -> String {
    crate::attest::hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

impl Journal {
    /// The journal in `dir`, with its key from `keychain` (made and
    /// stored on first use).
    pub async fn open(dir: &Path, keychain: &dyn Keychain) -> Result<Journal, JournalError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = match keychain.get(KEY_ITEM).await {
            Ok(Some(k)) => b64
                .decode(k.expose())
                .map_err(|e| JournalError::Key(e.to_string()))?,
            Ok(None) => {
                let mut k = vec![0u8; 32];
                SystemRandom::new()
                    .fill(&mut k)
                    .map_err(|_| JournalError::Key("no randomness".into()))?;
                keychain
                    .set(KEY_ITEM, &Secret::new(b64.encode(&k)))
                    .await
                    .map_err(|e| JournalError::Key(e.to_string()))?;
                k
            }
            Err(e) => return Err(JournalError::Key(e.to_string())),
        };
        let key = UnboundKey::new(&AES_256_GCM, &raw)
            .map_err(|_| JournalError::Key("the stored key is not 32 bytes".into()))?;
        Ok(Journal {
            dir: dir.to_owned(),
            key: LessSafeKey::new(key),
        })
    }

    fn path(&self, keychain_key: &str) -> PathBuf {
        self.dir.join(format!("{}.sealed", digest(keychain_key)))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
        move |source| JournalError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Makes `token` (which replaces the one whose digest is `replaces`)
    /// durable: sealed, written, fsynced, renamed into place, and the
    /// directory fsynced.
    pub fn write(
        &self,
        keychain_key: &str,
        replaces: &str,
        token: &Secret,
    ) -> Result<(), JournalError> {
        crate::dirs::ensure_private_dir(&self.dir).map_err(|e| JournalError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let entry = Entry {
            replaces: replaces.to_owned(),
            token: token.expose().to_owned(),
        };
        let mut sealed = zeroize::Zeroizing::new(
            serde_json::to_vec(&entry).map_err(|e| JournalError::Key(e.to_string()))?,
        );
        drop(entry);
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| JournalError::Key("no randomness".into()))?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(keychain_key.as_bytes()),
                &mut *sealed,
            )
            .map_err(|_| JournalError::Key("sealing failed".into()))?;
        let path = self.path(keychain_key);
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(Self::io(&tmp))?;
        f.write_all(&nonce)
            .and_then(|()| f.write_all(&sealed))
            .and_then(|()| f.sync_all())
            .map_err(Self::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(Self::io(&self.dir))
    }

    /// The entry for `keychain_key`, if there is one. One that cannot be
    /// opened (another key, a torn file) is removed and reported.
    pub fn read(&self, keychain_key: &str) -> Result<Option<Replayed>, JournalError> {
        let path = self.path(keychain_key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => zeroize::Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io(&path)(e)),
        };
        let opened = self.open_sealed(keychain_key, &bytes);
        if opened.is_none() {
            self.clear(keychain_key);
            return Err(JournalError::Key(format!(
                "{} cannot be opened with this key; it was removed",
                path.display()
            )));
        }
        Ok(opened)
    }

    fn open_sealed(&self, keychain_key: &str, bytes: &[u8]) -> Option<Replayed> {
        let (nonce, sealed) = bytes.split_at_checked(NONCE_LEN)?;
        let mut sealed = zeroize::Zeroizing::new(sealed.to_vec());
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(keychain_key.as_bytes()), &mut sealed)
            .ok()?;
        let entry: Entry = serde_json::from_slice(plain).ok()?;
        Some(Replayed {
            token: Secret::new(entry.token),
            replaces: entry.replaces,
        })
    }

    /// Removes the entry for `keychain_key` (once the keychain holds it).
    pub fn clear(&self, keychain_key: &str) {
        let path = self.path(keychain_key);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a rotation journal entry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inproc::FakeKeychain;

    #[tokio::test]
    async fn an_entry_is_sealed_read_back_and_bound_to_its_provider() {
        let tmp = tempfile::tempdir().expect("tmp");
        let t = tmp.path().join("rotations");
        let keychain = FakeKeychain::default();
        let j = Journal::open(&t, &keychain).await.expect("journal");
        assert!(
            keychain.peek(KEY_ITEM).is_some(),
            "the key is kept in the keychain"
        );
        j.write(
            "local",
            &digest("refresh-1"),
            &Secret::new("refresh-2".into()),
        )
        .expect("write");
        // Nothing in the clear on disk.
        for e in std::fs::read_dir(&t).expect("dir").flatten() {
            let bytes = std::fs::read(e.path()).expect("read");
            assert!(!String::from_utf8_lossy(&bytes).contains("refresh-2"));
            assert!(!e.file_name().to_string_lossy().contains("local"));
        }
        // Another daemon with the same keychain reads it back.
        let again = Journal::open(&t, &keychain).await.expect("journal");
        let r = again.read("local").expect("read").expect("entry");
        assert_eq!(r.token.expose(), "refresh-2");
        assert_eq!(r.replaces, digest("refresh-1"));
        assert!(again.read("other").expect("read").is_none());
        // Moved to another provider's name, it does not open.
        std::fs::rename(again.path("local"), again.path("other")).expect("mv");
        assert!(again.read("other").is_err());
        assert!(
            !again.path("other").exists(),
            "an entry that does not open is removed"
        );
        again.clear("local");
    }
}

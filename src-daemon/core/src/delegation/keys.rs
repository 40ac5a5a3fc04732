//! The broker's Ed25519 signing keys. The private key (PKCS#8) lives only
//! in the OS keychain; the database holds the public half and the key's
//! `kid` (its RFC 7638 JWK thumbprint), so tokens can be verified and the
//! JWKS published without touching the keychain.
//!
//! A key is made at the first delegation. `valetkey keys rotate` makes a
//! new one; the old one stays published (and accepted) until every token it
//! could have signed has expired, then it is dropped from both places.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use rusqlite::params;
use valetkey_ipc::methods::{Jwk, JwkSet};
use valetkey_ipc::ErrorCode;

use crate::error::BrokerError;
use crate::keychain::{Item, Keychain};
use crate::secret::Secret;
use crate::store::Store;

/// RFC 7638 thumbprint of an Ed25519 public key.
pub fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        B64.encode(public)
    );
    B64.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// The signing key in use, cached after the first keychain read.
#[derive(Default)]
pub struct Signer {
    cache: Mutex<Option<(String, Arc<Ed25519KeyPair>)>>,
}

fn internal(msg: impl Into<String>) -> BrokerError {
    BrokerError::rpc(ErrorCode::Internal, msg)
}

async fn generate(
    store: &Store,
    keychain: &dyn Keychain,
) -> Result<(String, Arc<Ed25519KeyPair>), BrokerError> {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| internal("cannot generate a signing key"))?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
        .map_err(|_| internal("cannot read the generated signing key"))?;
    let public = pair.public_key().as_ref().to_vec();
    let kid = thumbprint(&public);
    // Keychain first: a key the database names must always be readable.
    keychain
        .set(
            Item::SigningKey(&kid),
            &Secret::new(STANDARD.encode(doc.as_ref())),
        )
        .await?;
    store.add_signing_key(&kid, &B64.encode(&public))?;
    tracing::info!(kid, "new delegation signing key");
    Ok((kid, Arc::new(pair)))
}

impl Signer {
    /// The current key, made on first use.
    pub async fn current(
        &self,
        store: &Store,
        keychain: &dyn Keychain,
    ) -> Result<(String, Arc<Ed25519KeyPair>), BrokerError> {
        if let Some(k) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(k);
        }
        let k = match store.active_signing_kid()? {
            None => generate(store, keychain).await?,
            Some(kid) => {
                let secret = keychain.get(Item::SigningKey(&kid)).await?.ok_or_else(|| {
                    internal(format!(
                        "the signing key {kid} is missing from the keychain; run `valetkey keys rotate` to make a new one (tokens it signed stop working)"
                    ))
                })?;
                let der = STANDARD.decode(secret.expose()).map_err(|_| {
                    internal(
                        "the signing key in the keychain is damaged; run `valetkey keys rotate`",
                    )
                })?;
                let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| {
                    internal(
                        "the signing key in the keychain is damaged; run `valetkey keys rotate`",
                    )
                })?;
                (kid, Arc::new(pair))
            }
        };
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(k.clone());
        Ok(k)
    }

    /// Makes a new key; the old ones stay published until `max_ttl` after
    /// they were retired. Returns the new kid and every published kid.
    pub async fn rotate(
        &self,
        store: &Store,
        keychain: &dyn Keychain,
        max_ttl_secs: i64,
    ) -> Result<(String, Vec<String>), BrokerError> {
        let (kid, pair) = generate(store, keychain).await?;
        store.retire_signing_keys_except(&kid)?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((kid.clone(), pair));
        for old in store.expired_signing_keys(max_ttl_secs)? {
            // The public half stays in the database: old audit
            // checkpoints are verified with it.
            let _ = keychain.delete(Item::SigningKey(&old)).await;
        }
        let published = jwks(store, max_ttl_secs)?
            .keys
            .into_iter()
            .map(|k| k.kid)
            .collect();
        Ok((kid, published))
    }
}

/// The public keys to publish and accept: the active one first, then
/// retired ones whose tokens may still be live.
pub fn jwks(store: &Store, max_ttl_secs: i64) -> Result<JwkSet, BrokerError> {
    let keys = store
        .published_signing_keys(max_ttl_secs)?
        .into_iter()
        .map(|(kid, x)| Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            kid,
            alg: "EdDSA".into(),
            use_: "sig".into(),
        })
        .collect();
    Ok(JwkSet { keys })
}

/// The raw public key for `kid`, if it is published.
pub fn public_key(store: &Store, kid: &str, max_ttl_secs: i64) -> Option<Vec<u8>> {
    let set = jwks(store, max_ttl_secs).ok()?;
    let k = set.keys.into_iter().find(|k| k.kid == kid)?;
    B64.decode(k.x).ok()
}

impl Store {
    fn add_signing_key(&self, kid: &str, x: &str) -> Result<(), crate::store::StoreError> {
        self.with_conn(|c| {
            c.execute(
                "INSERT OR IGNORE INTO signing_keys (kid, public_x, created_at) VALUES (?1, ?2, ?3)",
                params![kid, x, self.now()],
            )
            .map(|_| ())
        })
    }

    fn active_signing_kid(&self) -> Result<Option<String>, crate::store::StoreError> {
        self.with_conn(|c| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn retire_signing_keys_except(&self, kid: &str) -> Result<(), crate::store::StoreError> {
        self.with_conn(|c| {
            c.execute(
                "UPDATE signing_keys SET retired_at = ?2 WHERE kid != ?1 AND retired_at IS NULL",
                params![kid, self.now()],
            )
            .map(|_| ())
        })
    }

    fn expired_signing_keys(
        &self,
        max_ttl_secs: i64,
    ) -> Result<Vec<String>, crate::store::StoreError> {
        self.with_conn(|c| {
            let mut s = c.prepare("SELECT kid FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at + ?1 < ?2")?;
            let v = s
                .query_map(params![max_ttl_secs, self.now()], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>();
            v
        })
    }

    /// Every key ever made, `(kid, x)`, for verifying old checkpoints.
    pub fn all_signing_keys(&self) -> Result<Vec<(String, String)>, crate::store::StoreError> {
        self.with_conn(|c| {
            let mut s = c.prepare("SELECT kid, public_x FROM signing_keys ORDER BY created_at")?;
            let v = s
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>();
            v
        })
    }

    fn published_signing_keys(
        &self,
        max_ttl_secs: i64,
    ) -> Result<Vec<(String, String)>, crate::store::StoreError> {
        self.with_conn(|c| {
            let mut s = c.prepare_cached(
                "SELECT kid, public_x FROM signing_keys WHERE retired_at IS NULL OR retired_at + ?1 >= ?2
                 ORDER BY retired_at IS NOT NULL, created_at DESC, rowid DESC",
            )?;
            let v = s
                .query_map(params![max_ttl_secs, self.now()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>();
            v
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_follows_rfc_8037_appendix_a3() {
        // RFC 8037 A.3: the thumbprint of the A.1 public key.
        let x = B64
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("x");
        assert_eq!(
            thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}

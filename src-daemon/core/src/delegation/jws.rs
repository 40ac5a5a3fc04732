//! Delegation tokens on the wire: compact JWS (RFC 7515) carrying a JWT
//! (RFC 7519) with RFC 8693 `act` claims, signed with Ed25519 (`EdDSA`,
//! RFC 8037) through ring.
//!
//! The parser is strict because it faces hostile input: exactly three
//! base64url parts without padding, at most 8 KiB, a header with
//! `alg: "EdDSA"` (never `none`, never anything else), our `typ`, a `kid`
//! and no `crit`; the signature is checked before a claim is believed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

/// The `typ` of every delegation token.
pub const TYP: &str = "vk-delegation+jwt";
/// The only algorithm.
pub const ALG: &str = "EdDSA";
/// The longest token accepted.
pub const MAX_LEN: usize = 8 * 1024;

/// Why a token was refused; [`JwsError::reason`] is the stable
/// `data.reason` of `delegation_invalid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not a well-formed compact JWS.
    #[error("not a well-formed delegation token: {0}")]
    Format(String),
    /// `alg` is not `EdDSA`.
    #[error("algorithm {0:?} is not accepted; delegation tokens are signed with EdDSA")]
    Alg(String),
    /// `kid` names no key of this broker.
    #[error("key id {0:?} is not one of this broker's keys (see `valetkey jwks`)")]
    Kid(String),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
}

impl JwsError {
    /// The stable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            JwsError::Format(_) => "format",
            JwsError::Alg(_) => "alg",
            JwsError::Kid(_) => "kid",
            JwsError::Signature => "signature",
        }
    }
}

/// The protected header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always `EdDSA`.
    pub alg: String,
    /// Always [`TYP`].
    pub typ: String,
    /// The signing key's RFC 7638 thumbprint.
    pub kid: String,
}

/// One link of the RFC 8693 actor chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `agent:NAME` or `user:NAME`.
    pub sub: String,
    /// The actor before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// The claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// This broker.
    pub iss: String,
    /// This broker's agent socket (single audience).
    pub aud: String,
    /// `agent:SUB_AGENT`.
    pub sub: String,
    /// The delegation chain: the parent, its parent, …, the user.
    pub act: Actor,
    /// Space-separated scopes.
    pub scope: String,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// The root agent's grant.
    pub vk_grant: i64,
    /// The provider.
    pub vk_provider: String,
    /// Depth (1 to 3).
    pub vk_depth: u32,
    /// Depth limit of the chain.
    pub vk_max_depth: u32,
    /// The parent token's id, if the issuer was itself delegated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vk_parent: Option<String>,
}

impl Claims {
    /// The chain outermost first: `user:…`, `agent:ROOT`, …, `agent:SUB`.
    pub fn chain(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut a = Some(&self.act);
        while let Some(x) = a {
            v.push(x.sub.clone());
            a = x.act.as_deref();
        }
        v.reverse();
        v.push(self.sub.clone());
        v
    }

    /// The `act` claim for a chain (outermost first, without the subject).
    pub fn act_of(chain: &[String]) -> Option<Actor> {
        chain.iter().fold(None, |inner, sub| {
            Some(Actor {
                sub: sub.clone(),
                act: inner.map(Box::new),
            })
        })
    }
}

/// Signs `claims` with `key`.
pub fn sign(kid: &str, key: &Ed25519KeyPair, claims: &Claims) -> String {
    let header = Header {
        alg: ALG.into(),
        typ: TYP.into(),
        kid: kid.into(),
    };
    // Serializing these plain structs cannot fail.
    let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
    let c = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{h}.{c}");
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn part(s: &str, what: &str) -> Result<Vec<u8>, JwsError> {
    B64.decode(s)
        .map_err(|_| JwsError::Format(format!("the {what} is not base64url without padding")))
}

/// Verifies `token` with the public key `key_of(kid)` returns, and only
/// then decodes its claims. Expiry, audience and subject are the caller's
/// to check.
pub fn verify(token: &str, key_of: impl Fn(&str) -> Option<Vec<u8>>) -> Result<Claims, JwsError> {
    if token.len() > MAX_LEN {
        return Err(JwsError::Format(format!("longer than {MAX_LEN} bytes")));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return Err(JwsError::Format(format!(
            "{} dot-separated parts instead of 3",
            parts.len()
        )));
    };
    let header_bytes = part(h, "header")?;
    // Look at alg first (and alone) so `alg: none` and friends get their
    // own answer even when the rest of the header is odd.
    let raw: serde_json::Value = serde_json::from_slice(&header_bytes)
        .map_err(|_| JwsError::Format("the header is not JSON".into()))?;
    match raw.get("alg").and_then(|a| a.as_str()) {
        Some(ALG) => {}
        Some(other) => return Err(JwsError::Alg(other.into())),
        None => return Err(JwsError::Alg(String::new())),
    }
    let header: Header =
        serde_json::from_value(raw).map_err(|e| JwsError::Format(format!("header: {e}")))?;
    if header.typ != TYP {
        return Err(JwsError::Format(format!("typ must be {TYP}")));
    }
    let key = key_of(&header.kid).ok_or_else(|| JwsError::Kid(header.kid.clone()))?;
    let sig = part(s, "signature")?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| JwsError::Signature)?;
    let claims = part(c, "payload")?;
    serde_json::from_slice(&claims).map_err(|e| JwsError::Format(format!("claims: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::KeyPair;

    fn key() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("gen");
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("parse")
    }

    fn claims() -> Claims {
        let chain = vec!["user:u".to_string(), "agent:a".to_string()];
        Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "agent:b".into(),
            act: Claims::act_of(&chain).expect("chain"),
            scope: "repo:read".into(),
            exp: 10,
            iat: 1,
            nbf: 1,
            jti: "j".into(),
            vk_grant: 1,
            vk_provider: "p".into(),
            vk_depth: 1,
            vk_max_depth: 3,
            vk_parent: None,
        }
    }

    #[test]
    fn signs_verifies_and_keeps_the_chain() {
        let k = key();
        let pk = k.public_key().as_ref().to_vec();
        let t = sign("kid1", &k, &claims());
        let c = verify(&t, |kid| (kid == "kid1").then(|| pk.clone())).expect("verifies");
        assert_eq!(c.chain(), ["user:u", "agent:a", "agent:b"]);
        assert_eq!(c.act.sub, "agent:a", "the nearest actor is the outer act");
    }

    #[test]
    fn hostile_tokens_get_their_own_reason() {
        let k = key();
        let pk = k.public_key().as_ref().to_vec();
        let good = sign("kid1", &k, &claims());
        let key_of = |kid: &str| (kid == "kid1").then(|| pk.clone());
        let parts: Vec<&str> = good.split('.').collect();

        let none = B64.encode(br#"{"alg":"none","typ":"vk-delegation+jwt","kid":"kid1"}"#);
        let e = verify(&format!("{none}.{}.", parts[1]), key_of).expect_err("alg none");
        assert_eq!(e.reason(), "alg");

        let other = sign("kid2", &key(), &claims());
        assert_eq!(verify(&other, key_of).expect_err("kid").reason(), "kid");

        let mut forged = claims();
        forged.scope = "repo:read repo:write".into();
        let body = B64.encode(serde_json::to_vec(&forged).expect("json"));
        let e = verify(&format!("{}.{body}.{}", parts[0], parts[2]), key_of).expect_err("forged");
        assert_eq!(e.reason(), "signature");

        for bad in ["", "a.b", "a.b.c.d", "!!.x.y", &"a".repeat(MAX_LEN + 1)] {
            assert_eq!(
                verify(bad, key_of).expect_err("format").reason(),
                "format",
                "{bad:.20}"
            );
        }
    }
}

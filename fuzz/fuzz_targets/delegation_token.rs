//! The delegation-token parser (`delegation::jws::verify`), two ways:
//! the raw input as a token, and the input's two halves as header and
//! claims that are then validly signed, so the claim parsing behind the
//! signature check is reached too. Invariants: no panic; a token that
//! verifies was signed by our key over exactly its first two parts.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use valetkey_core::delegation::jws::verify;

fn key() -> &'static Ed25519KeyPair {
    static K: OnceLock<Ed25519KeyPair> = OnceLock::new();
    K.get_or_init(|| {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("gen");
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("key")
    })
}

fuzz_target!(|data: &[u8]| {
    let public = key().public_key().as_ref().to_vec();
    let key_of = |_: &str| Some(public.clone());
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = verify(s, key_of);
    }
    let mid = data.len() / 2;
    let (h, c) = data.split_at(mid);
    let input = format!("{}.{}", B64.encode(h), B64.encode(c));
    let sig = key().sign(input.as_bytes());
    let token = format!("{input}.{}", B64.encode(sig.as_ref()));
    if verify(&token, key_of).is_ok() {
        // Only JSON objects with our header can get this far.
        let header: serde_json::Value = serde_json::from_slice(h).expect("verified header is JSON");
        assert_eq!(header["alg"], "EdDSA");
    }
});

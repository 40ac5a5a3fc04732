//! `valetkey audit verify`: walks the chain from its first record and
//! reports the first sequence number where it breaks.
//!
//! A record is broken when its id is not the previous one plus one (a row
//! was deleted), its `prev` is not the previous record's hash (deleted or
//! reordered), its own hash does not match its contents (edited), or it
//! differs from a signed checkpoint. A checkpoint beyond the last record
//! means the log was truncated. A log that does not start at 1 must start
//! at a signed checkpoint (retention leaves exactly that).
//!
//! Keys come from the database's key history, or from a JWKS file the
//! user saved earlier (`valetkey jwks > keys.json`), which pins them
//! against someone who can also rewrite the database.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ED25519};

use crate::store::{AuditRecord, Checkpoint, Store, StoreError, GENESIS};

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Broken {
    /// The first bad sequence number.
    pub seq: i64,
    /// What is wrong there.
    pub reason: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Records checked.
    pub records: u64,
    /// First and last sequence numbers.
    pub first: Option<i64>,
    /// Last sequence number.
    pub last: Option<i64>,
    /// Signed checkpoints whose signature verified.
    pub checkpoints: u64,
    /// The newest of them.
    pub last_checkpoint: Option<i64>,
    /// Records after the newest checkpoint (chained, not yet signed).
    pub unsigned_tail: u64,
    /// The first break, if any.
    pub broken: Option<Broken>,
}

/// Public keys by kid (raw 32-byte Ed25519).
pub type Keys = HashMap<String, Vec<u8>>;

/// The broker's id as it appears in checkpoint messages.
fn broker(store: &Store) -> Result<String, StoreError> {
    Ok(format!(
        "urn:valetkey:broker:{}",
        store.meta("broker_id")?.unwrap_or_default()
    ))
}

fn signature_ok(c: &Checkpoint, broker: &str, keys: &Keys) -> bool {
    let (Some(key), Ok(sig)) = (keys.get(&c.kid), B64.decode(&c.sig)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&Checkpoint::message(broker, c.seq, &c.hash, c.ts), &sig)
        .is_ok()
}

struct Walk<'a> {
    cps: HashMap<i64, &'a Checkpoint>,
    prev: Option<(i64, String)>,
}

impl Walk<'_> {
    fn step(&mut self, r: &AuditRecord) -> Result<(), Broken> {
        let bad = |seq, reason: String| Err(Broken { seq, reason });
        match &self.prev {
            None if r.id == 1 => {
                if r.prev != GENESIS {
                    return bad(1, "the first record does not start the chain".into());
                }
            }
            None => match self.cps.get(&r.id) {
                Some(c) if c.hash == r.hash => {}
                _ => {
                    return bad(
                        r.id,
                        format!(
                            "records before {} are missing and no signed checkpoint anchors {}",
                            r.id, r.id
                        ),
                    )
                }
            },
            Some((id, hash)) => {
                if r.id != id + 1 {
                    return bad(id + 1, format!("record {} is missing", id + 1));
                }
                if &r.prev != hash {
                    return bad(
                        r.id,
                        format!("its prev is not the hash of record {id} (deleted or reordered)"),
                    );
                }
            }
        }
        if crate::store::audit_hash(r) != r.hash {
            return bad(r.id, "its contents do not match its hash (edited)".into());
        }
        if let Some(c) = self.cps.get(&r.id) {
            if c.hash != r.hash {
                return bad(r.id, "it differs from the signed checkpoint".into());
            }
        }
        self.prev = Some((r.id, r.hash.clone()));
        Ok(())
    }
}

/// Verifies the whole log in `store` against `keys`.
pub fn verify(store: &Store, keys: &Keys) -> Result<Report, StoreError> {
    let broker = broker(store)?;
    let all = store.checkpoints()?;
    let mut report = Report::default();
    let mut valid = Vec::new();
    for c in &all {
        if !signature_ok(c, &broker, keys) {
            report.broken = Some(Broken {
                seq: c.seq,
                reason: format!(
                    "the checkpoint at {} has no valid signature from a known broker key ({})",
                    c.seq, c.kid
                ),
            });
            return Ok(report);
        }
        valid.push(c);
    }
    let mut walk = Walk {
        cps: valid.iter().map(|c| (c.seq, *c)).collect(),
        prev: None,
    };
    let mut from = 0;
    loop {
        let page = store.audit_range(from, 1000)?;
        let Some(last) = page.last() else { break };
        from = last.id + 1;
        for r in &page {
            report.first.get_or_insert(r.id);
            if let Err(b) = walk.step(r) {
                report.broken = Some(b);
                return Ok(report);
            }
            report.records += 1;
            report.last = Some(r.id);
        }
    }
    let first = report.first.unwrap_or(0);
    let signed: Vec<&&Checkpoint> = valid.iter().filter(|c| c.seq >= first).collect();
    report.checkpoints = signed.len() as u64;
    report.last_checkpoint = signed.last().map(|c| c.seq);
    let last = report.last.unwrap_or(0);
    if let Some(c) = signed.iter().find(|c| c.seq > last) {
        report.broken = Some(Broken {
            seq: last + 1,
            reason: format!(
                "truncated: a checkpoint signed record {} but the log ends at {last}",
                c.seq
            ),
        });
        return Ok(report);
    }
    report.unsigned_tail = (last - report.last_checkpoint.unwrap_or(first - 1)).max(0) as u64;
    Ok(report)
}

/// Every key the broker ever had, from the database.
pub fn keys_from_store(store: &Store) -> Result<Keys, StoreError> {
    Ok(store
        .all_signing_keys()?
        .into_iter()
        .filter_map(|(kid, x)| Some((kid, B64.decode(x).ok()?)))
        .collect())
}

/// Keys from a JWKS document (`valetkey jwks` output).
pub fn keys_from_jwks(text: &str) -> Result<Keys, String> {
    let set: valetkey_ipc::methods::JwkSet =
        serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|k| Some((k.kid, B64.decode(k.x).ok()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditRecord;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    struct Log {
        store: Store,
        key: Ed25519KeyPair,
        keys: Keys,
    }

    fn log(n: usize) -> Log {
        let store = Store::open_in_memory(crate::clock::fixed::clock()).expect("db");
        store.meta_or_init("broker_id", || "b1".into()).expect("id");
        for i in 0..n {
            store
                .append_audit(&AuditRecord {
                    kind: "token.get".into(),
                    chain: vec!["user:u".into(), format!("agent:a{i}")],
                    agent: Some(format!("a{i}")),
                    scopes: vec!["repo".into()],
                    outcome: "issued".into(),
                    ..Default::default()
                })
                .expect("append");
        }
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("gen");
        let key = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("key");
        let keys = Keys::from([("k1".to_string(), key.public_key().as_ref().to_vec())]);
        Log { store, key, keys }
    }

    impl Log {
        fn hello(&self) {
            self.store
                .append_audit(&AuditRecord {
                    kind: "hello".into(),
                    outcome: "accepted".into(),
                    ..Default::default()
                })
                .expect("append");
        }

        fn checkpoint(&self) {
            let (seq, hash) = self.store.audit_head().expect("head").expect("rows");
            let ts = self.store.now();
            let sig = self.key.sign(&Checkpoint::message(
                "urn:valetkey:broker:b1",
                seq,
                &hash,
                ts,
            ));
            self.store
                .add_checkpoint(&Checkpoint {
                    seq,
                    hash,
                    ts,
                    kid: "k1".into(),
                    sig: B64.encode(sig.as_ref()),
                })
                .expect("cp");
        }

        fn sql(&self, sql: &str) {
            self.store.with_conn(|c| c.execute_batch(sql)).expect("sql");
        }

        fn broken(&self) -> Option<i64> {
            verify(&self.store, &self.keys)
                .expect("verify")
                .broken
                .map(|b| b.seq)
        }
    }

    #[test]
    fn an_untouched_log_verifies_with_its_checkpoint() {
        let l = log(10);
        l.checkpoint();
        let r = verify(&l.store, &l.keys).expect("verify");
        assert_eq!(r.broken, None, "{r:?}");
        assert_eq!((r.records, r.checkpoints, r.unsigned_tail), (10, 1, 0));
        // Records keep chaining after the checkpoint.
        l.hello();
        let r = verify(&l.store, &l.keys).expect("verify");
        assert_eq!((r.broken, r.unsigned_tail), (None, 1));
    }

    #[test]
    fn an_edited_row_is_reported_at_its_sequence_number() {
        let l = log(10);
        l.sql("UPDATE audit SET outcome = 'refused:consent_denied' WHERE id = 4");
        assert_eq!(l.broken(), Some(4));
    }

    #[test]
    fn an_edit_that_also_fixes_its_own_hash_breaks_the_next_link() {
        let l = log(10);
        let mut r = l.store.audit_range(6, 1).expect("row").remove(0);
        r.scopes = vec!["admin:org".into()];
        let h = crate::store::audit_hash(&r);
        l.sql(&format!(
            "UPDATE audit SET scopes = 'admin:org', hash = '{h}' WHERE id = 6"
        ));
        assert_eq!(l.broken(), Some(7));
    }

    #[test]
    fn a_deleted_row_is_reported() {
        let l = log(10);
        l.sql("DELETE FROM audit WHERE id = 5");
        assert_eq!(l.broken(), Some(5));
    }

    #[test]
    fn reordered_rows_are_reported() {
        let l = log(10);
        // Swap the contents of 3 and 4, keeping the ids.
        l.sql(
            "UPDATE audit SET id = -3 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = 4;
             UPDATE audit SET id = 4 WHERE id = -3;",
        );
        assert_eq!(l.broken(), Some(3));
    }

    #[test]
    fn truncation_is_visible_only_through_a_checkpoint() {
        let l = log(10);
        l.checkpoint();
        l.sql("DELETE FROM audit WHERE id > 7");
        let r = verify(&l.store, &l.keys).expect("verify");
        let b = r.broken.expect("broken");
        assert_eq!(b.seq, 8);
        assert!(b.reason.contains("truncated"), "{b:?}");
    }

    #[test]
    fn a_forged_checkpoint_is_refused() {
        let l = log(3);
        l.checkpoint();
        l.sql("UPDATE audit_checkpoints SET seq = 2");
        assert_eq!(l.broken(), Some(2));
        let other = log(3);
        other.checkpoint();
        // Right signature shape, unknown key.
        assert!(verify(&other.store, &Keys::new())
            .expect("verify")
            .broken
            .is_some());
    }

    #[test]
    fn retention_prunes_to_a_checkpoint_and_the_rest_still_verifies() {
        let l = log(10);
        l.checkpoint(); // at 10
        for _ in 0..5 {
            l.hello();
        }
        // Everything so far is "old".
        let deleted = l.store.prune_audit(l.store.now() + 10).expect("prune");
        assert_eq!(deleted, 9, "records 1..9 go, 10 stays as the anchor");
        let r = verify(&l.store, &l.keys).expect("verify");
        assert_eq!(r.broken, None, "{r:?}");
        assert_eq!((r.first, r.last, r.records), (Some(10), Some(15), 6));
        // Without the anchor checkpoint the cut is reported.
        l.sql("DELETE FROM audit_checkpoints");
        assert_eq!(l.broken(), Some(10));
    }

    #[test]
    fn nothing_is_pruned_without_a_checkpoint() {
        let l = log(5);
        assert_eq!(l.store.prune_audit(l.store.now() + 10).expect("prune"), 0);
        assert_eq!(l.broken(), None);
    }
}

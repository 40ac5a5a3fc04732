//! The audit trail's table: append-only, one row per event, each holding
//! the SHA-256 of the row before it (`prev`) and of itself (`hash`), so an
//! edited, deleted or reordered row breaks the chain at a known sequence
//! number. Signed checkpoints (rows of `audit_checkpoints`, made by
//! [`crate::audit::checkpoint`]) pin the chain's head, which makes
//! truncation visible and lets retention delete old rows while the rest
//! still verifies from the checkpoint it starts at.
//!
//! The hash covers every column, in a fixed canonical JSON encoding
//! ([`canonical`]), so a verifier in any language can recompute it. Never
//! holds a token.

use rusqlite::{params, OptionalExtension, Row};

use super::{Store, StoreError};
pub use valetkey_ipc::audit::AuditRecord;

/// The `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The bytes hashed for `r`: a JSON array of every field but `hash`, in
/// declaration order, scopes space-joined. Documented in `docs/AUDIT.md`.
pub fn canonical(r: &AuditRecord) -> Vec<u8> {
    // Serialized straight from the record (no `serde_json::Value` tree in
    // between): the same bytes as a `json!([...])` of these fields, at a
    // fraction of the cost on the per-request path.
    struct Canon<'a>(&'a AuditRecord);
    impl serde::Serialize for Canon<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let r = self.0;
            let mut q = s.serialize_seq(Some(19))?;
            q.serialize_element(&r.id)?;
            q.serialize_element(&r.ts)?;
            q.serialize_element(&r.kind)?;
            q.serialize_element(&r.chain)?;
            q.serialize_element(&r.agent)?;
            q.serialize_element(&r.pid)?;
            q.serialize_element(&r.binary_sha256)?;
            q.serialize_element(&r.provider)?;
            q.serialize_element(&r.scopes.join(" "))?;
            q.serialize_element(&r.granted.join(" "))?;
            q.serialize_element(&r.consent_id)?;
            q.serialize_element(&r.action)?;
            q.serialize_element(&r.resource_owner)?;
            q.serialize_element(&r.verdict)?;
            q.serialize_element(&r.rule)?;
            q.serialize_element(&r.reasons)?;
            q.serialize_element(&r.outcome)?;
            q.serialize_element(&r.detail)?;
            q.serialize_element(&r.prev)?;
            q.end()
        }
    }
    serde_json::to_vec(&Canon(r)).unwrap_or_default()
}

/// Hex SHA-256 of `r`'s canonical form.
pub fn hash_of(r: &AuditRecord) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, &canonical(r)).as_ref())
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    // A table, not `format!` per byte: this runs for every audit record,
    // and the formatting machinery cost ~30k instructions per hash.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 0xf)] as char);
    }
    s
}

/// Which records a query returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Acting, or anywhere in the chain.
    pub agent: Option<String>,
    /// This provider only.
    pub provider: Option<String>,
    /// This kind only.
    pub kind: Option<String>,
    /// At or after (Unix seconds).
    pub since: Option<i64>,
    /// At or before (Unix seconds).
    pub until: Option<i64>,
    /// With an id above this (for paging in ascending order).
    pub after_id: Option<i64>,
}

/// A signed statement that the chain's record `seq` has hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The record it covers (all before it are chained into its hash).
    pub seq: i64,
    /// That record's hash.
    pub hash: String,
    /// When it was signed.
    pub ts: i64,
    /// The broker key that signed (RFC 7638 thumbprint).
    pub kid: String,
    /// base64url Ed25519 signature over [`Checkpoint::message`].
    pub sig: String,
}

impl Checkpoint {
    /// The signed bytes: `valetkey-audit-checkpoint/v1`, the broker id,
    /// seq, hash and ts, separated by newlines.
    pub fn message(broker: &str, seq: i64, hash: &str, ts: i64) -> Vec<u8> {
        format!("valetkey-audit-checkpoint/v1\n{broker}\n{seq}\n{hash}\n{ts}").into_bytes()
    }
}

const COLUMNS: &str = "id, ts, kind, chain, agent, pid, binary_sha256, provider, scopes, granted, consent_id, action, resource_owner, verdict, rule, reasons, outcome, detail, prev, hash";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let words = |i: usize| -> rusqlite::Result<Vec<String>> {
        Ok(r.get::<_, Option<String>>(i)?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    };
    let json = |i: usize| -> rusqlite::Result<Vec<String>> {
        Ok(
            serde_json::from_str(&r.get::<_, Option<String>>(i)?.unwrap_or_default())
                .unwrap_or_default(),
        )
    };
    Ok(AuditRecord {
        id: r.get(0)?,
        ts: r.get(1)?,
        kind: r.get(2)?,
        chain: json(3)?,
        agent: r.get(4)?,
        pid: r.get(5)?,
        binary_sha256: r.get(6)?,
        provider: r.get(7)?,
        scopes: words(8)?,
        granted: words(9)?,
        consent_id: r.get(10)?,
        action: r.get(11)?,
        resource_owner: r.get(12)?,
        verdict: r.get(13)?,
        rule: r.get(14)?,
        reasons: json(15)?,
        outcome: r.get(16)?,
        detail: r.get(17)?,
        prev: r.get::<_, Option<String>>(18)?.unwrap_or_default(),
        hash: r.get::<_, Option<String>>(19)?.unwrap_or_default(),
    })
}

fn insert(c: &rusqlite::Connection, r: &AuditRecord) -> rusqlite::Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO audit ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
    ))?
    .execute(params![
        r.id,
        r.ts,
        r.kind,
        serde_json::to_string(&r.chain).unwrap_or_default(),
        r.agent,
        r.pid,
        r.binary_sha256,
        r.provider,
        r.scopes.join(" "),
        r.granted.join(" "),
        r.consent_id,
        r.action,
        r.resource_owner,
        r.verdict,
        r.rule,
        serde_json::to_string(&r.reasons).unwrap_or_default(),
        r.outcome,
        r.detail,
        r.prev,
        r.hash,
    ])?;
    Ok(())
}

impl Store {
    /// Appends a record to the chain, returning it as stored (id, ts,
    /// prev and hash filled in). The head is read and the row written in
    /// one transaction, so concurrent writers (the CLI) cannot fork it.
    pub fn append_audit(&self, r: &AuditRecord) -> Result<AuditRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let head: Option<(i64, Option<String>)> = tx
            .prepare_cached("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let mut rec = r.clone();
        let (last, prev) = head.unwrap_or((0, None));
        rec.id = last + 1;
        rec.ts = self.now();
        rec.prev = prev.unwrap_or_else(|| GENESIS.to_owned());
        rec.hash = hash_of(&rec);
        insert(&tx, &rec)?;
        tx.commit()?;
        Ok(rec)
    }

    /// Chains rows written before the chain existed (schema 3), once.
    #[cfg(any(test, feature = "writer"))]
    pub(super) fn chain_legacy_audit(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let legacy: Vec<AuditRecord> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM audit WHERE hash IS NULL ORDER BY id"
            ))?;
            let v = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
            v
        };
        if legacy.is_empty() {
            return Ok(());
        }
        let mut prev = GENESIS.to_owned();
        for mut r in legacy {
            r.prev = prev;
            r.hash = hash_of(&r);
            tx.execute(
                "UPDATE audit SET prev = ?2, hash = ?3, granted = COALESCE(granted, '') WHERE id = ?1",
                params![r.id, r.prev, r.hash],
            )?;
            prev = r.hash;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records matching `f`: the newest `limit`, newest first, or (with
    /// `ascending`) the oldest `limit`, oldest first.
    pub fn query_audit(
        &self,
        f: &AuditFilter,
        limit: u32,
        ascending: bool,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {COLUMNS} FROM audit
             WHERE (?2 IS NULL OR agent = ?2 OR instr(chain, '\"agent:' || ?2 || '\"') > 0)
               AND (?3 IS NULL OR provider = ?3)
               AND (?4 IS NULL OR kind = ?4)
               AND (?5 IS NULL OR ts >= ?5)
               AND (?6 IS NULL OR ts <= ?6)
               AND (?7 IS NULL OR id > ?7)
             ORDER BY id {} LIMIT ?1",
            if ascending { "ASC" } else { "DESC" }
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(
                params![limit, f.agent, f.provider, f.kind, f.since, f.until, f.after_id],
                from_row,
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Records with ids in `[from, from + limit)`, in order (for verify).
    pub fn audit_range(&self, from: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit WHERE id >= ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![from, limit], from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The head: the last record's id and hash.
    pub fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let conn = self.conn();
        let v = conn
            .prepare_cached("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(v)
    }

    /// The providers and scopes `agent` was issued tokens for, in records
    /// before `before` (the newest 5,000), for the monitor's `first_use`.
    pub fn used_scopes(
        &self,
        agent: &str,
        before: i64,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT provider, granted FROM (
                SELECT provider, granted FROM audit
                WHERE agent = ?1 AND kind = 'token.get' AND outcome = 'issued' AND id < ?2
                ORDER BY id DESC LIMIT 5000)",
        )?;
        let rows = stmt
            .query_map(params![agent, before], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.get::<_, Option<String>>(1)?
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect(),
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Stores a checkpoint.
    pub fn add_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, ts, kid, sig) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.seq, c.hash, c.ts, c.kid, c.sig],
        )?;
        Ok(())
    }

    /// The newest checkpoint's sequence number.
    pub fn last_checkpoint_seq(&self) -> Result<Option<i64>, StoreError> {
        let v = self
            .conn()
            .prepare_cached("SELECT MAX(seq) FROM audit_checkpoints")?
            .query_row([], |r| r.get(0))?;
        Ok(v)
    }

    /// Every checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT seq, hash, ts, kid, sig FROM audit_checkpoints ORDER BY seq")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Checkpoint {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                    ts: r.get(2)?,
                    kid: r.get(3)?,
                    sig: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Retention: deletes the records before the newest checkpoint whose
    /// record is older than `cutoff` (Unix seconds). That checkpointed
    /// record stays as the new first row, so the rest still verifies from
    /// its signature. Returns how many were deleted.
    pub fn prune_audit(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let anchor: Option<i64> = tx
            .query_row(
                "SELECT MAX(c.seq) FROM audit_checkpoints c JOIN audit a ON a.id = c.seq AND a.hash = c.hash
                 WHERE a.ts < ?1",
                [cutoff],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(anchor) = anchor else {
            return Ok(0);
        };
        let n = tx.execute("DELETE FROM audit WHERE id < ?1", [anchor])?;
        tx.execute("DELETE FROM audit_checkpoints WHERE seq < ?1", [anchor])?;
        tx.commit()?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The form every existing chain was hashed with; `canonical` must
    /// keep producing exactly these bytes or old chains stop verifying.
    fn reference(r: &AuditRecord) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([
            r.id,
            r.ts,
            r.kind,
            r.chain,
            r.agent,
            r.pid,
            r.binary_sha256,
            r.provider,
            r.scopes.join(" "),
            r.granted.join(" "),
            r.consent_id,
            r.action,
            r.resource_owner,
            r.verdict,
            r.rule,
            r.reasons,
            r.outcome,
            r.detail,
            r.prev,
        ]))
        .expect("json")
    }

    #[test]
    fn canonical_bytes_match_the_documented_form() {
        let full = AuditRecord {
            id: 42,
            ts: 1_790_000_000,
            kind: "token.get".into(),
            chain: vec!["user:uid1000".into(), "agent:a \"quoted\"".into()],
            agent: Some("a".into()),
            pid: Some(4242),
            binary_sha256: Some("ab".repeat(32)),
            provider: Some("github".into()),
            scopes: vec!["repo:read".into(), "issues:read".into()],
            granted: vec!["repo:read".into()],
            consent_id: Some("c_1".into()),
            action: Some("read".into()),
            resource_owner: Some("octo\u{e9}".into()),
            verdict: Some("allow".into()),
            rule: Some("grant".into()),
            reasons: vec!["in grant".into(), "line\nbreak".into()],
            outcome: "issued".into(),
            detail: Some("cached".into()),
            prev: "00".repeat(32),
            hash: String::new(),
        };
        for r in [full, AuditRecord::default()] {
            assert_eq!(canonical(&r), reference(&r));
        }
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}

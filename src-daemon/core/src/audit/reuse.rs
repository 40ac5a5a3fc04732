//! Repeat hand-outs, counted instead of written one by one.
//!
//! The rule (a product decision; `docs/AUDIT.md` states it for users):
//!
//! * the first hand-out of a cached access token to a connection (one
//!   agent, binary and pid) is written durably before the token is sent;
//! * later hand-outs of that same token on that same connection are
//!   counted here, in memory;
//! * the count becomes one `token.reused` record (how many, first and last
//!   time) when the token leaves the cache, when the connection closes, or
//!   every 60 s, whichever comes first.
//!
//! So a crash can lose at most these counters: never a first issuance, a
//! refusal, or any other record. Repeats are what a busy agent does all
//! day; writing each one durably cost most of a cached hand-out.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Mutex;

use crate::store::AuditRecord;

/// How often every counter is written, at the latest.
pub const FLUSH_EVERY_SECS: i64 = 60;

struct Entry {
    /// The first issuance's record, as written (its facts head each
    /// `token.reused` record).
    first: AuditRecord,
    /// Repeats since the last write.
    count: u64,
    /// The first and last repeat since then.
    since: i64,
    last: i64,
}

/// Counters by (token, connection).
#[derive(Default)]
pub struct Reuse {
    map: Mutex<HashMap<(u64, u64), Entry>>,
}

fn record_of(e: &Entry) -> AuditRecord {
    let mut r = e.first.clone();
    r.id = 0;
    r.ts = 0;
    r.prev = String::new();
    r.hash = String::new();
    r.kind = "token.reused".into();
    r.outcome = "reused".into();
    r.consent_id = None;
    r.detail = Some(format!(
        "{} more hand-out(s) of the token first issued in record {}, from {} to {}",
        e.count,
        e.first.id,
        crate::timefmt::when(Some(e.since)),
        crate::timefmt::when(Some(e.last))
    ));
    r
}

impl Reuse {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a hand-out of `token` on `conn` at `now` if it is a repeat;
    /// false when it is the first (the caller writes it, then calls
    /// [`Reuse::first`]).
    pub fn repeat(&self, token: u64, conn: u64, now: i64) -> bool {
        match self.lock().get_mut(&(token, conn)) {
            Some(e) => {
                if e.count == 0 {
                    e.since = now;
                }
                e.count += 1;
                e.last = now;
                true
            }
            None => false,
        }
    }

    /// Notes the first issuance of `token` on `conn`, as written.
    pub fn first(&self, token: u64, conn: u64, written: AuditRecord) {
        self.lock().insert(
            (token, conn),
            Entry {
                first: written,
                count: 0,
                since: 0,
                last: 0,
            },
        );
    }

    /// The records for counters matching `gone`, which are forgotten.
    fn take(&self, gone: impl Fn(u64, u64) -> bool) -> Vec<AuditRecord> {
        let mut map = self.lock();
        let keys: Vec<(u64, u64)> = map.keys().filter(|(t, c)| gone(*t, *c)).copied().collect();
        keys.iter()
            .filter_map(|k| map.remove(k))
            .filter(|e| e.count > 0)
            .map(|e| record_of(&e))
            .collect()
    }

    /// The tokens with these ids left the cache: their records.
    pub fn tokens_left(&self, tokens: &[u64]) -> Vec<AuditRecord> {
        if tokens.is_empty() {
            return vec![];
        }
        self.take(|t, _| tokens.contains(&t))
    }

    /// Connection `conn` closed: its records.
    pub fn connection_closed(&self, conn: u64) -> Vec<AuditRecord> {
        self.take(|_, c| c == conn)
    }

    /// Every counter with repeats, written now (the entries stay: a later
    /// hand-out on the same connection is still a repeat).
    pub fn due(&self) -> Vec<AuditRecord> {
        let mut map = self.lock();
        map.values_mut()
            .filter(|e| e.count > 0)
            .map(|e| {
                let r = record_of(e);
                e.count = 0;
                r
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::fixed::MONDAY_MORNING as T;

    fn issued(id: i64) -> AuditRecord {
        AuditRecord {
            id,
            kind: "token.get".into(),
            agent: Some("a".into()),
            outcome: "issued".into(),
            granted: vec!["repo:read".into()],
            consent_id: Some("c_1".into()),
            hash: "h".into(),
            ..Default::default()
        }
    }

    #[test]
    fn first_is_written_repeats_are_counted_and_flushed_once() {
        let r = Reuse::default();
        assert!(!r.repeat(7, 1, T), "the first hand-out is not a repeat");
        r.first(7, 1, issued(41));
        for i in 0..5 {
            assert!(r.repeat(7, 1, T + i));
        }
        assert!(!r.repeat(7, 2, T), "another connection's first hand-out");
        assert!(!r.repeat(8, 1, T), "another token's first hand-out");
        let recs = r.due();
        assert_eq!(recs.len(), 1);
        let rec = &recs[0];
        assert_eq!(
            (rec.kind.as_str(), rec.outcome.as_str()),
            ("token.reused", "reused")
        );
        assert_eq!(rec.granted, vec!["repo:read"]);
        assert_eq!(
            (rec.id, rec.hash.as_str(), rec.consent_id.as_deref()),
            (0, "", None)
        );
        let d = rec.detail.as_deref().unwrap_or("");
        assert!(
            d.starts_with("5 more hand-out(s)") && d.contains("record 41"),
            "{d}"
        );
        assert!(
            d.contains("2026-03-02T09:00:00Z to 2026-03-02T09:00:04Z"),
            "{d}"
        );
        assert!(r.due().is_empty(), "written once");
        assert!(r.repeat(7, 1, T + 100), "still a repeat after a flush");
        assert_eq!(r.connection_closed(1).len(), 1);
        assert!(!r.repeat(7, 1, T + 101), "a closed connection starts over");
    }

    #[test]
    fn a_token_leaving_the_cache_flushes_its_counters_only() {
        let r = Reuse::default();
        for (tok, conn) in [(1, 1), (1, 2), (2, 1)] {
            r.first(tok, conn, issued(1));
            r.repeat(tok, conn, T);
        }
        assert!(r.tokens_left(&[]).is_empty());
        assert_eq!(r.tokens_left(&[1]).len(), 2);
        assert!(!r.repeat(1, 1, T), "gone with the token");
        assert!(r.repeat(2, 1, T), "the other token stays");
        assert_eq!(r.due().len(), 1);
    }
}

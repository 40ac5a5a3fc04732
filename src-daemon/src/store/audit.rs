//! The decision log: one row per policy decision, delegation and
//! lifecycle change, each with the whole actor chain (user → agent →
//! sub-agents), so it can say who acted on whose behalf. Never holds a
//! token. (Hash chaining and `valetkey audit verify` build on this table.)

use rusqlite::params;

use super::{now, Store, StoreError};

/// One audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    /// Sequence number (0 before insert).
    pub id: i64,
    /// Unix seconds (0 before insert: filled in).
    pub ts: i64,
    /// `token.get`, `delegation.create`, `delegation.use`, `lifecycle`, `policy.reload`.
    pub kind: String,
    /// Outermost first: `user:…`, `agent:…`, ….
    pub chain: Vec<String>,
    /// The acting agent's name.
    pub agent: Option<String>,
    /// Its pid.
    pub pid: Option<u32>,
    /// Its attested binary.
    pub binary_sha256: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Policy verdict, if the policy ran.
    pub verdict: Option<String>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// Its reasons.
    pub reasons: Vec<String>,
    /// `issued`, `refused:CODE`, `created`, …
    pub outcome: String,
    /// Extra facts for people (never secrets).
    pub detail: Option<String>,
}

impl Store {
    /// Appends a record.
    pub fn append_audit(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        let chain = serde_json::to_string(&r.chain).unwrap_or_default();
        let reasons = serde_json::to_string(&r.reasons).unwrap_or_default();
        let id = self.conn().query_row(
            "INSERT INTO audit (ts, kind, chain, agent, pid, binary_sha256, provider, scopes, verdict, rule, reasons, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
            params![
                now(),
                r.kind,
                chain,
                r.agent,
                r.pid,
                r.binary_sha256,
                r.provider,
                r.scopes.join(" "),
                r.verdict,
                r.rule,
                reasons,
                r.outcome,
                r.detail
            ],
            |row| row.get(0),
        )?;
        Ok(id)
    }

    /// The newest `limit` records, optionally of one agent (acting or in
    /// the chain), newest first.
    pub fn list_audit(
        &self,
        limit: u32,
        agent: Option<&str>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, ts, kind, chain, agent, pid, binary_sha256, provider, scopes, verdict, rule, reasons, outcome, detail
             FROM audit
             WHERE ?2 IS NULL OR agent = ?2 OR instr(chain, '\"agent:' || ?2 || '\"') > 0
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit, agent], |r| {
                let chain: String = r.get(3)?;
                let scopes: String = r.get::<_, Option<String>>(8)?.unwrap_or_default();
                let reasons: String = r.get::<_, Option<String>>(11)?.unwrap_or_default();
                Ok(AuditRecord {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    kind: r.get(2)?,
                    chain: serde_json::from_str(&chain).unwrap_or_default(),
                    agent: r.get(4)?,
                    pid: r.get(5)?,
                    binary_sha256: r.get(6)?,
                    provider: r.get(7)?,
                    scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                    verdict: r.get(9)?,
                    rule: r.get(10)?,
                    reasons: serde_json::from_str(&reasons).unwrap_or_default(),
                    outcome: r.get(12)?,
                    detail: r.get(13)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

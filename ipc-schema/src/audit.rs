//! One record of the audit trail, as `valetkey audit --json`, `audit
//! export` and the control method `audit.query` give it. The daemon
//! writes these; how each is hashed into the chain is in `docs/AUDIT.md`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    /// Sequence number (0 before insert).
    pub id: i64,
    /// Unix seconds (0 before insert: filled in).
    pub ts: i64,
    /// What happened: `connect`, `hello`, `token.get`, `refresh`,
    /// `consent.request`, `consent.decision`, `grant`, `revoke`, `login`,
    /// `logout`, `lifecycle`, `delegation.create`, `delegation.use`,
    /// `policy.reload`, `keys.rotate`, `status`, `anomaly`.
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
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Scopes actually granted (for `token.get`: those of the token).
    #[serde(default)]
    pub granted: Vec<String>,
    /// The consent that decided it, if one did.
    #[serde(default)]
    pub consent_id: Option<String>,
    /// The action as decided (`read`, `write`, `delete`, `admin`).
    #[serde(default)]
    pub action: Option<String>,
    /// Whose data, when the agent declared it.
    #[serde(default)]
    pub resource_owner: Option<String>,
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
    /// SHA-256 (hex) of the previous record; 64 zeros for the first.
    #[serde(default)]
    pub prev: String,
    /// SHA-256 (hex) of this record's canonical form (see `docs/AUDIT.md`).
    #[serde(default)]
    pub hash: String,
}

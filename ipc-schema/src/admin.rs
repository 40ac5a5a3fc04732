//! The control methods through which the CLI changes state: the daemon is
//! the only writer of its database, so `valetkey grant add`, `login` and
//! `logout` ask it (over `control.sock`) instead of writing themselves, and
//! read grants, provider logins and the audit trail the same way.
//! Re-exported from [`crate::control`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::control::GrantView;
use crate::methods::{Method, NoParams};

/// `grants.add`: a standing grant for an agent, bound to a binary.
pub struct GrantsAdd;

/// Params of `grants.add`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsAddParams {
    /// The agent's name (as it says in `hello`).
    pub agent: String,
    /// Provider name.
    pub provider: String,
    /// Scopes to grant (each allowed by the provider's config).
    pub scopes: Vec<String>,
    /// How long the grant lasts, in seconds; absent: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Bind to this executable (the daemon hashes it); absent: the binary
    /// the agent last ran as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
}

/// Result of `grants.add`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GrantsAddResult {
    /// The grant as stored.
    pub grant: GrantView,
    /// The executable it is bound to.
    pub exe: String,
    /// The agent was suspended or deprecated, and this grant made it
    /// active again (recorded as a lifecycle change).
    pub reinstated: bool,
}

impl Method for GrantsAdd {
    const NAME: &'static str = "grants.add";
    type Params = GrantsAddParams;
    type Result = GrantsAddResult;
}

/// `grants.list`: grants, with their agents.
pub struct GrantsList;

/// Params of `grants.list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsListParams {
    /// Only this agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Include expired grants.
    #[serde(default)]
    pub all: bool,
}

/// One grant and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrantEntry {
    /// The agent's name.
    pub agent: String,
    /// The grant.
    pub grant: GrantView,
}

/// Result of `grants.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GrantsListResult {
    /// By agent name, then provider.
    pub grants: Vec<GrantEntry>,
}

impl Method for GrantsList {
    const NAME: &'static str = "grants.list";
    type Params = GrantsListParams;
    type Result = GrantsListResult;
}

/// `login.record`: the CLI finished a login and stored the refresh token
/// in the keychain; the daemon records the login's scopes, drops tokens
/// from the previous login and starts using the new one.
pub struct LoginRecord;

/// Params of `login.record`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRecordParams {
    /// Provider name.
    pub provider: String,
    /// The scopes the provider granted at login.
    pub scopes: Vec<String>,
}

impl Method for LoginRecord {
    const NAME: &'static str = "login.record";
    type Params = LoginRecordParams;
    type Result = ProviderStatus;
}

/// `logout`: revoke the provider's refresh token there (RFC 7009), delete
/// it from the keychain and forget the login.
pub struct Logout;

/// Params of `logout`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutParams {
    /// Provider name.
    pub provider: String,
}

/// What `logout` did at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamRevocation {
    /// There was no refresh token in the keychain.
    NoToken,
    /// The provider revoked it.
    Revoked,
    /// The provider has no revocation endpoint: the token stays valid
    /// there until it expires.
    Unsupported,
    /// Revocation failed (see `error`): the token was deleted here but may
    /// still be valid at the provider.
    Failed,
}

/// Result of `logout`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LogoutResult {
    /// What happened at the provider.
    pub upstream: UpstreamRevocation,
    /// Why revocation failed, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Method for Logout {
    const NAME: &'static str = "logout";
    type Params = LogoutParams;
    type Result = LogoutResult;
}

/// A configured provider and the state of its login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderStatus {
    /// Its name in the config.
    pub name: String,
    /// Its name for people.
    pub display_name: String,
    /// When the last login finished (Unix seconds), if logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_in_at: Option<i64>,
    /// The scopes the login holds.
    pub login_scopes: Vec<String>,
    /// The provider rejected the stored login: log in again.
    pub login_required: bool,
    /// Scopes agents may be granted.
    pub allowed_scopes: Vec<String>,
    /// Whether the provider narrows tokens on refresh.
    pub narrows_on_refresh: bool,
}

/// `providers.status`: every configured provider with its login state.
pub struct ProvidersStatus;

/// Result of `providers.status`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProvidersStatusResult {
    /// By name.
    pub providers: Vec<ProviderStatus>,
}

impl Method for ProvidersStatus {
    const NAME: &'static str = "providers.status";
    type Params = NoParams;
    type Result = ProvidersStatusResult;
}

/// `audit.query`: records of the audit trail, newest first.
pub struct AuditQuery;

/// Params of `audit.query`; every filter is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQueryParams {
    /// Records where this agent acted or is in the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Records about this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Records of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// At or after (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// At or before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// At most this many (1 to 10,000; default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Result of `audit.query`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AuditQueryResult {
    /// Newest first.
    pub records: Vec<AuditRecord>,
}

impl Method for AuditQuery {
    const NAME: &'static str = "audit.query";
    type Params = AuditQueryParams;
    type Result = AuditQueryResult;
}

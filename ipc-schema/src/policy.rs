//! The policy step's contract: the input document every Rego policy sees,
//! and the decision the daemon derives from it.
//!
//! These types are the documentation: `schema/policy-input.json` is
//! generated from them (and checked by a test), and `docs/POLICY.md` walks
//! through them with examples. Field names are part of the contract because
//! user policies refer to them; fields are only ever added.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How sensitive data is, lowest first. An agent's `classification` is the
/// most sensitive data it may touch.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Anyone may see it.
    Public,
    /// Inside the organisation or household (the default).
    #[default]
    Internal,
    /// Need-to-know.
    Confidential,
}

impl Classification {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Classification::Public),
            "internal" => Some(Classification::Internal),
            "confidential" => Some(Classification::Confidential),
            _ => None,
        }
    }
}

/// What a request does, weakest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Reads data.
    Read,
    /// Creates or changes data.
    Write,
    /// Deletes data.
    Delete,
    /// Administers the account or its permissions.
    Admin,
    /// Hands part of the caller's access to a sub-agent (`delegation.create`).
    Delegate,
}

impl Action {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Admin => "admin",
            Action::Delegate => "delegate",
        }
    }

    /// What a scope string implies, by its words: `admin`, `delete`,
    /// `write` (also `create`, `update`, `modify`, `manage`), else `read`.
    pub fn of_scope(scope: &str) -> Action {
        let s = scope.to_ascii_lowercase();
        let has = |w: &[&str]| w.iter().any(|w| s.contains(w));
        if has(&["admin"]) {
            Action::Admin
        } else if has(&["delete", "remove"]) {
            Action::Delete
        } else if has(&["write", "create", "update", "modify", "manage", "insert"]) {
            Action::Write
        } else {
            Action::Read
        }
    }
}

/// The agent as the registry knows it (user-set fields win over what the
/// agent declared in `hello`).
#[derive(Debug, Clone, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyAgent {
    /// Registry id (stable, never reused).
    pub id: i64,
    /// The name it uses in `hello`.
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// The registered purpose, for example `calendar-management`.
    pub purpose: String,
    /// What the agent last declared as its purpose in `hello`.
    pub declared_purpose: String,
    /// `active`, `suspended` or `deprecated`.
    pub status: String,
    /// The attested binary of the calling process.
    pub binary: PolicyBinary,
    /// The most sensitive data this agent may touch.
    pub classification: Classification,
    /// The OS user who owns the agent.
    pub owner: String,
    /// Free text such as `dev` or `prod`.
    pub environment: String,
    /// Tools it may use; empty means any.
    pub tools: Vec<String>,
    /// Providers it may use; empty means any.
    pub providers: Vec<String>,
    /// Same as the top-level `delegating_user` (the seed article's policies
    /// read it here).
    pub delegating_user: String,
    /// When the access asked for would end, in Unix nanoseconds: the grant's
    /// or the delegation's end, or one hour from now for an open-ended grant.
    pub token_expiry_ns: i64,
    /// Whether any requested scope is an admin scope.
    pub has_admin_scope: bool,
    /// Whether the agent runs in a box made by `valetkey run` (false: it
    /// runs with everything the user has, keychain included).
    #[serde(default)]
    pub confined: bool,
    /// The box's facts when `confined`: profile, network, command line,
    /// working directory, program and script with their hashes.
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub confinement: Option<crate::confinement::BoxFacts>,
}

/// The attested binary.
#[derive(Debug, Clone, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyBinary {
    /// Resolved executable path.
    pub path: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// Where the caller sits in a delegation chain.
#[derive(Debug, Clone, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyDelegation {
    /// 0 for an agent acting on its own grant; 1 for its sub-agent, and so
    /// on. For `delegation.create` it is the depth of the token being made.
    pub depth: u32,
    /// The deepest level allowed below the root of this chain.
    pub max_depth: u32,
    /// Everyone on whose behalf the caller acts, outermost first:
    /// `user:NAME`, then `agent:ROOT`, then each sub-agent, ending with the
    /// caller (and, for `delegation.create`, the sub-agent being created).
    pub chain: Vec<String>,
    /// For `delegation.create`: the sub-agent's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_agent: Option<String>,
}

/// What the data is.
#[derive(Debug, Clone, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyResource {
    /// The kind of data, as the agent declared it (`calendar-events`), or
    /// the provider's name when it declared nothing.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whose data: as declared by the agent, else the delegating user.
    pub owner: String,
    /// The stronger of the provider's configured sensitivity and the
    /// agent's declaration.
    pub sensitivity: Classification,
    /// The RFC 8707 resource indicator, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indicator: Option<String>,
}

/// When the request is decided.
#[derive(Debug, Clone, Default, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyTime {
    /// Unix time in nanoseconds (same clock as `time.now_ns()`).
    pub now_ns: i64,
    /// RFC 3339, UTC.
    pub rfc3339: String,
    /// Hour of day, 0 to 23, UTC.
    pub hour_utc: u32,
    /// Day of the week in UTC, `Monday` to `Sunday`.
    pub weekday_utc: String,
}

/// Whether a person approved this very request.
#[derive(Debug, Clone, Default, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HumanApproval {
    /// True only while re-deciding a request the user just approved.
    pub exists: bool,
    /// The consent the approval came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
}

/// Counters about the caller.
#[derive(Debug, Clone, Default, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestStats {
    /// Requests this agent made in the last 60 seconds, this one included.
    pub rate_last_minute: u32,
    /// The protocol method: `token.get` or `delegation.create`.
    pub method: String,
}

/// The input document: `input` in every policy.
#[derive(Debug, Clone, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyInput {
    /// The calling agent.
    pub agent: PolicyAgent,
    /// The OS user on whose behalf every agent acts (`user:` prefix omitted).
    pub delegating_user: String,
    /// The delegation chain.
    pub delegation: PolicyDelegation,
    /// Provider name, as in `config.toml`.
    pub provider: String,
    /// The strongest action the request implies: derived from the scopes,
    /// raised (never lowered) by the agent's declared action.
    pub action: Action,
    /// The scopes asked for, sorted.
    pub scopes: Vec<String>,
    /// What the data is.
    pub resource: PolicyResource,
    /// The tool the agent says it calls (`google-calendar-api:events.insert`),
    /// or an empty string.
    pub tool: String,
    /// When.
    pub time: PolicyTime,
    /// A person's approval of this request.
    pub human_approval: HumanApproval,
    /// Counters.
    pub request: RequestStats,
    /// For a request to a remote MCP server through Valet Key's proxy
    /// (`valetkey mcp proxy`, or a box's egress proxy): what the daemon
    /// read in the JSON-RPC message itself. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<PolicyMcp>,
}

/// An MCP request as the proxy saw it (observed, not declared).
#[derive(Debug, Clone, PartialEq, Hash, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyMcp {
    /// The server's name (`valetkey mcp add NAME`), also `provider`.
    pub server: String,
    /// Its MCP endpoint.
    pub url: String,
    /// The JSON-RPC method: `initialize`, `tools/list`, `tools/call`, …
    /// (empty for a GET or DELETE of the endpoint).
    pub method: String,
    /// For `tools/call`, the tool's name; otherwise absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// The outcome of the policy step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go on to grants and consent as usual.
    Allow,
    /// Refuse (`policy_denied`).
    Deny,
    /// Ask the user about this very request, even with a standing grant.
    RequireApproval,
}

impl Verdict {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::RequireApproval => "require_approval",
        }
    }
}

/// A decision with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyDecision {
    /// The outcome.
    pub verdict: Verdict,
    /// The rule that decided it, such as `data.valetkey.authz.deny`.
    pub rule: String,
    /// Why, for people (the messages of the rules that fired).
    pub reasons: Vec<String>,
    /// Which policy decided: `builtin`, or the file names.
    pub source: String,
}

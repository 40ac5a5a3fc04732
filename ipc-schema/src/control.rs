//! The control protocol: what crosses `control.sock`, the socket the tray
//! app and the `valetkey` CLI use to decide consents, list and revoke
//! grants, and pause issuing.
//!
//! It is a separate socket from the agent one so that an agent can never
//! reach these methods by accident or on purpose: the daemon accepts a
//! control connection only from the same uid *and* from an attested,
//! allow-listed executable (see `PROTOCOL.md`, "Control socket"). The framing,
//! envelope and error object are the agent protocol's; there is no `hello`,
//! because identity comes from the socket.
//!
//! After `events.subscribe`, the daemon also pushes JSON-RPC notifications
//! on that connection (`{"jsonrpc":"2.0","method":"event","params":Event}`),
//! interleaved with responses; [`crate::Client::next_event`] separates them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::admin::*;
pub use crate::boxes::*;
pub use crate::mcp::*;
use crate::methods::{AgentInfo, Method, NoParams, ProcessInfo};
use crate::policy::{Classification, PolicyDecision};

/// The method name of pushed events.
pub const EVENT_METHOD: &str = "event";

/// A consent waiting for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsentRequest {
    /// Opaque id (`c_` and 32 hex digits).
    pub id: String,
    /// The agent's id in the registry.
    pub agent_id: i64,
    /// What the agent declared in `hello` (name, version, purpose).
    pub agent: AgentInfo,
    /// The attested executable of the agent process.
    pub exe: String,
    /// True when `exe` is not the file the process runs, as seen from the
    /// daemon (see `PeerIdentity.exe_unverified`): show the hash, not the
    /// path. Omitted when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exe_unverified: bool,
    /// Namespaces in which the agent differs from the daemon (see
    /// `PeerIdentity.foreign_namespaces`). Omitted when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_namespaces: Vec<String>,
    /// What the consent binds to, hex: the SHA-256 of that executable, or
    /// for a boxed agent its entry point (`box.entry_sha256`).
    pub sha256: String,
    /// The box the agent runs in (see `PeerIdentity.box`). Omitted for an
    /// unboxed agent: say on the card that it is not confined and can read
    /// the keychain.
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub confinement: Option<crate::confinement::BoxFacts>,
    /// The agent's pid when it asked.
    pub pid: u32,
    /// Its parent processes, nearest first.
    pub parents: Vec<ProcessInfo>,
    /// Provider name.
    pub provider: String,
    /// Provider name for people.
    pub provider_display: String,
    /// Scopes asked for (sorted).
    pub scopes: Vec<String>,
    /// RFC 8707 resource, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The duration the agent asked for, in seconds (a hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    /// When it was asked (unix seconds).
    pub created_at: u64,
    /// When it times out unanswered (unix seconds).
    pub expires_at: u64,
    /// How many identical requests were folded into this one.
    pub requests: u32,
    /// What is asked: standing access, approval of one request a policy
    /// flagged, or a delegation to a sub-agent.
    #[serde(default)]
    pub kind: ConsentKind,
    /// Why a person must decide (the policy's reasons), if a policy asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// For `delegation`: who gets what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<DelegationAsk>,
    /// What the scopes let the agent do, in words, one per scope, where
    /// the provider's proxy rules say (`read code in octo/hello`); for an
    /// MCP server, `call the tools of NAME`. Omitted when the provider has
    /// no words for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_words: Vec<String>,
    /// The request as the card's headline says it, after "wants to":
    /// `read code in every repository on GitHub`, `call the tools of
    /// notes`, or, with no words, `use Corp with repo:read, issues:read`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// True when the request came from an egress proxy (a box in `proxy`
    /// mode): a grant made here serves the proxy only, and the agent gets
    /// placeholders, never the token. Omitted when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy_only: bool,
    /// What holds the token to these scopes. Omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
}

/// What holds a token to the scopes a person allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The provider: it issues a token carrying only these scopes.
    Provider,
    /// GitHub itself: the user's GitHub App narrows the token to the
    /// scopes' permissions and repositories (`token/scoped`).
    GithubApp,
    /// Valet Key's egress proxy: the provider cannot narrow the token, so
    /// it stays in the daemon and the proxy's rules are the limit.
    ProxyRules,
    /// Nothing: the provider cannot narrow, and the agent gets a token
    /// with everything the login allows (`allow_full_scope`).
    WholeLogin,
}

/// What a consent is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    /// The agent has no grant yet; allowing can create one.
    #[default]
    Access,
    /// A policy requires a person to approve this one request; any "allow"
    /// approves it once and creates no grant.
    Approval,
    /// An agent wants to hand a sub-agent part of its access; any "allow"
    /// approves this one delegation.
    Delegation,
}

/// The delegation a consent asks about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DelegationAsk {
    /// The sub-agent's name.
    pub sub_agent: String,
    /// The depth of the token to create.
    pub depth: u32,
    /// The chain, outermost first, ending with the sub-agent.
    pub chain: Vec<String>,
    /// Its lifetime in seconds.
    pub ttl_secs: u64,
}

/// What the user decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// Hand out tokens to the waiting request(s) only; no standing grant.
    Once,
    /// A grant that ends after `duration_secs`.
    For {
        /// 60 s to 30 days.
        duration_secs: u64,
    },
    /// A grant until revoked.
    Always,
    /// Refuse. With `remember`, later requests from this agent binary for
    /// this provider are refused at once (`consent_denied`) until the user
    /// revokes the denial.
    Deny {
        /// Remember the denial.
        #[serde(default)]
        remember: bool,
    },
}

/// `consent.list`: the consents waiting for the user.
pub struct ConsentList;

/// Result of `consent.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConsentListResult {
    /// Oldest first.
    pub consents: Vec<ConsentRequest>,
}

impl Method for ConsentList {
    const NAME: &'static str = "consent.list";
    type Params = NoParams;
    type Result = ConsentListResult;
}

/// `consent.decide`: answers one pending consent.
pub struct ConsentDecide;

/// Params of `consent.decide`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentDecideParams {
    /// The consent id.
    pub id: String,
    /// The decision.
    pub decision: Decision,
    /// Narrow the scopes before allowing: a non-empty subset of what was
    /// asked. Omitted means everything that was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// Result of `consent.decide`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConsentDecideResult {
    /// The grant created, for `for` and `always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<i64>,
    /// The scopes allowed (empty on deny).
    pub scopes: Vec<String>,
}

impl Method for ConsentDecide {
    const NAME: &'static str = "consent.decide";
    type Params = ConsentDecideParams;
    type Result = ConsentDecideResult;
}

/// A grant as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrantView {
    /// Grant id (for `revoke`).
    pub id: i64,
    /// Provider name.
    pub provider: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The binary it is bound to.
    pub binary_sha256: String,
    /// Created (unix seconds).
    pub created_at: i64,
    /// End, or absent for "until revoked".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Last token handed out under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// True when it was allowed on a proxy box's card: it serves the
    /// egress proxy only, and `token.get` under it is asked anew. Omitted
    /// when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy_only: bool,
}

/// A binary an agent has run as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BinaryView {
    /// Executable path.
    pub exe: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Last seen (unix seconds).
    pub last_seen: i64,
}

/// An agent as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentView {
    /// Registry id.
    pub id: i64,
    /// Declared name.
    pub name: String,
    /// Declared purpose.
    pub purpose: String,
    /// Declared version.
    pub version: String,
    /// `active`, `suspended` or `deprecated`.
    pub status: String,
    /// Name shown to people.
    #[serde(default)]
    pub display_name: String,
    /// What the agent last declared as its purpose in `hello`.
    #[serde(default)]
    pub declared_purpose: String,
    /// The OS user who owns it.
    #[serde(default)]
    pub owner: String,
    /// The most sensitive data it may touch.
    #[serde(default)]
    pub classification: Classification,
    /// Free text such as `dev` or `prod`.
    #[serde(default)]
    pub environment: String,
    /// Tools it may use (empty: any).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Providers it may use (empty: any).
    #[serde(default)]
    pub providers: Vec<String>,
    /// Last review (unix seconds), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<i64>,
    /// First seen (unix seconds).
    pub first_seen: i64,
    /// Last seen (unix seconds).
    pub last_seen: i64,
    /// Binaries seen, most recent first.
    pub binaries: Vec<BinaryView>,
    /// Live grants.
    pub grants: Vec<GrantView>,
}

/// `agents.list`: every agent with its live grants.
pub struct AgentsList;

/// Result of `agents.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentsListResult {
    /// By name.
    pub agents: Vec<AgentView>,
}

impl Method for AgentsList {
    const NAME: &'static str = "agents.list";
    type Params = NoParams;
    type Result = AgentsListResult;
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevokeTarget {
    /// One grant.
    Grant {
        /// Its id.
        id: i64,
    },
    /// Every grant of an agent; the agent is also suspended, so it cannot
    /// simply ask again (`agents.reinstate` undoes that).
    Agent {
        /// Its name.
        name: String,
    },
    /// Every grant of every agent (agents are not suspended).
    All,
    /// One delegation token and every token derived from it.
    Delegation {
        /// Its `jti`.
        jti: String,
    },
}

/// `revoke`: ends access at once.
pub struct Revoke;

/// Params of `revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeParams {
    /// What.
    pub target: RevokeTarget,
}

/// Result of `revoke`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RevokeResult {
    /// Grants deleted.
    pub grants_removed: u32,
    /// Cached access tokens dropped.
    pub tokens_dropped: u32,
    /// Access tokens revoked at the provider (RFC 7009), where enabled.
    pub tokens_revoked_upstream: u32,
    /// Agent connections closed.
    pub connections_closed: u32,
}

impl Method for Revoke {
    const NAME: &'static str = "revoke";
    type Params = RevokeParams;
    type Result = RevokeResult;
}

/// `agents.reinstate`: lifts the suspension `revoke` of an agent set, and
/// forgets remembered denials; the agent then has to ask again.
pub struct AgentsReinstate;

/// Params of `agents.reinstate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentNameParams {
    /// The agent's name.
    pub name: String,
}

impl Method for AgentsReinstate {
    const NAME: &'static str = "agents.reinstate";
    type Params = AgentNameParams;
    type Result = StatusResult;
}

/// `agents.show`: one agent's whole registry record.
pub struct AgentsShow;

impl Method for AgentsShow {
    const NAME: &'static str = "agents.show";
    type Params = AgentNameParams;
    type Result = AgentView;
}

/// `agents.stats`: the monitor's counters per agent since the daemon
/// started, busiest first.
pub struct AgentsStats;

impl Method for AgentsStats {
    const NAME: &'static str = "agents.stats";
    type Params = NoParams;
    type Result = Vec<AgentStatsEntry>;
}

/// One agent's monitoring counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentStatsEntry {
    /// The agent.
    pub agent: String,
    /// Requests (hello, token.get, delegation.create) since the daemon started.
    pub requests: u64,
    /// Refused among them.
    pub refusals: u64,
    /// Requests in the current minute.
    pub last_minute: u32,
    /// Its own average per minute (idle minutes count), over the last hour.
    pub baseline_per_minute: f64,
    /// Write, delete or admin actions in the current minute.
    pub writes_last_minute: u32,
    /// Refusals in the last 5 minutes.
    pub errors_last_5m: u32,
    /// Requests in the last 5 minutes.
    pub requests_last_5m: u32,
    /// Providers and scopes it has used.
    pub known_scopes: u32,
    /// Rules fired for it.
    pub anomalies: u64,
    /// The last rule that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_anomaly: Option<String>,
    /// When (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_anomaly_at: Option<i64>,
}

/// `agents.edit`: changes the registry fields a person owns. Omitted
/// fields stay as they are.
pub struct AgentsEdit;

/// Params of `agents.edit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentsEditParams {
    /// The agent's name.
    pub name: String,
    /// Name shown to people (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The registered purpose (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The owner (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The most sensitive data it may touch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Free text such as `dev` or `prod` (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Tools it may use; empty list: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Providers it may use; empty list: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
}

impl Method for AgentsEdit {
    const NAME: &'static str = "agents.edit";
    type Params = AgentsEditParams;
    type Result = AgentView;
}

/// A lifecycle step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Refuse it at once, drop its cached tokens, close its connections and
    /// invalidate every delegation below it; its grants are kept.
    Suspend,
    /// Back to `active` (grants kept by a suspension work again).
    Resume,
    /// Retire it for good: every grant and delegation is removed and it
    /// cannot get new ones (`resume` brings it back, with no grants).
    Deprecate,
    /// Record that a person reviewed the record now.
    Review,
}

/// `agents.lifecycle`: suspend, resume, deprecate or review an agent.
pub struct AgentsLifecycle;

/// Params of `agents.lifecycle`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentsLifecycleParams {
    /// The agent's name.
    pub name: String,
    /// The step.
    pub step: Lifecycle,
}

/// Result of `agents.lifecycle`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentsLifecycleResult {
    /// The record afterwards.
    pub agent: AgentView,
    /// What it cut off (suspend and deprecate).
    pub revoked: RevokeResult,
    /// Delegation tokens invalidated below it.
    pub delegations_revoked: u32,
}

impl Method for AgentsLifecycle {
    const NAME: &'static str = "agents.lifecycle";
    type Params = AgentsLifecycleParams;
    type Result = AgentsLifecycleResult;
}

/// `keys.rotate`: a new delegation signing key. Tokens signed with the old
/// one stay valid until they expire.
pub struct KeysRotate;

/// Result of `keys.rotate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct KeysRotateResult {
    /// The new signing key's id.
    pub kid: String,
    /// The keys still published for verification.
    pub published: Vec<String>,
}

impl Method for KeysRotate {
    const NAME: &'static str = "keys.rotate";
    type Params = NoParams;
    type Result = KeysRotateResult;
}

/// `policy.status`: which policy is in force.
pub struct PolicyStatus;

/// Result of `policy.status`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PolicyStatusResult {
    /// The policy directory.
    pub dir: String,
    /// The files in force (empty: only the built-in policy).
    pub files: Vec<String>,
    /// Unix seconds when it was loaded.
    pub loaded_at: i64,
    /// Whether the files in force are a last good copy because the current
    /// ones are broken.
    pub last_good: bool,
    /// The error of the last load that was refused, if the files are still
    /// broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Method for PolicyStatus {
    const NAME: &'static str = "policy.status";
    type Params = NoParams;
    type Result = PolicyStatusResult;
}

/// `issuing.set`: pauses or resumes handing out tokens to every agent.
pub struct IssuingSet;

/// Params of `issuing.set`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuingSetParams {
    /// `true` pauses.
    pub paused: bool,
}

impl Method for IssuingSet {
    const NAME: &'static str = "issuing.set";
    type Params = IssuingSetParams;
    type Result = StatusResult;
}

/// `status`: the daemon's state at a glance.
pub struct Status;

/// Result of `status` (and of the state-changing calls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusResult {
    /// Daemon version.
    pub daemon_version: String,
    /// Issuing paused by the user.
    pub paused: bool,
    /// The session is locked (no consent can be given).
    pub session_locked: bool,
    /// What happens to consents while locked: `hold` or `refuse`.
    pub on_lock: String,
    /// Consents waiting.
    pub pending: u32,
}

impl Method for Status {
    const NAME: &'static str = "status";
    type Params = NoParams;
    type Result = StatusResult;
}

/// One line of the activity log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActivityEntry {
    /// Sequence number.
    pub id: i64,
    /// Unix seconds.
    pub ts: i64,
    /// The event type (as in [`Event`]).
    pub kind: String,
    /// The agent concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A sentence for people. Never holds a secret.
    pub summary: String,
}

/// `activity.list`: recent events, newest first.
pub struct ActivityList;

/// Params of `activity.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityListParams {
    /// At most this many (1 to 500, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Result of `activity.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ActivityListResult {
    /// Newest first.
    pub entries: Vec<ActivityEntry>,
}

impl Method for ActivityList {
    const NAME: &'static str = "activity.list";
    type Params = ActivityListParams;
    type Result = ActivityListResult;
}

/// `events.subscribe`: from now on, push [`Event`]s on this connection.
pub struct EventsSubscribe;

/// Result of `events.subscribe`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EventsSubscribeResult {
    /// The state at the moment of subscribing.
    pub status: StatusResult,
}

impl Method for EventsSubscribe {
    const NAME: &'static str = "events.subscribe";
    type Params = NoParams;
    type Result = EventsSubscribeResult;
}

/// How a consent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentOutcome {
    /// Allowed (once, for a while, or always).
    Allowed,
    /// Denied by the user.
    Denied,
    /// Nobody answered in time.
    TimedOut,
    /// Refused because the session was locked (`on_lock = "refuse"`).
    UserAway,
    /// The agent that asked went away (its request's connection closed)
    /// before anyone decided; the card is taken down.
    Withdrawn,
}

/// A pushed event. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum Event {
    /// An agent asked and the user must decide.
    #[serde(rename = "consent.requested")]
    ConsentRequested {
        /// The consent.
        consent: Box<ConsentRequest>,
    },
    /// A consent ended.
    #[serde(rename = "consent.decided")]
    ConsentDecided {
        /// The consent id.
        id: String,
        /// The agent's name.
        agent: String,
        /// How it ended.
        outcome: ConsentOutcome,
        /// The decision, when a person made one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<Decision>,
        /// The scopes allowed.
        scopes: Vec<String>,
    },
    /// An agent is asking for consents too fast; its requests are refused.
    #[serde(rename = "consent.flood")]
    ConsentFlood {
        /// The agent's name.
        agent: String,
    },
    /// A grant was created, changed or removed.
    #[serde(rename = "grant.changed")]
    GrantChanged {
        /// The agent's name.
        agent: String,
        /// The grant id.
        grant_id: i64,
        /// `created` or `removed`.
        change: String,
    },
    /// A token was handed out.
    #[serde(rename = "token.issued")]
    TokenIssued {
        /// The agent's name.
        agent: String,
        /// Provider name.
        provider: String,
        /// The token's scopes.
        scopes: Vec<String>,
    },
    /// An agent said hello.
    #[serde(rename = "agent.seen")]
    AgentSeen {
        /// The agent's name.
        agent: String,
        /// Its executable.
        exe: String,
    },
    /// Access was revoked.
    #[serde(rename = "revoked")]
    Revoked {
        /// What.
        target: RevokeTarget,
        /// What it did.
        result: RevokeResult,
    },
    /// Issuing was paused or resumed, or the session locked or unlocked.
    #[serde(rename = "status.changed")]
    StatusChanged {
        /// The new state.
        status: StatusResult,
    },
    /// An agent's record or lifecycle state changed.
    #[serde(rename = "agent.changed")]
    AgentChanged {
        /// The agent's name.
        agent: String,
        /// `edited`, `suspended`, `resumed`, `deprecated` or `reviewed`.
        change: String,
    },
    /// A policy decided a request (allow decisions are not pushed).
    #[serde(rename = "policy.decided")]
    PolicyDecided {
        /// The agent's name.
        agent: String,
        /// The chain, outermost first.
        chain: Vec<String>,
        /// The decision.
        decision: PolicyDecision,
    },
    /// The policy files were reloaded, or a reload was refused.
    #[serde(rename = "policy.reloaded")]
    PolicyReloaded {
        /// Whether the new files are now in force.
        ok: bool,
        /// The files.
        files: Vec<String>,
        /// Why they were refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A sub-agent was given a delegation token.
    #[serde(rename = "delegation.created")]
    DelegationCreated {
        /// The chain, outermost first, ending with the sub-agent.
        chain: Vec<String>,
        /// The provider.
        provider: String,
        /// The scopes.
        scopes: Vec<String>,
        /// The token id.
        jti: String,
    },
    /// A monitoring rule fired for an agent.
    #[serde(rename = "anomaly")]
    Anomaly {
        /// The agent.
        agent: String,
        /// The rule: `rate_spike`, `first_use`, `cross_user`, `velocity`,
        /// `error_rate` or `deep_delegation`.
        rule: String,
        /// What was seen, for a person.
        detail: String,
        /// Whether the agent was suspended for it (`[monitor] on_anomaly`).
        suspended: bool,
    },
}

impl Event {
    /// The event's `type` string.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ConsentRequested { .. } => "consent.requested",
            Event::ConsentDecided { .. } => "consent.decided",
            Event::ConsentFlood { .. } => "consent.flood",
            Event::GrantChanged { .. } => "grant.changed",
            Event::TokenIssued { .. } => "token.issued",
            Event::AgentSeen { .. } => "agent.seen",
            Event::Revoked { .. } => "revoked",
            Event::StatusChanged { .. } => "status.changed",
            Event::AgentChanged { .. } => "agent.changed",
            Event::PolicyDecided { .. } => "policy.decided",
            Event::PolicyReloaded { .. } => "policy.reloaded",
            Event::DelegationCreated { .. } => "delegation.created",
            Event::Anomaly { .. } => "anomaly",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_have_a_stable_wire_form() {
        let d: Decision =
            serde_json::from_str(r#"{"kind":"for","duration_secs":3600}"#).expect("for");
        assert_eq!(
            d,
            Decision::For {
                duration_secs: 3600
            }
        );
        let d: Decision = serde_json::from_str(r#"{"kind":"deny"}"#).expect("deny");
        assert_eq!(d, Decision::Deny { remember: false });
        assert!(serde_json::from_str::<Decision>(r#"{"kind":"forever"}"#).is_err());
    }

    #[test]
    fn events_are_tagged_with_their_type() {
        let e = Event::ConsentFlood { agent: "x".into() };
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["type"], e.kind());
    }
}

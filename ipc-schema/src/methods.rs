//! One type per method, each naming its params and result.
//!
//! A method is a zero-sized marker implementing [`Method`]; the client calls
//! `client.call::<TokenGet>(params)` and gets the matching result type back,
//! and the daemon's dispatcher matches on [`Method::NAME`]. Adding a method
//! means adding a marker here, a handler in the daemon, and regenerating the
//! schema (a test fails until you do).

use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub use crate::confinement::{BoxFacts, FileFact};
use crate::policy::{Action, Classification};
use crate::secret::{AccessToken, DelegationToken};

/// A protocol method: its wire name and its params and result types.
pub trait Method {
    /// The wire name, for example `token.get`.
    const NAME: &'static str;
    /// The `params` object.
    type Params: Serialize + DeserializeOwned + JsonSchema;
    /// The `result` object.
    type Result: Serialize + DeserializeOwned + JsonSchema;
}

/// How an agent describes itself in `hello`. Shown to the user next to the
/// facts the daemon attested, never trusted on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentInfo {
    /// A short stable name, 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// The agent's own version string (free text, at most 64 characters).
    #[serde(default)]
    pub version: String,
    /// Why it wants access, for a person to read (at most 256 characters).
    #[serde(default)]
    pub purpose: String,
}

impl AgentInfo {
    /// Checks the limits above; the error says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty() || n.len() > 64 {
            return Err(format!(
                "agent.name must be 1 to 64 characters, got {}",
                n.len()
            ));
        }
        if !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(format!(
                "agent.name {n:?} may only use letters, digits, '.', '_' and '-'"
            ));
        }
        if self.version.chars().count() > 64 {
            return Err("agent.version must be at most 64 characters".into());
        }
        if self.purpose.chars().count() > 256 {
            return Err("agent.purpose must be at most 256 characters".into());
        }
        if self
            .purpose
            .chars()
            .chain(self.version.chars())
            .any(char::is_control)
        {
            return Err("agent.version and agent.purpose may not hold control characters".into());
        }
        Ok(())
    }
}

/// Checks a list of OAuth scopes (RFC 6749 §3.3 scope-tokens, 1 to 32 of them).
pub fn validate_scopes(scopes: &[String]) -> Result<(), String> {
    if scopes.is_empty() || scopes.len() > 32 {
        return Err(format!(
            "scopes must list 1 to 32 scopes, got {}",
            scopes.len()
        ));
    }
    for s in scopes {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !ok {
            return Err(format!("{s:?} is not a valid OAuth scope (RFC 6749 §3.3)"));
        }
    }
    Ok(())
}

/// What the daemon learned about the calling process from the socket and
/// `/proc`, not from anything the process said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PeerIdentity {
    /// The peer's effective uid (always the daemon's own uid).
    pub uid: u32,
    /// The peer's pid at connect time.
    pub pid: u32,
    /// The resolved path of the peer's executable.
    pub exe: String,
    /// Lowercase hex SHA-256 of that executable.
    pub sha256: String,
    /// The process start time in clock ticks since boot (`/proc/PID/stat`
    /// field 22); with `pid` it names the process uniquely.
    pub start_time: u64,
    /// The parent chain, nearest first, up to 8 levels.
    pub parents: Vec<ProcessInfo>,
    /// Namespaces (`mnt`, `user`) in which the peer differs from the
    /// daemon. In another mount namespace `exe` is a path of *that*
    /// namespace. Omitted when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_namespaces: Vec<String>,
    /// True when `exe`, opened in the daemon's namespace, is not the file
    /// the process runs (another mount namespace, or a file replaced since
    /// it started): the path says nothing then; `sha256` still names what
    /// runs. Omitted when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exe_unverified: bool,
    /// The box the peer runs in, when it connected on a box's own socket
    /// (started by `valetkey run`): facts from the launch, not from
    /// `/proc`. Omitted for an unboxed agent, which runs with everything
    /// the user has (it can read the keychain).
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub confinement: Option<BoxFacts>,
}

impl PeerIdentity {
    /// What grants, remembered denials and consents bind to: a boxed
    /// agent's entry point ([`BoxFacts::entry_sha256`]), else the hash of
    /// the executable. Two Python scripts in boxes are two agents; the
    /// same two unboxed are one binary, `python3`.
    pub fn binding(&self) -> &str {
        match &self.confinement {
            Some(b) => &b.entry_sha256,
            None => &self.sha256,
        }
    }

    /// What the registry records the agent as having run: the executable,
    /// or for a boxed agent its entry point (script, else program) marked
    /// `(box)`, beside [`PeerIdentity::binding`].
    pub fn binding_exe(&self) -> std::borrow::Cow<'_, str> {
        match &self.confinement {
            Some(b) => {
                let entry = b.script.as_ref().unwrap_or(&b.program);
                format!("{} (box)", entry.path).into()
            }
            None => self.exe.as_str().into(),
        }
    }
}

/// One ancestor of the peer process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// Its executable path, when readable.
    pub exe: Option<String>,
}

/// `hello`: must be the first call on every connection.
pub struct Hello;

/// Params of `hello`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HelloParams {
    /// Must equal the daemon's protocol version (currently 1).
    pub protocol: u32,
    /// The agent's self-description.
    pub agent: AgentInfo,
    /// A sub-agent's delegation token from its parent's `delegation.create`.
    /// With it, the connection acts as the sub-agent on behalf of the whole
    /// chain, and can get only what the token allows. `agent.name` must be
    /// the token's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<DelegationToken>,
}

/// Result of `hello`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HelloResult {
    /// The protocol version the daemon speaks.
    pub protocol: u32,
    /// The daemon's version, for diagnostics.
    pub daemon_version: String,
    /// The registry id of this agent (stable across connections).
    pub agent_id: i64,
    /// What the daemon attested about the caller.
    pub identity: PeerIdentity,
    /// Present when the connection acts under a delegation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<DelegationInfo>,
}

/// A verified delegation, as the sub-agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DelegationInfo {
    /// The token's id.
    pub jti: String,
    /// 1 for a sub-agent of an agent with a grant, 2 below that, at most 3.
    pub depth: u32,
    /// The deepest level this chain may reach.
    pub max_depth: u32,
    /// Outermost first: `user:NAME`, `agent:ROOT`, …, `agent:SELF`.
    pub chain: Vec<String>,
    /// The only provider it is good for.
    pub provider: String,
    /// The most it allows.
    pub scopes: Vec<String>,
    /// Unix seconds when it ends.
    pub expires_at: u64,
    /// The root agent's grant it derives from.
    pub root_grant_id: i64,
}

impl Method for Hello {
    const NAME: &'static str = "hello";
    type Params = HelloParams;
    type Result = HelloResult;
}

/// `token.get`: a short-lived access token for exactly the asked scopes.
pub struct TokenGet;

/// Params of `token.get`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokenGetParams {
    /// A configured provider name (see `providers.list`).
    pub provider: String,
    /// The scopes wanted; the token carries exactly these.
    pub scopes: Vec<String>,
    /// An RFC 8707 resource indicator; defaults to the provider's configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Without a grant: `true` (the default) waits for the user's decision,
    /// up to the daemon's consent timeout; `false` returns `consent_required`
    /// at once with `data.consent_id`, to pass to `consent.wait` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    /// How long the agent would like access for, in seconds: shown to the
    /// user in the prompt as a hint. The user decides the real duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    /// What the token is for, as facts for the policy step. Optional; the
    /// daemon derives the action from the scopes and never lets a declared
    /// action weaken it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<RequestContext>,
}

/// What a request is for, declared by the agent (see `docs/POLICY.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestContext {
    /// The action it intends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The tool it will call, such as `google-calendar-api:events.list`
    /// (at most 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The data it will touch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceContext>,
}

/// The data a request touches, declared by the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceContext {
    /// The kind of data, such as `calendar-events` (at most 128 characters).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whose data (at most 128 characters); default: the delegating user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How sensitive; it can raise, never lower, the provider's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Classification>,
}

impl RequestContext {
    /// Checks the length limits; the error says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        let r = self.resource.clone().unwrap_or_default();
        for (field, v) in [
            ("context.tool", &self.tool),
            ("context.resource.type", &r.kind),
            ("context.resource.owner", &r.owner),
        ] {
            if let Some(v) = v {
                if v.chars().count() > 128 || v.chars().any(char::is_control) {
                    return Err(format!(
                        "{field} must be at most 128 characters without control characters"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl TokenGetParams {
    /// A request for `scopes` at `provider`, waiting for consent if needed.
    pub fn new(provider: &str, scopes: &[&str]) -> Self {
        Self {
            provider: provider.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            resource: None,
            wait: None,
            duration_secs: None,
            context: None,
        }
    }
}

/// `consent.wait`: waits for the decision on a consent that `token.get`
/// with `wait: false` created, and returns the token once allowed.
pub struct ConsentWait;

/// Params of `consent.wait`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentWaitParams {
    /// `data.consent_id` from the `consent_required` error.
    pub consent_id: String,
}

impl Method for ConsentWait {
    const NAME: &'static str = "consent.wait";
    type Params = ConsentWaitParams;
    type Result = TokenGetResult;
}

/// Result of `token.get`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokenGetResult {
    /// The access token. Use it, never log it.
    pub access_token: AccessToken,
    /// Usually `Bearer`.
    pub token_type: String,
    /// Unix time (seconds) after which the token is invalid.
    pub expires_at: u64,
    /// The scopes the token carries.
    pub scopes: Vec<String>,
    /// The resource the token is for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The provider that issued it.
    pub provider: String,
    /// True in a box in `proxy` mode: `access_token` is a placeholder,
    /// which the box's egress proxy swaps for the token in requests to
    /// the provider's hosts (the box never holds the token). Omitted when
    /// false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub placeholder: bool,
}

impl Method for TokenGet {
    const NAME: &'static str = "token.get";
    type Params = TokenGetParams;
    type Result = TokenGetResult;
}

/// `token.placeholder`: inside a box in `proxy` mode, a stand-in for a
/// token. The daemon takes the same steps as `token.get` (consent, policy,
/// audit; it waits for the user), then answers with a random placeholder
/// instead of the token. The box's egress proxy swaps the placeholder for
/// the real token in the `Authorization` header of requests to the
/// provider's hosts that the scopes' rules allow; anywhere else it is
/// worthless. Refused outside such a box (`invalid_params`).
pub struct TokenPlaceholder;

/// Params of `token.placeholder`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPlaceholderParams {
    /// A configured provider whose proxy hosts and rules are known.
    pub provider: String,
    /// The scopes (the rules of these decide what the placeholder opens).
    pub scopes: Vec<String>,
}

/// Result of `token.placeholder`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokenPlaceholderResult {
    /// `vkp_` and 40 hex digits: put it where the token would go.
    pub placeholder: String,
    /// The provider.
    pub provider: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The provider's hosts, `name[:port]`, where the proxy swaps it in.
    pub hosts: Vec<String>,
}

/// `proxy.open`: for an agent not in a box, an egress proxy of its own on
/// loopback, for as long as this connection stays open. Point
/// `HTTPS_PROXY` at `proxy_url` (its user and password are this proxy's
/// alone) and trust `ca_bundle`; requests to providers' hosts are then
/// checked and given tokens as in a `proxy` box, and `token.placeholder`
/// works on this connection. Other hosts are tunnelled (the agent has the
/// network anyway). Only the agent and the processes it started may use
/// the proxy. Refused in a box (`invalid_params`: use `--net proxy`).
pub struct ProxyOpen;

/// Result of `proxy.open`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProxyOpenResult {
    /// `http://valetkey:SECRET@127.0.0.1:PORT`.
    pub proxy_url: String,
    /// The system's roots and this proxy's CA, PEM (a path).
    pub ca_bundle: String,
    /// The providers' hosts the proxy opens, `name:port`.
    pub hosts: Vec<String>,
}

impl Method for ProxyOpen {
    const NAME: &'static str = "proxy.open";
    type Params = NoParams;
    type Result = ProxyOpenResult;
}

impl Method for TokenPlaceholder {
    const NAME: &'static str = "token.placeholder";
    type Params = TokenPlaceholderParams;
    type Result = TokenPlaceholderResult;
}

/// `providers.list`: the configured providers and their login state.
pub struct ProvidersList;

/// Params of `providers.list` and `whoami` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Result of `providers.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProvidersListResult {
    /// One entry per configured provider, then one per MCP server.
    pub providers: Vec<ProviderSummary>,
}

/// A provider as agents see it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProviderSummary {
    /// The name to pass to `token.get`.
    pub name: String,
    /// The issuer URL.
    pub issuer: String,
    /// Whether a refresh token is stored for it.
    pub logged_in: bool,
    /// Whether the user must run `valetkey login NAME` again.
    pub login_required: bool,
    /// Scopes the config allows agents to ask for.
    pub allowed_scopes: Vec<String>,
    /// Whether the provider can issue a narrower token on refresh.
    pub narrows_on_refresh: bool,
    /// The scopes the login holds (empty when not logged in).
    #[serde(default)]
    pub login_scopes: Vec<String>,
    /// For a remote MCP server (`valetkey mcp add`): its MCP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_url: Option<String>,
    /// For a remote MCP server: its answer to `initialize` when it was
    /// added, for answering an MCP client's handshake before any token is
    /// needed. Only for the server named in `handshake_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_handshake: Option<McpHandshake>,
}

/// What an MCP server said it is and can do, in its `initialize` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpHandshake {
    /// Every protocol revision the server agreed to when asked for it,
    /// newest first (`mcp add` asks for each revision Valet Key knows).
    pub protocol_versions: Vec<String>,
    /// The server's `capabilities` object, as it sent it.
    pub capabilities: serde_json::Value,
    /// The server's `serverInfo` object, as it sent it.
    pub server_info: serde_json::Value,
    /// The server's `instructions`, if it gave any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Params of `providers.list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvidersListParams {
    /// The one MCP server whose recorded handshake to include (absent: no
    /// handshakes, which keeps the list small however many servers there
    /// are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_of: Option<String>,
}

impl Method for ProvidersList {
    const NAME: &'static str = "providers.list";
    type Params = ProvidersListParams;
    type Result = ProvidersListResult;
}

/// `whoami`: who the daemon thinks the caller is, and its grants.
pub struct Whoami;

/// Result of `whoami`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WhoamiResult {
    /// The registry id.
    pub agent_id: i64,
    /// What the agent said in `hello`.
    pub agent: AgentInfo,
    /// What the daemon attested.
    pub identity: PeerIdentity,
    /// The agent's grants that match its current binary.
    pub grants: Vec<GrantSummary>,
    /// Present when the connection acts under a delegation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<DelegationInfo>,
}

/// A standing grant as the agent sees it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GrantSummary {
    /// The provider.
    pub provider: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// Unix time the grant ends, or absent for "until revoked".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl Method for Whoami {
    const NAME: &'static str = "whoami";
    type Params = NoParams;
    type Result = WhoamiResult;
}

/// `delegation.create`: a broker-signed token that lets a sub-agent act
/// for the caller with less: a subset of its scopes on one provider, for
/// no longer than the caller's own access, at most 3 levels deep.
pub struct DelegationCreate;

/// Params of `delegation.create`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationCreateParams {
    /// The sub-agent's name (what it will say in `hello`), same rules as
    /// `agent.name`.
    pub sub_agent: String,
    /// The provider.
    pub provider: String,
    /// A subset of the caller's current grant (or delegation).
    pub scopes: Vec<String>,
    /// Lifetime in seconds, 1 to the caller's own remaining time.
    pub ttl_secs: u64,
    /// How deep the chain below may go (absolute depth, at most the
    /// caller's own limit and the daemon's `delegation.max_depth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// When a person must approve (a depth-3 level, or the policy says so):
    /// `true` (the default) waits; `false` returns `consent_required` with
    /// `data.consent_id` at once (call `delegation.create` again after the
    /// user approved; the approval is good for one token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

/// Result of `delegation.create`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DelegationCreateResult {
    /// The compact JWS to hand to the sub-agent. A bearer credential.
    pub token: DelegationToken,
    /// Its id (for `revoke` by jti).
    pub jti: String,
    /// The key that signed it (see `jwks`).
    pub kid: String,
    /// Unix seconds when it ends.
    pub expires_at: u64,
    /// Its depth (1 to 3).
    pub depth: u32,
    /// Its depth limit.
    pub max_depth: u32,
    /// The provider.
    pub provider: String,
    /// The scopes it allows.
    pub scopes: Vec<String>,
    /// The chain it encodes, outermost first, ending with the sub-agent.
    pub chain: Vec<String>,
}

impl Method for DelegationCreate {
    const NAME: &'static str = "delegation.create";
    type Params = DelegationCreateParams;
    type Result = DelegationCreateResult;
}

/// `jwks`: the broker's public signing keys (RFC 7517), so a local resource
/// server can verify delegation tokens. Callable before `hello`.
pub struct Jwks;

/// One public key (RFC 8037 OKP, Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The RFC 7638 thumbprint of the key, base64url.
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// Result of `jwks`: a JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JwkSet {
    /// The signing key first, then retired keys whose tokens may still be live.
    pub keys: Vec<Jwk>,
}

impl Method for Jwks {
    const NAME: &'static str = "jwks";
    type Params = NoParams;
    type Result = JwkSet;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str) -> AgentInfo {
        AgentInfo {
            name: name.into(),
            version: "1".into(),
            purpose: "test".into(),
        }
    }

    #[test]
    fn agent_names_are_checked() {
        assert!(agent("code-bot_2.x").validate().is_ok());
        assert!(agent("").validate().is_err());
        assert!(agent("has space").validate().is_err());
        assert!(agent(&"a".repeat(65)).validate().is_err());
        let mut a = agent("ok");
        a.purpose = "line\nbreak".into();
        assert!(a.validate().is_err());
    }

    #[test]
    fn scopes_follow_rfc6749() {
        assert!(validate_scopes(&["repo:read".into(), "openid".into()]).is_ok());
        assert!(validate_scopes(&[]).is_err());
        assert!(validate_scopes(&["two words".into()]).is_err());
        assert!(validate_scopes(&["quote\"".into()]).is_err());
        assert!(validate_scopes(&vec!["a".to_string(); 33]).is_err());
    }

    #[test]
    fn declared_context_is_bounded() {
        let mut c = RequestContext::default();
        assert!(c.validate().is_ok());
        c.tool = Some("x".repeat(129));
        assert!(c.validate().is_err());
        c.tool = Some("calendar:events.list".into());
        c.resource = Some(ResourceContext {
            owner: Some("a\nb".into()),
            ..Default::default()
        });
        assert!(c.validate().is_err());
    }

    #[test]
    fn scopes_imply_actions() {
        assert_eq!(Action::of_scope("repo:read"), Action::Read);
        assert_eq!(Action::of_scope("calendar.events.insert"), Action::Write);
        assert_eq!(Action::of_scope("repo:delete"), Action::Delete);
        assert_eq!(Action::of_scope("admin:org"), Action::Admin);
        assert!(Action::Admin > Action::Read);
    }

    #[test]
    fn no_params_rejects_unknown_fields() {
        assert!(serde_json::from_str::<NoParams>("{}").is_ok());
        assert!(serde_json::from_str::<NoParams>(r#"{"x":1}"#).is_err());
    }
}

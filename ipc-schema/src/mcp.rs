//! The control methods for remote MCP servers: Valet Key is the machine's
//! one MCP OAuth client. `valetkey mcp add` discovers a server's
//! authorization server (MCP authorization, revision 2025-11-25),
//! registers a client, logs in, and hands the daemon what it found as an
//! [`McpServer`]; from then on the server is a provider like any other,
//! named by the user, with its tokens bound to the server's audience.
//! Re-exported from [`crate::control`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::admin::UpstreamRevocation;
pub use crate::methods::McpHandshake;
use crate::methods::{Method, NoParams};

/// How Valet Key got its client id at the server's authorization server,
/// in the MCP spec's order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Given by the user (`--client-id`): registered out of band.
    Preregistered,
    /// A client ID metadata document: the client id is the HTTPS URL of a
    /// document describing Valet Key, which the authorization server fetches.
    MetadataDocument,
    /// Dynamic client registration (RFC 7591).
    Dynamic,
}

/// A remote MCP server, as discovery found it. No secret is in here: a
/// client secret, when the server's authorization server issued one, is
/// in the keychain like any provider's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    /// The name agents and the user call it by (a provider name: 1 to 64
    /// characters of `a-z 0-9 . _ -`).
    pub name: String,
    /// The MCP endpoint the user gave (streamable HTTP).
    pub url: String,
    /// The server's canonical resource identifier (RFC 9728 `resource`):
    /// the audience of its tokens, sent as RFC 8707 `resource` at login and
    /// on every refresh.
    pub resource: String,
    /// The authorization server's issuer.
    pub issuer: String,
    /// Its authorization endpoint.
    pub authorization_endpoint: String,
    /// Its token endpoint.
    pub token_endpoint: String,
    /// Its RFC 7009 revocation endpoint, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// The scopes asked for at login (from the server's challenge, else
    /// every scope its metadata lists).
    pub scopes: Vec<String>,
    /// Every scope the server's metadata lists (what a step-up may add).
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// The client id at the authorization server.
    pub client_id: String,
    /// How the client id was had.
    pub registration: Registration,
    /// Whether a client secret was issued (it is in the keychain).
    #[serde(default)]
    pub confidential: bool,
    /// A PEM file of extra CA certificates to trust for the server and its
    /// authorization server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The server's answer to `initialize` when `mcp add` logged in, so
    /// that `valetkey mcp proxy` can answer an MCP client's handshake at
    /// once and ask for consent only when a call needs the token. Absent
    /// for a server added before Valet Key kept it, or one whose
    /// `initialize` failed at `mcp add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<McpHandshake>,
}

/// `mcp.add`: records a discovered MCP server as a provider. Refused with
/// `invalid_params` when the name is taken by a configured provider or
/// another server.
pub struct McpAdd;

/// Params of `mcp.add`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpAddParams {
    /// What discovery found.
    pub server: McpServer,
    /// Replace a server of the same name (a new registration or URL).
    #[serde(default)]
    pub replace: bool,
}

/// One MCP server and what uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct McpServerStatus {
    /// The server.
    pub server: McpServer,
    /// When it was added (Unix seconds).
    pub added_at: i64,
    /// When the last login finished, if logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_in_at: Option<i64>,
    /// The scopes the login holds.
    pub login_scopes: Vec<String>,
    /// The server's authorization server rejected the stored login.
    pub login_required: bool,
    /// The agents with a live grant for it, by name.
    pub agents: Vec<String>,
}

impl Method for McpAdd {
    const NAME: &'static str = "mcp.add";
    type Params = McpAddParams;
    type Result = McpServerStatus;
}

/// `mcp.list`: every MCP server, with its login and the agents using it.
pub struct McpList;

/// Result of `mcp.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct McpListResult {
    /// By name.
    pub servers: Vec<McpServerStatus>,
}

impl Method for McpList {
    const NAME: &'static str = "mcp.list";
    type Params = NoParams;
    type Result = McpListResult;
}

/// `mcp.remove`: logs out of the server (revoking its refresh token at the
/// authorization server), revokes every grant for it and forgets it.
pub struct McpRemove;

/// Params of `mcp.remove`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpRemoveParams {
    /// The server's name.
    pub name: String,
}

/// Result of `mcp.remove`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct McpRemoveResult {
    /// What happened to the refresh token at the authorization server.
    pub upstream: UpstreamRevocation,
    /// Why revocation failed, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Grants revoked with it.
    pub grants_revoked: u32,
}

impl Method for McpRemove {
    const NAME: &'static str = "mcp.remove";
    type Params = McpRemoveParams;
    type Result = McpRemoveResult;
}

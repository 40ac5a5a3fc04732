//! `valetkey mcp`: remote MCP servers, with Valet Key as their one OAuth
//! client. `add` runs discovery, client registration and the browser login
//! here (where the terminal and the browser are), keeps the refresh token
//! (and any client secret) in the keychain, and has the daemon record the
//! server; `headers` prints the `Authorization` header for an agent, after
//! the daemon's usual attestation, grant and policy steps; `proxy` is a
//! stdio MCP server that reaches the remote one through valetkeyd, which
//! writes the token in ([`stdio`]).

mod bridge;
mod stdio;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use url::Url;
use valetkey_ipc::control::{
    LoginRecord, LoginRecordParams, McpAdd, McpAddParams, McpList, McpRemove, McpRemoveParams,
    McpServer, McpServerStatus, UpstreamRevocation,
};
use valetkey_ipc::methods::{
    NoParams, ProviderSummary, ProvidersListParams, TokenGet, TokenGetParams,
};
use valetkey_ipc::Client;

use super::client::{client_failure, connect, fail};
use super::{when, Cli, Failure};
use valetkey_core::keychain::{Item, SecretService};
use valetkey_core::mcp::{discover, register};
use valetkey_core::oauth::login::{login_loopback, LoginOptions};
use valetkey_core::oauth::HttpUpstream;
use valetkey_core::secret::Secret;

/// `valetkey mcp …`.
#[derive(Debug, Subcommand)]
pub enum McpCmd {
    /// Discover a remote MCP server's authorization server, register,
    /// log in in your browser, and keep the login.
    Add(AddArgs),
    /// Every MCP server, its login and the agents that use it.
    List,
    /// One server in detail.
    Status {
        /// The server's name.
        name: String,
    },
    /// Revoke every grant for a server, log out of it, and forget it.
    Remove {
        /// The server's name.
        name: String,
    },
    /// As an agent: print `Authorization: Bearer …` for a server (for MCP
    /// clients that run a command for their headers).
    Headers(HeadersArgs),
    /// As an agent: a stdio MCP server that passes every message to the
    /// remote one through valetkeyd, which writes the token in (the MCP
    /// client never holds it). Configure it as an ordinary stdio server.
    Proxy(ProxyArgs),
    /// Print the client ID metadata document to publish at URL (then pass
    /// `--client-metadata-url URL` to `mcp add`).
    ClientMetadata {
        /// Where it will be published (https://, with a path).
        url: Url,
    },
}

/// `valetkey mcp add` options.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The name agents and you will call it by.
    pub name: String,
    /// The server's MCP endpoint (streamable HTTP), e.g. https://mcp.example.com/mcp.
    pub url: Url,
    /// Scopes to ask for (default: the server's challenge, else all it lists).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// A client id you registered by hand (redirect URI http://127.0.0.1/callback).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Read that client's secret from stdin (it goes to the keychain).
    #[arg(long, requires = "client_id")]
    pub client_secret_stdin: bool,
    /// Where you publish Valet Key's client ID metadata document (see
    /// `valetkey mcp client-metadata`); used when the server accepts them.
    #[arg(long)]
    pub client_metadata_url: Option<Url>,
    /// A PEM file of extra CA certificates for the server and its
    /// authorization server.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Replace a server of the same name.
    #[arg(long)]
    pub replace: bool,
    /// Only print the login URL; do not try to open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// How long to wait for the login, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// `valetkey mcp headers` options.
#[derive(Debug, Args)]
pub struct HeadersArgs {
    /// The server's name.
    pub name: String,
    /// The agent to ask as (name each MCP client apart).
    #[arg(long, env = "VALETKEY_AGENT")]
    pub agent: String,
    /// Scopes to ask for (default: what the login holds).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Print a JSON object `{"Authorization": "Bearer …"}` instead of a header line.
    #[arg(long)]
    pub json: bool,
    /// Without a grant, fail at once (exit 3) instead of waiting for your decision.
    #[arg(long)]
    pub no_wait: bool,
}

/// `valetkey mcp proxy` options.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The server's name.
    pub name: String,
    /// The agent to act as (name each MCP client apart).
    #[arg(long, env = "VALETKEY_AGENT")]
    pub agent: String,
    /// Scopes to ask for (default: what the login holds).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
}

/// Runs an `mcp` subcommand.
pub async fn mcp(cli: &Cli, cmd: &McpCmd) -> Result<(), Failure> {
    match cmd {
        McpCmd::Add(a) => add(cli, a).await,
        McpCmd::List => list(cli, None).await,
        McpCmd::Status { name } => list(cli, Some(name)).await,
        McpCmd::Remove { name } => remove(cli, name).await,
        McpCmd::Headers(a) => headers(cli, a).await,
        McpCmd::Proxy(a) => stdio::run(cli, a).await,
        McpCmd::ClientMetadata { url } => {
            register::check_metadata_url(url)?;
            let doc = register::metadata_document(url);
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(())
        }
    }
}

/// The servers the daemon knows.
async fn servers(c: &mut Client) -> Result<Vec<McpServerStatus>, Failure> {
    Ok(c.call::<McpList>(&NoParams {}).await.map_err(fail)?.servers)
}

/// An MCP server's provider, as the daemon holds it (for `valetkey login`).
pub async fn provider(
    cli: &Cli,
    name: &str,
) -> Result<Option<valetkey_core::config::Provider>, Failure> {
    let mut c = connect(cli).await?;
    let found = servers(&mut c)
        .await?
        .into_iter()
        .find(|s| s.server.name == name);
    found
        .map(|s| valetkey_core::mcp::provider_of(&s.server).map_err(Failure::from))
        .transpose()
}

async fn add(cli: &Cli, a: &AddArgs) -> Result<(), Failure> {
    valetkey_core::mcp::check_name(&a.name)?;
    let mut daemon = connect(cli).await?;
    if !a.replace
        && servers(&mut daemon)
            .await?
            .iter()
            .any(|s| s.server.name == a.name)
    {
        return Err(Failure::from(format!(
            "an MCP server named {:?} exists; pass --replace, or pick another name",
            a.name
        )));
    }
    let (mut server, client_secret) = discover_and_register(a).await?;
    let (granted, token) = log_in(a, &server, client_secret).await?;
    server.handshake = handshake(a, &server, &token).await;
    drop(token);
    daemon
        .call::<McpAdd>(&McpAddParams {
            server: server.clone(),
            replace: a.replace,
        })
        .await
        .map_err(fail)?;
    daemon
        .call::<LoginRecord>(&LoginRecordParams {
            provider: server.name.clone(),
            scopes: granted.clone(),
        })
        .await
        .map_err(fail)?;
    println!(
        "Added MCP server {} ({}). Logged in; the refresh token is in the OS keychain.\nScopes: {}\nMCP clients reach it with `valetkey mcp proxy {} --agent NAME`, or `valetkey mcp headers`.",
        server.name, server.resource, granted.join(" "), server.name
    );
    Ok(())
}

/// Discovery and client registration: the server's record, and the
/// client secret if one was given or issued.
async fn discover_and_register(a: &AddArgs) -> Result<(McpServer, Option<Secret>), Failure> {
    let http = valetkey_core::mcp::client(a.ca_file.as_deref())?;
    eprintln!("Asking {} without a token…", a.url);
    let found = discover::discover(&http, &a.url).await?;
    eprintln!(
        "  protected resource metadata: {}\n  resource (audience): {}\n  authorization server: {}",
        found.resource_metadata_url, found.resource.resource, found.server_metadata_url
    );
    let scopes = login_scopes(a, &found);
    let secret = if a.client_secret_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Some(Secret::new(s.trim().to_owned()))
    } else {
        None
    };
    let choice = register::Choice {
        client_id: a.client_id.clone(),
        client_secret: secret,
        metadata_url: a.client_metadata_url.clone(),
    };
    let reg = register::register(&http, &found.server, choice, &scopes).await?;
    eprintln!("  client: {} ({:?})", reg.client_id, reg.registration);
    let server = record(a, &found, scopes, &reg);
    Ok((server, reg.client_secret))
}

/// The server's `initialize`, asked with the login's fresh token, so MCP
/// clients get their handshake answered before any consent. A server that
/// will not answer is still added: `mcp proxy` then passes the client's
/// `initialize` on, after the token.
async fn handshake(
    a: &AddArgs,
    server: &McpServer,
    token: &Secret,
) -> Option<valetkey_ipc::control::McpHandshake> {
    let http = valetkey_core::mcp::client(a.ca_file.as_deref()).ok()?;
    match valetkey_core::mcp::handshake::probe(&http, &server.url, token).await {
        Ok(h) => {
            eprintln!("  MCP revisions: {}", h.protocol_versions.join(", "));
            Some(h)
        }
        Err(e) => {
            eprintln!("warning: {} did not answer initialize ({e}); MCP clients will wait for the token before their handshake is answered", server.url);
            None
        }
    }
}

/// The browser login; the refresh token (and any client secret) go to
/// the keychain. Returns the scopes granted, and the access token (for
/// the server's `initialize`, then dropped).
async fn log_in(
    a: &AddArgs,
    server: &McpServer,
    client_secret: Option<Secret>,
) -> Result<(Vec<String>, Secret), Failure> {
    let p = valetkey_core::mcp::provider_of(server)?;
    let keychain = SecretService::new();
    if let Some(s) = &client_secret {
        keychain.set(Item::ClientSecret(&p.keychain_key), s).await?;
    }
    let opts = LoginOptions {
        open_browser: !a.no_browser,
        login_hint: None,
        timeout: Duration::from_secs(a.timeout),
    };
    let tokens = login_loopback(&HttpUpstream::new(), &p, client_secret.as_ref(), &opts).await?;
    let rt = tokens.refresh_token.ok_or_else(|| Failure::from(format!(
        "{} gave no refresh token, so Valet Key could not keep the login; the authorization server must allow the refresh_token grant for this client{}",
        server.issuer,
        if server.scopes.iter().any(|s| s == "offline_access") { "" } else { " (it may want the offline_access scope: pass --scope offline_access with the others)" }
    )))?;
    keychain
        .set(Item::RefreshToken(&p.keychain_key), &rt)
        .await?;
    let scopes = tokens.scopes.unwrap_or_else(|| server.scopes.clone());
    Ok((scopes, tokens.access_token))
}

/// `--scope`, else discovery's; plus `offline_access` when the
/// authorization server lists it (many issue refresh tokens only then).
fn login_scopes(a: &AddArgs, found: &discover::Discovered) -> Vec<String> {
    let mut scopes: Vec<String> = if a.scopes.is_empty() {
        found.scopes()
    } else {
        a.scopes
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(str::to_owned)
            .collect()
    };
    let offline = "offline_access".to_owned();
    if found.server.scopes_supported.contains(&offline) && !scopes.contains(&offline) {
        scopes.push(offline);
    }
    scopes
}

fn record(
    a: &AddArgs,
    found: &discover::Discovered,
    scopes: Vec<String>,
    reg: &register::Registered,
) -> McpServer {
    let m = &found.server;
    McpServer {
        name: a.name.clone(),
        url: a.url.to_string(),
        resource: found.resource.resource.clone(),
        issuer: m.issuer.clone(),
        authorization_endpoint: m
            .authorization_endpoint
            .as_ref()
            .map(Url::to_string)
            .unwrap_or_default(),
        token_endpoint: m
            .token_endpoint
            .as_ref()
            .map(Url::to_string)
            .unwrap_or_default(),
        revocation_endpoint: m.revocation_endpoint.as_ref().map(Url::to_string),
        scopes,
        scopes_supported: found.resource.scopes_supported.clone(),
        client_id: reg.client_id.clone(),
        registration: reg.registration,
        confidential: reg.client_secret.is_some(),
        ca_file: a
            .ca_file
            .as_ref()
            .and_then(|p| std::path::absolute(p).ok())
            .map(|p| p.to_string_lossy().into_owned()),
        handshake: None,
    }
}

async fn list(cli: &Cli, only: Option<&str>) -> Result<(), Failure> {
    let mut c = connect(cli).await?;
    let all = servers(&mut c).await?;
    let shown: Vec<&McpServerStatus> = all
        .iter()
        .filter(|s| only.is_none_or(|n| s.server.name == n))
        .collect();
    if let (Some(n), true) = (only, shown.is_empty()) {
        return Err(Failure::from(format!(
            "no MCP server named {n:?}; `valetkey mcp list` shows them"
        )));
    }
    if shown.is_empty() {
        println!("No MCP servers. Add one with `valetkey mcp add NAME URL`.");
    }
    for s in shown {
        let login = match (s.logged_in_at, s.login_required) {
            (_, true) => "login required: run `valetkey login NAME`".to_owned(),
            (Some(t), false) => format!("logged in {}", when(Some(t))),
            (None, false) => "not logged in".to_owned(),
        };
        println!("{}  {}  ({login})", s.server.name, s.server.url);
        if only.is_some() {
            println!("  resource (audience): {}", s.server.resource);
            println!("  authorization server: {}", s.server.issuer);
            println!(
                "  client: {} ({:?})",
                s.server.client_id, s.server.registration
            );
            println!("  login scopes: {}", s.login_scopes.join(" "));
        }
        let agents = if s.agents.is_empty() {
            "none".to_owned()
        } else {
            s.agents.join(", ")
        };
        println!("  agents with a grant: {agents}");
    }
    Ok(())
}

async fn remove(cli: &Cli, name: &str) -> Result<(), Failure> {
    let r = connect(cli)
        .await?
        .call::<McpRemove>(&McpRemoveParams { name: name.into() })
        .await
        .map_err(fail)?;
    println!("Revoked {} grant(s) for {name}.", r.grants_revoked);
    match r.upstream {
        UpstreamRevocation::Revoked => println!("Revoked the refresh token at its authorization server (RFC 7009)."),
        UpstreamRevocation::Unsupported => println!("Its authorization server has no revocation endpoint: the refresh token is deleted here but stays valid there until it expires."),
        UpstreamRevocation::NoToken => println!("There was no refresh token in the keychain."),
        UpstreamRevocation::Failed => println!("Revocation at the authorization server failed: {}. The token was deleted here.", r.error.unwrap_or_default()),
    }
    println!("Forgot MCP server {name}.");
    Ok(())
}

async fn headers(cli: &Cli, a: &HeadersArgs) -> Result<(), Failure> {
    let mut c = super::client::hello_as(cli, &a.agent, "MCP client headers", None).await?;
    let (_, scopes) = server_scopes(&mut c, &a.name, &a.scopes).await?;
    let r = c
        .call::<TokenGet>(&TokenGetParams {
            provider: a.name.clone(),
            scopes,
            resource: None,
            wait: Some(!a.no_wait),
            duration_secs: None,
            context: None,
        })
        .await
        .map_err(client_failure)?;
    let value = format!("Bearer {}", r.access_token.expose());
    if a.json {
        println!("{}", serde_json::json!({ "Authorization": value }));
    } else {
        println!("Authorization: {value}");
    }
    Ok(())
}

/// The server as `providers.list` tells an agent (its MCP endpoint and
/// recorded handshake), and the scopes to ask for: `given`, else what the
/// login holds.
async fn server_scopes(
    c: &mut Client,
    name: &str,
    given: &[String],
) -> Result<(ProviderSummary, Vec<String>), Failure> {
    let list = c
        .call::<valetkey_ipc::methods::ProvidersList>(&ProvidersListParams {
            handshake_of: Some(name.to_owned()),
        })
        .await
        .map_err(client_failure)?;
    let p = list
        .providers
        .into_iter()
        .find(|p| p.name == name && p.mcp_url.is_some())
        .ok_or_else(|| {
            Failure::from(format!(
                "no MCP server named {name:?}; `valetkey mcp list` shows them"
            ))
        })?;
    if !given.is_empty() {
        let scopes = given
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(str::to_owned)
            .collect();
        return Ok((p, scopes));
    }
    let scopes: Vec<String> = p
        .allowed_scopes
        .iter()
        .filter(|s| p.login_scopes.contains(s))
        .cloned()
        .collect();
    if scopes.is_empty() {
        return Err(Failure::from(format!(
            "{name} holds no scopes yet; run `valetkey login {name}`"
        )));
    }
    Ok((p, scopes))
}

//! `valetkey token` (the CLI acting as an agent) and `valetkey status`.

use clap::Args;
use valetkey_ipc::methods::{AgentInfo, ProvidersList, TokenGet, TokenGetParams};
use valetkey_ipc::{Client, ClientError};

use super::client::client_failure;
use super::{Cli, Failure, EXIT_UNAVAILABLE};

/// `valetkey token` options.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Provider name.
    pub provider: String,
    /// A scope to ask for (repeatable, or space-separated).
    #[arg(long = "scope", short = 's', required = true)]
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicator.
    #[arg(long)]
    pub resource: Option<String>,
    /// The agent name to say hello as.
    #[arg(long, default_value = "valetkey-cli", env = "VALETKEY_AGENT")]
    pub agent: String,
    /// The purpose to declare.
    #[arg(long, default_value = "command-line token request")]
    pub purpose: String,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Without a grant, fail at once (exit 3, with the consent id) instead of
    /// waiting for the user's decision.
    #[arg(long)]
    pub no_wait: bool,
    /// How long access is wanted (shown in the prompt), e.g. `1h`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Act as a sub-agent with this delegation token (from `valetkey delegate`).
    #[arg(long, env = "VALETKEY_DELEGATION", hide_env_values = true)]
    pub delegation: Option<String>,
}

/// Gets a token through the daemon, as an agent would.
pub async fn token(cli: &Cli, a: &TokenArgs) -> Result<(), Failure> {
    let mut c = super::client::hello_as(cli, &a.agent, &a.purpose, a.delegation.as_deref()).await?;
    let scopes = a
        .scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    let r = c
        .call::<TokenGet>(&TokenGetParams {
            provider: a.provider.clone(),
            scopes,
            resource: a.resource.clone(),
            wait: Some(!a.no_wait),
            duration_secs: a.duration.map(|d| d.as_secs()),
            context: None,
        })
        .await
        .map_err(client_failure)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", r.access_token.expose());
    }
    Ok(())
}

/// Daemon reachability and provider state.
pub async fn status(cli: &Cli) -> Result<(), Failure> {
    let cfg = cli.load_config()?;
    let socket = cli.socket_path(Some(&cfg));
    println!("config:  {}", cfg.path.display());
    println!("state:   {}", valetkey_core::dirs::db_path().display());
    print!("daemon:  {} ", socket.display());
    let daemon = async {
        let mut c = Client::connect(&socket).await?;
        let h = c
            .hello(AgentInfo {
                name: "valetkey-status".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                purpose: "status check".into(),
            })
            .await?;
        let p = c.call::<ProvidersList>(&Default::default()).await?;
        Ok::<_, ClientError>((h, p))
    };
    match daemon.await {
        Ok((h, _)) => println!(
            "running (valetkeyd {}, protocol {})",
            h.daemon_version, h.protocol
        ),
        Err(e) => {
            println!("not reachable");
            super::grants::providers(cli).await?;
            return Err(Failure {
                code: EXIT_UNAVAILABLE,
                message: e.to_string(),
            });
        }
    }
    super::grants::providers(cli).await
}

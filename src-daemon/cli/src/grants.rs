//! `valetkey grant`, `agents` and `providers`: grants, the registry and
//! provider logins, as the daemon holds them. Every change goes through
//! the daemon (the only writer of its database), so it applies at once,
//! is recorded in the audit trail and reaches the tray.

use std::path::PathBuf;

use clap::Subcommand;
use valetkey_ipc::control::{
    AgentsList, GrantsAdd, GrantsAddParams, GrantsList, GrantsListParams, ProviderStatus,
    ProvidersStatus, Revoke, RevokeParams, RevokeTarget,
};
use valetkey_ipc::methods::NoParams;

use super::client::{connect, fail};
use super::{when, Cli, Failure, EXIT_UNAVAILABLE};

/// `valetkey grant …`.
#[derive(Debug, Subcommand)]
pub enum GrantCmd {
    /// Allow an agent scopes on a provider (binds to the agent's binary).
    Add {
        /// Agent name (as it says in hello).
        agent: String,
        /// Provider name.
        provider: String,
        /// Scopes to grant.
        #[arg(required = true)]
        scopes: Vec<String>,
        /// How long the grant lasts (e.g. 15m, 1h, 8h); default: until revoked.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        /// Bind to this executable instead of the one the agent last ran as.
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// List grants.
    List {
        /// Only this agent's.
        agent: Option<String>,
        /// Include expired grants.
        #[arg(long)]
        all: bool,
    },
    /// Revoke an agent's grants (one provider, or all).
    Revoke {
        /// Agent name.
        agent: String,
        /// Provider name (default: every provider).
        provider: Option<String>,
    },
}

/// Runs a grant subcommand.
pub async fn grant(cli: &Cli, cmd: &GrantCmd) -> Result<(), Failure> {
    let mut c = connect(cli).await?;
    match cmd {
        GrantCmd::Add {
            agent,
            provider,
            scopes,
            ttl,
            binary,
        } => {
            let binary = match binary {
                Some(p) => Some(
                    crate::shim::resolve_binary(p)?
                        .to_string_lossy()
                        .into_owned(),
                ),
                None => None,
            };
            let r = c
                .call::<GrantsAdd>(&GrantsAddParams {
                    agent: agent.clone(),
                    provider: provider.clone(),
                    scopes: scopes.clone(),
                    ttl_secs: ttl.map(|d| d.as_secs().max(1)),
                    binary,
                })
                .await
                .map_err(fail)?;
            let g = &r.grant;
            println!(
                "Granted {agent} ({}, sha256 {}…) {} on {provider}, until {}.",
                r.exe,
                &g.binary_sha256[..12.min(g.binary_sha256.len())],
                g.scopes.join(" "),
                g.expires_at
                    .map(|t| when(Some(t)))
                    .unwrap_or_else(|| "revoked".into())
            );
            if r.reinstated {
                println!("{agent} was suspended or deprecated; this grant made it active again.");
            }
        }
        GrantCmd::List { agent, all } => {
            let r = c
                .call::<GrantsList>(&GrantsListParams {
                    agent: agent.clone(),
                    all: *all,
                })
                .await
                .map_err(fail)?;
            if r.grants.is_empty() {
                println!("No grants. Add one with `valetkey grant add AGENT PROVIDER SCOPE…`.");
                return Ok(());
            }
            println!(
                "{:<20} {:<12} {:<30} {:<22} {:<22} BINARY",
                "AGENT", "PROVIDER", "SCOPES", "EXPIRES", "LAST USED"
            );
            for e in r.grants {
                let g = e.grant;
                let scopes = match g.proxy_only {
                    true => format!("{} (proxy only)", g.scopes.join(" ")),
                    false => g.scopes.join(" "),
                };
                println!(
                    "{:<20} {:<12} {:<30} {:<22} {:<22} {}…",
                    e.agent,
                    g.provider,
                    scopes,
                    g.expires_at
                        .map(|t| when(Some(t)))
                        .unwrap_or_else(|| "until revoked".into()),
                    when(g.last_used_at),
                    &g.binary_sha256[..12.min(g.binary_sha256.len())]
                );
            }
        }
        GrantCmd::Revoke { agent, provider } => {
            let listed = c
                .call::<GrantsList>(&GrantsListParams {
                    agent: Some(agent.clone()),
                    all: true,
                })
                .await
                .map_err(fail)?;
            let ids: Vec<i64> = listed
                .grants
                .iter()
                .filter(|e| provider.as_deref().is_none_or(|p| e.grant.provider == p))
                .map(|e| e.grant.id)
                .collect();
            if ids.is_empty() {
                return Err(Failure::from(format!("{agent} has no grants to revoke")));
            }
            for id in &ids {
                c.call::<Revoke>(&RevokeParams {
                    target: RevokeTarget::Grant { id: *id },
                })
                .await
                .map_err(fail)?;
            }
            println!(
                "Revoked {} grant(s) of {agent}. Its next token request is refused.",
                ids.len()
            );
        }
    }
    Ok(())
}

/// `valetkey agents`.
pub async fn agents(cli: &Cli) -> Result<(), Failure> {
    let mut c = connect(cli).await?;
    let r = c.call::<AgentsList>(&NoParams {}).await.map_err(fail)?;
    if r.agents.is_empty() {
        println!("No agent has connected yet.");
    }
    for a in r.agents {
        println!("{} (id {}) v{:?}: {}", a.name, a.id, a.version, a.purpose);
        println!(
            "  first seen {}, last seen {}",
            when(Some(a.first_seen)),
            when(Some(a.last_seen))
        );
        for b in a.binaries {
            println!("  binary {} sha256 {}", b.exe, b.sha256);
        }
    }
    Ok(())
}

/// The daemon's view of each provider's login, or `None` when it is not
/// running (then only the config is known).
pub async fn provider_states(cli: &Cli) -> Result<Option<Vec<ProviderStatus>>, Failure> {
    match connect(cli).await {
        Ok(mut c) => Ok(Some(
            c.call::<ProvidersStatus>(&NoParams {})
                .await
                .map_err(fail)?
                .providers,
        )),
        Err(f) if f.code == EXIT_UNAVAILABLE => Ok(None),
        Err(f) => Err(f),
    }
}

/// `valetkey providers`: the config, with each login's state when the
/// daemon runs.
pub async fn providers(cli: &Cli) -> Result<(), Failure> {
    let cfg = cli.load_config()?;
    if cfg.providers.is_empty() {
        println!("No providers configured in {}.", cfg.path.display());
        return Ok(());
    }
    let states = provider_states(cli).await?;
    for p in cfg.providers.values() {
        let st = states.as_ref().map(|v| v.iter().find(|s| s.name == p.name));
        let login = match st {
            None => "login state unknown (valetkeyd is not running)".to_string(),
            Some(None) => "not logged in".to_string(),
            Some(Some(s)) if s.login_required => {
                "login required (rejected by provider)".to_string()
            }
            Some(Some(s)) => match s.logged_in_at {
                Some(t) => format!("logged in {}", when(Some(t))),
                None => "not logged in".to_string(),
            },
        };
        println!(
            "{:<12} {:<24} {}; allowed: {}; narrows on refresh: {}",
            p.name,
            p.display_name,
            login,
            p.allowed_scopes.join(" "),
            if p.narrows_on_refresh { "yes" } else { "no" }
        );
    }
    Ok(())
}

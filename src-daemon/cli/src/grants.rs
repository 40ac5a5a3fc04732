//! `valetkey grant`, `agents`, `providers`: the registry and grants, read
//! and written straight in the state database (WAL lets the daemon run
//! meanwhile; it reads grants on every request, so changes apply at once).

use std::path::PathBuf;

use clap::Subcommand;

use valetkey_ipc::control::{Revoke, RevokeParams, RevokeTarget};

use super::{when, Cli, Failure};
use valetkey_core::store::{NewGrant, Store};

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

fn store() -> Result<Store, Failure> {
    Ok(Store::open(&valetkey_core::dirs::db_path())?)
}

/// Runs a grant subcommand.
pub async fn grant(cli: &Cli, cmd: &GrantCmd) -> Result<(), Failure> {
    let s = store()?;
    match cmd {
        GrantCmd::Add {
            agent,
            provider,
            scopes,
            ttl,
            binary,
        } => {
            let cfg = cli.load_config()?;
            let p = cfg.provider(provider).ok_or_else(|| {
                Failure::from(format!(
                    "no provider named {provider:?} in {}",
                    cfg.path.display()
                ))
            })?;
            valetkey_ipc::methods::validate_scopes(scopes)?;
            let outside: Vec<&String> = scopes
                .iter()
                .filter(|x| !p.allowed_scopes.contains(x))
                .collect();
            if !outside.is_empty() {
                return Err(Failure::from(format!(
                    "{provider} does not allow {}; allowed_scopes in the config: {}",
                    outside
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    p.allowed_scopes.join(" ")
                )));
            }
            let (agent_id, sha, exe) = match binary {
                Some(path) => {
                    let path = std::fs::canonicalize(path)?;
                    let sha = valetkey_core::attest::sha256_file(&path)?;
                    let exe = path.to_string_lossy().into_owned();
                    (s.ensure_agent(agent, &exe, &sha)?, sha, exe)
                }
                None => {
                    let row = s.agent_by_name(agent)?.ok_or_else(|| Failure::from(format!(
                        "agent {agent:?} has not connected yet, so its binary is unknown; run it once, or pass --binary PATH"
                    )))?;
                    let b = s
                        .agent_binaries(row.id)?
                        .into_iter()
                        .next()
                        .ok_or_else(|| {
                            Failure::from(format!(
                                "agent {agent:?} has no recorded binary; pass --binary PATH"
                            ))
                        })?;
                    (row.id, b.sha256, b.exe)
                }
            };
            let expires_at = ttl.map(|d| valetkey_core::store::now() + d.as_secs() as i64);
            s.upsert_grant(&NewGrant {
                agent_id,
                provider,
                scopes,
                binary_sha256: &sha,
                expires_at,
            })?;
            // An explicit grant is the user taking the agent back.
            s.set_agent_status(agent_id, valetkey_core::store::ACTIVE)?;
            let mut rec = valetkey_core::audit::by_user("grant", Some(agent));
            rec.binary_sha256 = Some(sha.clone());
            rec.provider = Some(provider.clone());
            rec.granted = scopes.clone();
            rec.outcome = "added".into();
            rec.detail = Some(format!(
                "by the CLI for {exe}, until {}",
                expires_at.map_or_else(|| "revoked".into(), |t| when(Some(t)))
            ));
            valetkey_core::audit::write(&s, &rec)?;
            println!(
                "Granted {agent} ({exe}, sha256 {}…) {} on {provider}, until {}.",
                &sha[..12],
                scopes.join(" "),
                expires_at
                    .map(|t| when(Some(t)))
                    .unwrap_or_else(|| "revoked".into())
            );
        }
        GrantCmd::List { agent, all } => {
            let rows = s.list_grants(agent.as_deref(), *all)?;
            if rows.is_empty() {
                println!("No grants. Add one with `valetkey grant add AGENT PROVIDER SCOPE…`.");
                return Ok(());
            }
            println!(
                "{:<20} {:<12} {:<30} {:<22} {:<22} BINARY",
                "AGENT", "PROVIDER", "SCOPES", "EXPIRES", "LAST USED"
            );
            for g in rows {
                println!(
                    "{:<20} {:<12} {:<30} {:<22} {:<22} {}…",
                    g.agent_name,
                    g.provider,
                    g.scopes.join(" "),
                    g.expires_at
                        .map(|t| when(Some(t)))
                        .unwrap_or_else(|| "until revoked".into()),
                    when(g.last_used_at),
                    &g.binary_sha256[..12.min(g.binary_sha256.len())]
                );
            }
        }
        GrantCmd::Revoke { agent, provider } => {
            let ids: Vec<i64> = s
                .list_grants(Some(agent), true)?
                .into_iter()
                .filter(|g| provider.as_deref().is_none_or(|p| g.provider == p))
                .map(|g| g.id)
                .collect();
            if ids.is_empty() {
                return Err(Failure::from(format!("{agent} has no grants to revoke")));
            }
            // Through the daemon when it runs, so its cached tokens and open
            // connections go too; straight in the database otherwise.
            let via_daemon = match super::client::connect(cli).await {
                Ok(mut c) => {
                    for id in &ids {
                        c.call::<Revoke>(&RevokeParams {
                            target: RevokeTarget::Grant { id: *id },
                        })
                        .await?;
                    }
                    true
                }
                Err(f) if f.code == super::EXIT_UNAVAILABLE => {
                    s.revoke_grants(agent, provider.as_deref())?;
                    false
                }
                Err(f) => return Err(f),
            };
            println!(
                "Revoked {} grant(s) of {agent}{}. Its next token request is refused.",
                ids.len(),
                if via_daemon {
                    ""
                } else {
                    " (daemon not running)"
                }
            );
        }
    }
    Ok(())
}

/// `valetkey agents`.
pub fn agents(_cli: &Cli) -> Result<(), Failure> {
    let s = store()?;
    let agents = s.list_agents()?;
    if agents.is_empty() {
        println!("No agent has connected yet.");
    }
    for a in agents {
        println!("{} (id {}) v{:?}: {}", a.name, a.id, a.version, a.purpose);
        println!(
            "  first seen {}, last seen {}",
            when(Some(a.created_at)),
            when(Some(a.last_seen))
        );
        for b in s.agent_binaries(a.id)? {
            println!("  binary {} sha256 {}", b.exe, b.sha256);
        }
    }
    Ok(())
}

/// `valetkey providers`.
pub fn providers(cli: &Cli) -> Result<(), Failure> {
    let cfg = cli.load_config()?;
    if cfg.providers.is_empty() {
        println!("No providers configured in {}.", cfg.path.display());
        return Ok(());
    }
    let s = store()?;
    for p in cfg.providers.values() {
        let st = s.provider_state(&p.name)?;
        let login = match (st.logged_in_at, st.login_required) {
            (_, true) => "login required (rejected by provider)".to_string(),
            (Some(t), false) => format!("logged in {}", when(Some(t))),
            (None, false) => "not logged in".to_string(),
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

//! CLI parity with the tray app, for people without a desktop: decide
//! consents, revoke, pause and resume, over the control socket.

use clap::{Args, Subcommand};
use valetkey_ipc::control::{
    AgentNameParams, AgentsReinstate, ConsentDecide, ConsentDecideParams, ConsentList, Decision,
    IssuingSet, IssuingSetParams, Revoke, RevokeParams, RevokeTarget,
};
use valetkey_ipc::methods::NoParams;

use super::client::{connect, fail};
use super::{when, Cli, Failure};

/// `valetkey consent …`.
#[derive(Debug, Subcommand)]
pub enum ConsentCmd {
    /// List consents waiting for a decision.
    List,
    /// Allow a pending consent.
    Allow(AllowArgs),
    /// Deny a pending consent.
    Deny {
        /// The consent id (from `consent list`).
        id: String,
        /// Refuse this agent binary on this provider from now on, without asking.
        #[arg(long)]
        remember: bool,
    },
}

/// `valetkey consent allow`.
#[derive(Debug, Args)]
pub struct AllowArgs {
    /// The consent id (from `consent list`).
    pub id: String,
    /// Only for the waiting request; no standing grant.
    #[arg(long, conflicts_with_all = ["for", "always"])]
    pub once: bool,
    /// A grant for this long, e.g. 15m, 1h, 8h (the default is 1h).
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub r#for: Option<std::time::Duration>,
    /// A grant until revoked.
    #[arg(long, conflicts_with = "for")]
    pub always: bool,
    /// Allow only these of the asked scopes (repeatable).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
}

/// `valetkey revoke …`.
#[derive(Debug, Subcommand)]
pub enum RevokeCmd {
    /// One grant, by id (from `grant list`).
    Grant {
        /// Grant id.
        id: i64,
    },
    /// Every grant of an agent; the agent is suspended until reinstated.
    Agent {
        /// Agent name.
        name: String,
    },
    /// A delegation token and every token below it.
    Delegation {
        /// Its jti (from `delegate --json`, or `valetkey audit`).
        jti: String,
    },
    /// Every grant of every agent.
    All {
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

/// What holds a token to its scopes, for a person.
pub fn limit_words(l: valetkey_ipc::control::Limit, provider: &str) -> String {
    use valetkey_ipc::control::Limit;
    match l {
        Limit::Provider => format!("{provider}: the token carries only these scopes"),
        Limit::GithubApp => "GitHub itself: your GitHub App narrows the token to these permissions and repositories".into(),
        Limit::ProxyRules => format!("Valet Key's proxy rules: {provider} cannot narrow the token, so it stays in Valet Key and never reaches the agent"),
        Limit::WholeLogin => format!("NOTHING: {provider} cannot narrow, and the agent gets a token with everything your login allows (allow_full_scope)"),
    }
}

/// Runs `valetkey consent …`.
pub async fn consent(cli: &Cli, cmd: &ConsentCmd) -> Result<(), Failure> {
    let mut c = connect(cli).await?;
    match cmd {
        ConsentCmd::List => {
            let r = c.call::<ConsentList>(&NoParams {}).await.map_err(fail)?;
            if r.consents.is_empty() {
                println!("No consents waiting.");
            }
            for p in r.consents {
                let confinement = match &p.confinement {
                    Some(b) => format!(
                        "in a box ({}, network {}): {}, writes only {}",
                        b.profile,
                        b.network,
                        b.argv.join(" "),
                        b.cwd
                    ),
                    None => {
                        "NOT CONFINED: this agent runs as you and can read your keychain".into()
                    }
                };
                let action = if p.action.is_empty() {
                    format!("use {} with {}", p.provider_display, p.scopes.join(", "))
                } else {
                    p.action.clone()
                };
                println!(
                    "{}  {} wants to {}{}\n    scopes: {}\n    {confinement}\n    binary {} (sha256 {}…), pid {}, parent {}\n    purpose: {}\n    asked {}, times out {}{}",
                    p.id,
                    p.agent.name,
                    action,
                    p.duration_secs
                        .map(|s| format!(" for {}", humantime::format_duration(std::time::Duration::from_secs(s))))
                        .unwrap_or_default(),
                    p.scopes.join(" "),
                    p.exe,
                    &p.sha256[..12.min(p.sha256.len())],
                    p.pid,
                    p.parents
                        .first()
                        .and_then(|x| x.exe.clone())
                        .unwrap_or_else(|| "?".into()),
                    if p.agent.purpose.is_empty() { "(none given)" } else { &p.agent.purpose },
                    when(Some(p.created_at as i64)),
                    when(Some(p.expires_at as i64)),
                    if p.requests > 1 { format!(" ({} identical requests)", p.requests) } else { String::new() },
                );
                if !p.in_words.is_empty() {
                    println!("    lets it: {}", p.in_words.join("; "));
                }
                if let Some(l) = p.limit {
                    println!("    limited by: {}", limit_words(l, &p.provider_display));
                }
                if p.proxy_only {
                    println!("    for the egress proxy only: the agent gets placeholders, never the token");
                }
            }
        }
        ConsentCmd::Allow(a) => {
            let decision = if a.once {
                Decision::Once
            } else if a.always {
                Decision::Always
            } else {
                Decision::For {
                    duration_secs: a.r#for.map(|d| d.as_secs()).unwrap_or(3600),
                }
            };
            let r = c
                .call::<ConsentDecide>(&ConsentDecideParams {
                    id: a.id.clone(),
                    decision,
                    scopes: (!a.scopes.is_empty()).then(|| a.scopes.clone()),
                })
                .await
                .map_err(fail)?;
            match r.grant_id {
                Some(g) => println!("Allowed {} (grant {g}).", r.scopes.join(" ")),
                None => println!("Allowed {} once.", r.scopes.join(" ")),
            }
        }
        ConsentCmd::Deny { id, remember } => {
            c.call::<ConsentDecide>(&ConsentDecideParams {
                id: id.clone(),
                decision: Decision::Deny {
                    remember: *remember,
                },
                scopes: None,
            })
            .await
            .map_err(fail)?;
            println!(
                "Denied{}.",
                if *remember {
                    " (remembered; `valetkey reinstate AGENT` forgets it)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// Runs `valetkey revoke …`.
pub async fn revoke(cli: &Cli, cmd: &RevokeCmd) -> Result<(), Failure> {
    let target = match cmd {
        RevokeCmd::Grant { id } => RevokeTarget::Grant { id: *id },
        RevokeCmd::Agent { name } => RevokeTarget::Agent { name: name.clone() },
        RevokeCmd::Delegation { jti } => RevokeTarget::Delegation { jti: jti.clone() },
        RevokeCmd::All { yes: false } => {
            return Err(Failure::from(
                "this revokes every grant of every agent; pass --yes to confirm",
            ))
        }
        RevokeCmd::All { yes: true } => RevokeTarget::All,
    };
    let mut c = connect(cli).await?;
    let r = c
        .call::<Revoke>(&RevokeParams { target })
        .await
        .map_err(fail)?;
    println!(
        "Revoked: {} grant(s) removed, {} cached token(s) dropped, {} revoked at the provider, {} connection(s) closed.",
        r.grants_removed, r.tokens_dropped, r.tokens_revoked_upstream, r.connections_closed
    );
    Ok(())
}

/// `valetkey pause` / `resume`.
pub async fn set_paused(cli: &Cli, paused: bool) -> Result<(), Failure> {
    let mut c = connect(cli).await?;
    c.call::<IssuingSet>(&IssuingSetParams { paused })
        .await
        .map_err(fail)?;
    println!(
        "{}",
        if paused {
            "Issuing paused: every agent's token request is refused until `valetkey resume`."
        } else {
            "Issuing resumed."
        }
    );
    Ok(())
}

/// `valetkey reinstate NAME`.
pub async fn reinstate(cli: &Cli, name: &str) -> Result<(), Failure> {
    let mut c = connect(cli).await?;
    c.call::<AgentsReinstate>(&AgentNameParams { name: name.into() })
        .await
        .map_err(fail)?;
    println!("Reinstated {name}: it may ask for consent again.");
    Ok(())
}

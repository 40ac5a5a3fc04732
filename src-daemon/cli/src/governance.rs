//! `valetkey agents …`, `policy …`, `delegate`, `jwks` and `keys rotate`:
//! the registry's lifecycle, the policy step and delegation.
//!
//! Lifecycle changes go through the control socket, so they take effect
//! in the running daemon at once (cached tokens dropped, connections
//! closed). `policy check` and `policy test` run the policy engine in this
//! process, on the same files the daemon reads, so they work with the
//! daemon stopped.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use valetkey_ipc::control::{
    AgentNameParams, AgentView, AgentsEdit, AgentsEditParams, AgentsLifecycle,
    AgentsLifecycleParams, AgentsShow, KeysRotate, Lifecycle, PolicyStatus,
};
use valetkey_ipc::methods::{DelegationCreate, DelegationCreateParams, Jwks};
use valetkey_ipc::policy::{Classification, PolicyInput, Verdict};
use valetkey_ipc::Client;

use super::client::{client_failure, connect, fail, hello_as};
use super::{when, Cli, Failure, EXIT_CONSENT, EXIT_UNAVAILABLE};
use valetkey_core::config::RegoVersion;
use valetkey_core::policy::{self, PolicySet};

/// `valetkey agents …`.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub cmd: Option<AgentsCmd>,
    /// Show the monitor's counters per agent instead of the list.
    #[arg(long)]
    pub stats: bool,
    /// With --stats: JSON.
    #[arg(long, requires = "stats")]
    pub json: bool,
}

/// Agent registry subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentsCmd {
    /// List agents with their binaries.
    List,
    /// Show an agent's whole record.
    Show {
        /// Agent name.
        name: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the record a person owns.
    Edit(EditArgs),
    /// Refuse it at once: cached tokens dropped, connections closed, every
    /// delegation below it revoked. Grants are kept for `resume`.
    Suspend {
        /// Agent name.
        name: String,
    },
    /// Make a suspended or deprecated agent active again.
    Resume {
        /// Agent name.
        name: String,
    },
    /// Retire it: every grant and delegation removed, nothing new issued.
    Deprecate {
        /// Agent name.
        name: String,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
    /// Record that you reviewed the agent's record now.
    Review {
        /// Agent name.
        name: String,
    },
}

/// `valetkey agents edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Agent name.
    pub name: String,
    /// Name shown to people.
    #[arg(long)]
    pub display_name: Option<String>,
    /// The registered purpose (policies see it as input.agent.purpose).
    #[arg(long)]
    pub purpose: Option<String>,
    /// The owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// The most sensitive data it may touch.
    #[arg(long, value_enum)]
    pub classification: Option<ClassArg>,
    /// Free text such as dev or prod.
    #[arg(long)]
    pub environment: Option<String>,
    /// A tool it may use (repeatable); `--tool ''` clears the list.
    #[arg(long = "tool")]
    pub tools: Option<Vec<String>>,
    /// A provider it may use (repeatable); `--provider ''` clears the list.
    #[arg(long = "provider")]
    pub providers: Option<Vec<String>>,
}

/// Classification on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClassArg {
    /// public
    Public,
    /// internal
    Internal,
    /// confidential
    Confidential,
}

impl From<ClassArg> for Classification {
    fn from(c: ClassArg) -> Self {
        match c {
            ClassArg::Public => Classification::Public,
            ClassArg::Internal => Classification::Internal,
            ClassArg::Confidential => Classification::Confidential,
        }
    }
}

fn print_agent(a: &AgentView) {
    println!("{} (id {}): {}", a.name, a.id, a.status);
    println!("  display name    {}", a.display_name);
    println!("  purpose         {}", a.purpose);
    if a.declared_purpose != a.purpose {
        println!("  declared        {}", a.declared_purpose);
    }
    println!("  owner           {}", a.owner);
    println!("  classification  {}", a.classification.as_str());
    println!("  environment     {}", a.environment);
    let list = |v: &[String]| {
        if v.is_empty() {
            "any".to_string()
        } else {
            v.join(" ")
        }
    };
    println!("  tools           {}", list(&a.tools));
    println!("  providers       {}", list(&a.providers));
    println!("  created         {}", when(Some(a.first_seen)));
    println!("  last seen       {}", when(Some(a.last_seen)));
    println!("  last review     {}", when(a.reviewed_at));
    for b in &a.binaries {
        println!("  binary          {} sha256 {}", b.exe, b.sha256);
    }
    for g in &a.grants {
        println!(
            "  grant {:<4}      {} {} until {}",
            g.id,
            g.provider,
            g.scopes.join(" "),
            g.expires_at.map_or("revoked".into(), |t| when(Some(t)))
        );
    }
}

/// Runs `valetkey agents …`.
pub async fn agents(cli: &Cli, a: &AgentsArgs) -> Result<(), Failure> {
    if a.stats {
        return super::audit::stats(cli, a.json).await;
    }
    let cmd = match &a.cmd {
        None | Some(AgentsCmd::List) => return super::grants::agents(cli).await,
        Some(c) => c,
    };
    let mut c = connect(cli).await?;
    let step = |name: &String, step| AgentsLifecycleParams {
        name: name.clone(),
        step,
    };
    let p = match cmd {
        AgentsCmd::List => return Ok(()),
        AgentsCmd::Show { name, json } => {
            let v = c
                .call::<AgentsShow>(&AgentNameParams { name: name.clone() })
                .await
                .map_err(fail)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_agent(&v);
            }
            return Ok(());
        }
        AgentsCmd::Edit(e) => {
            let clean = |v: &Option<Vec<String>>| {
                v.as_ref()
                    .map(|v| v.iter().filter(|x| !x.is_empty()).cloned().collect())
            };
            let v = c
                .call::<AgentsEdit>(&AgentsEditParams {
                    name: e.name.clone(),
                    display_name: e.display_name.clone(),
                    purpose: e.purpose.clone(),
                    owner: e.owner.clone(),
                    classification: e.classification.map(Into::into),
                    environment: e.environment.clone(),
                    tools: clean(&e.tools),
                    providers: clean(&e.providers),
                })
                .await
                .map_err(fail)?;
            print_agent(&v);
            return Ok(());
        }
        AgentsCmd::Suspend { name } => step(name, Lifecycle::Suspend),
        AgentsCmd::Resume { name } => step(name, Lifecycle::Resume),
        AgentsCmd::Deprecate { name, yes: false } => {
            return Err(Failure::from(format!(
            "deprecating {name} removes every grant and delegation it has; pass --yes to confirm"
        )))
        }
        AgentsCmd::Deprecate { name, yes: true } => step(name, Lifecycle::Deprecate),
        AgentsCmd::Review { name } => step(name, Lifecycle::Review),
    };
    let r = c.call::<AgentsLifecycle>(&p).await.map_err(fail)?;
    println!(
        "{} is {}{}.",
        r.agent.name,
        r.agent.status,
        if matches!(p.step, Lifecycle::Review) {
            format!(" (reviewed {})", when(r.agent.reviewed_at))
        } else {
            String::new()
        }
    );
    if matches!(p.step, Lifecycle::Suspend | Lifecycle::Deprecate) {
        println!(
            "{} grant(s) removed, {} cached token(s) dropped, {} connection(s) closed, {} delegation(s) revoked.",
            r.revoked.grants_removed,
            r.revoked.tokens_dropped,
            r.revoked.connections_closed,
            r.delegations_revoked
        );
    }
    Ok(())
}

/// `valetkey policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Decide an input document (JSON, see docs/POLICY.md) and explain.
    /// Exit 0 allow, 3 require approval, 4 deny.
    Check {
        /// The input document.
        #[arg(long)]
        input: PathBuf,
        /// The policy directory [default: the daemon's].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rego syntax [default: from the config].
        #[arg(long, value_enum)]
        rego_version: Option<RegoArg>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the policy's own tests (rules named test_* in any .rego file).
    Test {
        /// The policy directory [default: the daemon's].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rego syntax [default: from the config].
        #[arg(long, value_enum)]
        rego_version: Option<RegoArg>,
    },
    /// Which policy the running daemon has in force.
    Status,
    /// Print the built-in policy.
    ShowBuiltin,
}

/// Rego syntax on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegoArg {
    /// Rego v1.
    V1,
    /// Rego v0.
    V0,
}

/// Exit code for a `deny` from `policy check`.
pub const EXIT_DENY: i32 = 4;

fn policy_setup(
    cli: &Cli,
    dir: &Option<PathBuf>,
    v: Option<RegoArg>,
) -> Result<(PathBuf, RegoVersion), Failure> {
    let cfg = cli.load_config()?;
    let version = match v {
        Some(RegoArg::V0) => RegoVersion::V0,
        Some(RegoArg::V1) => RegoVersion::V1,
        None => cfg.policy.rego_version,
    };
    Ok((dir.clone().unwrap_or_else(|| policy::dir_of(&cfg)), version))
}

/// Runs `valetkey policy …`.
pub async fn policy_cmd(cli: &Cli, cmd: &PolicyCmd) -> Result<(), Failure> {
    match cmd {
        PolicyCmd::ShowBuiltin => {
            print!("{}", policy::BUILTIN);
            Ok(())
        }
        PolicyCmd::Status => {
            let mut c = connect(cli).await?;
            let s = c
                .call::<PolicyStatus>(&Default::default())
                .await
                .map_err(fail)?;
            println!("directory: {}", s.dir);
            println!(
                "in force:  builtin{}{}",
                if s.files.is_empty() { "" } else { " + " },
                s.files.join(", ")
            );
            println!("loaded:    {}", when(Some(s.loaded_at)));
            if s.last_good {
                println!("note:      the files in force are the last good copy");
            }
            if let Some(e) = s.error {
                println!("refused:   {e}");
            }
            Ok(())
        }
        PolicyCmd::Check {
            input,
            dir,
            rego_version,
            json,
        } => {
            let (dir, version) = policy_setup(cli, dir, *rego_version)?;
            let text = std::fs::read_to_string(input)
                .map_err(|e| Failure::from(format!("{}: {e}", input.display())))?;
            let doc: PolicyInput = serde_json::from_str(&text).map_err(|e| {
                Failure::from(format!(
                    "{} is not a policy input document: {e} (schema: ipc-schema/schema/policy-input.json)",
                    input.display()
                ))
            })?;
            let set = PolicySet::load_dir(&dir, version)?;
            let d = set.decide(&doc)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                println!("decision: {}", d.verdict.as_str());
                println!("rule:     {}", d.rule);
                println!("policy:   {} (in {})", d.source, dir.display());
                for r in &d.reasons {
                    println!("because:  {r}");
                }
            }
            match d.verdict {
                Verdict::Allow => Ok(()),
                Verdict::RequireApproval => Err(Failure {
                    code: EXIT_CONSENT,
                    message: "a person must approve this request".into(),
                }),
                Verdict::Deny => Err(Failure {
                    code: EXIT_DENY,
                    message: "the policy denies this request".into(),
                }),
            }
        }
        PolicyCmd::Test { dir, rego_version } => {
            let (dir, version) = policy_setup(cli, dir, *rego_version)?;
            let results = policy::testing::run(&dir, version)?;
            let failed = results.iter().filter(|r| !r.passed).count();
            for r in &results {
                match &r.detail {
                    None => println!("PASS  {} ({})", r.name, r.file),
                    Some(d) => println!("FAIL  {} ({}): {d}", r.name, r.file),
                }
            }
            println!(
                "{} passed, {failed} failed, in {}",
                results.len() - failed,
                dir.display()
            );
            if results.is_empty() {
                return Err(Failure::from(format!(
                    "no test_* rules found in {}",
                    dir.display()
                )));
            }
            if failed > 0 {
                return Err(Failure::from(format!("{failed} policy test(s) failed")));
            }
            Ok(())
        }
    }
}

/// `valetkey delegate` options.
#[derive(Debug, Args)]
pub struct DelegateArgs {
    /// The sub-agent's name.
    pub sub_agent: String,
    /// Provider name.
    pub provider: String,
    /// A scope to hand on (repeatable, or space-separated).
    #[arg(long = "scope", short = 's', required = true)]
    pub scopes: Vec<String>,
    /// Lifetime, e.g. 15m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15m")]
    pub ttl: std::time::Duration,
    /// The deepest level the chain below may reach.
    #[arg(long)]
    pub max_depth: Option<u32>,
    /// The agent name to say hello as.
    #[arg(long, default_value = "valetkey-cli", env = "VALETKEY_AGENT")]
    pub agent: String,
    /// Act as a sub-agent yourself, with this delegation token.
    #[arg(long, env = "VALETKEY_DELEGATION", hide_env_values = true)]
    pub delegation: Option<String>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `valetkey delegate`: prints a delegation token for a sub-agent.
pub async fn delegate(cli: &Cli, a: &DelegateArgs) -> Result<(), Failure> {
    let mut c = hello_as(
        cli,
        &a.agent,
        "delegating to a sub-agent",
        a.delegation.as_deref(),
    )
    .await?;
    let r = c
        .call::<DelegationCreate>(&DelegationCreateParams {
            sub_agent: a.sub_agent.clone(),
            provider: a.provider.clone(),
            scopes: a
                .scopes
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(str::to_owned)
                .collect(),
            ttl_secs: a.ttl.as_secs(),
            max_depth: a.max_depth,
            wait: None,
        })
        .await
        .map_err(client_failure)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", r.token.expose());
    }
    Ok(())
}

/// `valetkey jwks`: the broker's public keys (no hello needed).
pub async fn jwks(cli: &Cli) -> Result<(), Failure> {
    let cfg = cli.load_config().ok();
    let mut c = Client::connect(cli.socket_path(cfg.as_ref()))
        .await
        .map_err(|e| Failure {
            code: EXIT_UNAVAILABLE,
            message: e.to_string(),
        })?;
    let set = c.call::<Jwks>(&Default::default()).await.map_err(fail)?;
    println!("{}", serde_json::to_string_pretty(&set)?);
    Ok(())
}

/// `valetkey keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Make a new delegation signing key; tokens signed with the old one
    /// stay valid until they expire.
    Rotate,
}

/// Runs `valetkey keys rotate`.
pub async fn keys(cli: &Cli, cmd: &KeysCmd) -> Result<(), Failure> {
    match cmd {
        KeysCmd::Rotate => {
            let mut c = connect(cli).await?;
            let r = c
                .call::<KeysRotate>(&Default::default())
                .await
                .map_err(fail)?;
            println!(
                "New signing key {}; published: {}",
                r.kid,
                r.published.join(", ")
            );
            Ok(())
        }
    }
}

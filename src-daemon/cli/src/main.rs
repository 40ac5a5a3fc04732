//! `valetkey`: the Valet Key command line, a client of `valetkeyd`. Log in
//! to providers, manage grants, decide consents and act as an agent
//! (`valetkey token`). Raw arguments are parsed by clap into [`Cli`]; each
//! subcommand family lives in its own file.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error, 3 `consent_required`,
//! 5 `audit verify` found a broken chain, 69 the daemon is not reachable;
//! `run` exits with its command's code (127: not found).
//! `doctor` exits 1 when a check fails.

mod audit;
mod boxexec;
mod client;
mod control;
mod doctor;
mod governance;
mod grants;
mod login;
mod mcp;
mod pipe;
mod run;
mod service;
mod shim;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use valetkey_core::config::Config;

/// Exit code when the daemon cannot be reached (sysexits EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: i32 = 69;
/// Exit code for `consent_required`.
pub const EXIT_CONSENT: i32 = 3;

/// Valet Key: short-lived, down-scoped OAuth tokens for local AI agents.
#[derive(Debug, Parser)]
#[command(name = "valetkey", version, about, propagate_version = true)]
pub struct Cli {
    /// The agent socket [env: VALETKEY_SOCKET; default: $XDG_RUNTIME_DIR/valetkey/agent.sock].
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// The config file [default: $XDG_CONFIG_HOME/valetkey/config.toml].
    #[arg(long, global = true, env = "VALETKEY_CONFIG")]
    pub config: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent in a box whose only door to credentials is Valet Key
    /// (bubblewrap): `valetkey run [--profile P] [--name AGENT] -- CMD ARGS…`.
    Run(run::RunArgs),
    /// Inside a box: scope it with Landlock, fetch --env tokens, exec the command.
    #[command(name = "box-exec", hide = true)]
    BoxExec(boxexec::BoxExecArgs),
    /// Show whether the daemon runs, and each provider's login state.
    Status,
    /// Log in to a provider and store its refresh token in the OS keychain.
    Login(login::LoginArgs),
    /// Revoke a provider's refresh token (RFC 7009) and delete it from the keychain.
    Logout {
        /// The provider name from config.toml.
        provider: String,
    },
    /// List configured providers.
    Providers,
    /// The agent registry: list, show, edit, suspend, resume, deprecate, review.
    Agents(governance::AgentsArgs),
    /// Check a decision against the policy, run policy tests, see what is in force.
    #[command(subcommand)]
    Policy(governance::PolicyCmd),
    /// As an agent: make a delegation token for a sub-agent.
    Delegate(governance::DelegateArgs),
    /// Print the broker's public signing keys (JWKS).
    Jwks,
    /// Delegation signing keys.
    #[command(subcommand)]
    Keys(governance::KeysCmd),
    /// The audit trail: query it, verify its hash chain, export it.
    Audit(audit::AuditArgs),
    /// Add, list or revoke grants.
    #[command(subcommand)]
    Grant(grants::GrantCmd),
    /// Provider administration.
    #[command(subcommand)]
    Provider(login::ProviderCmd),
    /// Remote MCP servers: add (discover, register, log in), list, status,
    /// remove, and headers for MCP clients.
    #[command(subcommand)]
    Mcp(mcp::McpCmd),
    /// Get a token as an agent (prints the token, or JSON with --json).
    Token(token::TokenArgs),
    /// List and decide pending consents.
    #[command(subcommand)]
    Consent(control::ConsentCmd),
    /// Revoke a grant, an agent, or everything, at once.
    #[command(subcommand)]
    Revoke(control::RevokeCmd),
    /// Pause issuing: every agent is refused until `resume`.
    Pause,
    /// Resume issuing.
    Resume,
    /// Lift an agent's suspension and forget its remembered denials.
    Reinstate {
        /// Agent name.
        name: String,
    },
    /// Run valetkeyd as a per-user service: install, uninstall, status, logs.
    #[command(subcommand)]
    Service(service::ServiceCmd),
    /// Check the keychain, socket, service, logins, clock and versions; print fixes.
    Doctor,
    /// Write man pages or shell completions (for packagers).
    #[command(hide = true)]
    Generate {
        /// What to write.
        what: service::Artifact,
        /// Into this directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// A CLI failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: i32,
    /// What to print.
    pub message: String,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

impl Cli {
    fn load_config(&self) -> Result<Config, Failure> {
        Ok(Config::load(&valetkey_core::dirs::config_file(
            self.config.as_deref(),
        ))?)
    }

    fn socket_path(&self, cfg: Option<&Config>) -> PathBuf {
        valetkey_core::dirs::agent_socket(
            self.socket.as_deref(),
            cfg.and_then(|c| c.socket.as_deref()),
        )
    }
}

/// Runs the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let outcome = match &cli.command {
        Command::Run(a) => run::run(&cli, a).await,
        Command::BoxExec(a) => boxexec::box_exec(a).await,
        Command::Status => token::status(&cli).await,
        Command::Login(a) => login::login(&cli, a).await,
        Command::Logout { provider } => login::logout(&cli, provider).await,
        Command::Provider(c) => login::provider_cmd(&cli, c).await,
        Command::Providers => grants::providers(&cli).await,
        Command::Mcp(c) => mcp::mcp(&cli, c).await,
        Command::Agents(a) => governance::agents(&cli, a).await,
        Command::Policy(c) => governance::policy_cmd(&cli, c).await,
        Command::Delegate(a) => governance::delegate(&cli, a).await,
        Command::Jwks => governance::jwks(&cli).await,
        Command::Keys(c) => governance::keys(&cli, c).await,
        Command::Audit(a) => audit::audit(&cli, a).await,
        Command::Grant(g) => grants::grant(&cli, g).await,
        Command::Token(a) => token::token(&cli, a).await,
        Command::Consent(c) => control::consent(&cli, c).await,
        Command::Revoke(r) => control::revoke(&cli, r).await,
        Command::Pause => control::set_paused(&cli, true).await,
        Command::Resume => control::set_paused(&cli, false).await,
        Command::Reinstate { name } => control::reinstate(&cli, name).await,
        Command::Service(c) => service::service(c),
        Command::Doctor => doctor::doctor(&cli).await,
        Command::Generate { what, out } => service::generate(*what, out),
    };
    match outcome {
        Ok(()) => 0,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("valetkey: {}", f.message);
            }
            f.code
        }
    }
}

pub use valetkey_core::timefmt::when;

fn main() {
    pipe::quiet_on_broken_stdout();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("valetkey: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(cli));
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

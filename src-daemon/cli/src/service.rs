//! `valetkey service …` (the per-user service) and `valetkey generate …`
//! (man pages and shell completions, for packagers).

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Subcommand, ValueEnum};

use super::{Cli, Failure};

#[cfg(target_os = "macos")]
#[path = "service/launchd.rs"]
mod platform;
#[cfg(target_os = "linux")]
#[path = "service/systemd.rs"]
mod platform;

use platform::{install, logs_command, uninstall};
pub use platform::{installed, status};

/// One thing `install`/`uninstall` did, or found already done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Changed something.
    Did(String),
    /// Found it already so.
    Kept(String),
}

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The daemon binary to point the unit at does not exist.
    #[error("{0} does not exist; install valetkeyd next to valetkey (or use the .deb)")]
    NoDaemon(PathBuf),
    /// A file could not be written or removed.
    #[error("{0}: {1}; check that the directory exists, is yours and is writable, then run the command again")]
    Io(PathBuf, std::io::Error),
    /// The service manager refused or is absent.
    #[error("{0}")]
    Manager(String),
    /// Some steps were done, then one failed.
    #[error("{1}")]
    Partial(Vec<Step>, String),
}

/// `valetkey service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Install the user units (or LaunchAgent) and enable socket activation. Idempotent.
    Install {
        /// The valetkeyd to run [default: the one next to this valetkey].
        #[arg(long)]
        daemon: Option<PathBuf>,
    },
    /// Stop and remove the service. Grants, audit trail and keychain items are kept.
    Uninstall,
    /// Show the units' state.
    Status,
    /// Show the daemon's log (the journal under systemd).
    Logs {
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// How many recent lines.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
    },
}

fn print_steps(steps: &[Step]) {
    for s in steps {
        match s {
            Step::Did(m) => println!("done:      {m}"),
            Step::Kept(m) => println!("unchanged: {m}"),
        }
    }
}

fn failed(e: ServiceError) -> Failure {
    if let ServiceError::Partial(steps, _) = &e {
        print_steps(steps);
    }
    Failure {
        code: 1,
        message: e.to_string(),
    }
}

/// The daemon next to this executable.
pub(super) fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .map(|p| p.with_file_name(name))
        .unwrap_or_else(|| PathBuf::from("/usr/bin").join(name))
}

/// Runs `valetkey service …`.
pub fn service(cmd: &ServiceCmd) -> Result<(), Failure> {
    match cmd {
        ServiceCmd::Install { daemon } => {
            let daemon = daemon.clone().unwrap_or_else(|| sibling("valetkeyd"));
            let steps = install(&daemon).map_err(failed)?;
            print_steps(&steps);
            println!("check it with `valetkey doctor`");
        }
        ServiceCmd::Uninstall => print_steps(&uninstall().map_err(failed)?),
        ServiceCmd::Status => {
            for (unit, state) in status().map_err(failed)? {
                println!("{unit:<18} {state}");
            }
        }
        ServiceCmd::Logs { follow, lines } => {
            let mut c = logs_command(*follow, *lines);
            let status = c.status().map_err(|e| Failure {
                code: 1,
                message: format!(
                    "cannot run {:?}: {e}; without a journal, valetkeyd logs to stderr",
                    c.get_program()
                ),
            })?;
            if !status.success() {
                return Err(Failure {
                    code: 1,
                    message: format!("{:?} failed ({status})", c.get_program()),
                });
            }
        }
    }
    Ok(())
}

/// What `valetkey generate` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Artifact {
    /// Man pages for valetkey and each subcommand (`valetkeyd --generate-man` writes the daemon's).
    Man,
    /// bash, zsh and fish completions for valetkey.
    Completions,
}

/// Writes man pages or completions into `out`.
pub fn generate(what: Artifact, out: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let io = |e: std::io::Error| format!("writing into {}: {e}", out.display());
    match what {
        Artifact::Man => {
            clap_mangen::generate_to(Cli::command(), out).map_err(io)?;
        }
        Artifact::Completions => {
            use clap_complete::Shell;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(shell, &mut Cli::command(), "valetkey", out)
                    .map_err(io)?;
            }
        }
    }
    Ok(())
}

//! `valetkeyd`'s command line.

use std::path::PathBuf;

use clap::Parser;

/// valetkeyd: hands local AI agents short-lived, down-scoped OAuth tokens.
#[derive(Debug, Parser)]
#[command(name = "valetkeyd", version, about)]
pub struct DaemonArgs {
    /// The agent socket [env: VALETKEY_SOCKET; default: $XDG_RUNTIME_DIR/valetkey/agent.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The config file [default: $XDG_CONFIG_HOME/valetkey/config.toml].
    #[arg(long, env = "VALETKEY_CONFIG")]
    pub config: Option<PathBuf>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Runtime threads serving requests: 1 (the default) runs tokio's
    /// current_thread runtime, more its multi_thread runtime (for measuring).
    #[arg(long, env = "VALETKEYD_WORKERS", default_value_t = 1, hide = true)]
    pub workers: usize,
    /// Write valetkeyd's man page into this directory and exit (for packagers).
    #[arg(long, hide = true, value_name = "DIR")]
    pub generate_man: Option<PathBuf>,
}

impl DaemonArgs {
    /// Writes `valetkeyd.1` into `dir`.
    pub fn write_man(dir: &std::path::Path) -> std::io::Result<()> {
        use clap::CommandFactory;
        std::fs::create_dir_all(dir)?;
        clap_mangen::generate_to(Self::command(), dir)
    }
}

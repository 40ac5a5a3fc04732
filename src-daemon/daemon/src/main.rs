//! `valetkeyd`: the Valet Key daemon.
//!
//! Binds the agent socket, then serves until SIGTERM or SIGINT. The socket is
//! ready (and "ready" is logged) before the first accept, so a supervisor or
//! test can connect as soon as it sees that line.

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use valetkey_core::broker::Broker;
use valetkey_core::config::Config;
use valetkey_core::store::Store;
use valetkeyd::args::DaemonArgs as Args;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.generate_man {
        return Args::write_man(dir).with_context(|| format!("writing into {}", dir.display()));
    }
    let default = match args.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Under systemd (JOURNAL_STREAM set) log to the journal natively, with
    // each audit record's fields as journal fields; else to stderr.
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_syslog_identifier("valetkeyd".into()));
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .init();
    let hardening = valetkeyd::harden::apply();
    // One thread by default: on the 2-vCPU machines measured, tokio's
    // current_thread runtime served at least as fast as multi_thread
    // (docs/BENCHMARKS.md, "Runtime choice"); --workers N measures the other.
    let mut rt = match args.workers {
        0 | 1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    // Blocking work is attestation (hash-cache hits, mostly) and keychain
    // calls (bounded by 10 s each): 16 threads serve a burst of 1,000
    // connections as fast as tokio's default 512, without 100+ thread
    // stacks resident at the peak.
    rt.max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(args, hardening.memory_locked))
}

/// Threads for blocking work (see `main`).
const BLOCKING_THREADS: usize = 16;

async fn run(args: Args, memory_locked: bool) -> anyhow::Result<()> {
    // Before a socket accepts anything: a supervisor may stop the daemon
    // the moment it is ready, and that request must not be lost.
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let config_path = valetkey_core::dirs::config_file(args.config.as_deref());
    let config = Config::load(&config_path)?;
    let socket =
        valetkey_core::dirs::agent_socket(args.socket.as_deref(), config.socket.as_deref());
    let db = valetkey_core::dirs::db_path();
    let store = Store::open(&db, valetkey_core::clock::system())?;
    Store::spawn_checkpointer(&db).context("cannot start the WAL checkpointer")?;
    let providers = config.providers.len();
    let daemon = Broker::new(config, store);
    valetkeyd::server::watch_files(&daemon);
    let control = valetkey_ipc::paths::control_socket_for(&socket);
    // Sockets passed by systemd (socket activation) win; the rest we bind.
    // Control first: once agent.sock accepts, control.sock does too.
    let inherited = valetkeyd::service::inherited()?;
    let activated = inherited.agent.is_some() || inherited.control.is_some();
    let (control, control_listener) = match inherited.control {
        Some(pair) => pair,
        None => (
            control.clone(),
            valetkeyd::server::listener::bind(&control)?,
        ),
    };
    let (socket, agent_listener) = match inherited.agent {
        Some(pair) => pair,
        None => (socket.clone(), valetkeyd::server::listener::bind(&socket)?),
    };
    let listeners = valetkeyd::server::Listeners {
        agent: agent_listener,
        control: control_listener,
        boxes: valetkey_ipc::paths::boxes_dir_for(&socket),
    };
    tracing::info!(socket = %socket.display(), control = %control.display(), db = %db.display(), config = %config_path.display(), providers, activated, "ready");
    valetkeyd::service::ready(&format!("serving agents on {}", socket.display()));
    valetkeyd::service::spawn_watchdog();
    valetkeyd::memory::spawn(memory_locked);
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        valetkeyd::service::stopping();
    };
    valetkeyd::server::run(daemon, listeners, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

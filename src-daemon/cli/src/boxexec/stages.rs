//! The two stages of `valetkey box-exec` around the seccomp filter: the
//! second installs it and execs the command; the first takes its listener,
//! supervises, reports, passes signals on and exits with the command's
//! status.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;

use tokio::sync::mpsc;
use valetkey_ipc::control::{BoxEvent, BoxReport, BoxReportParams};

use super::supervise::{self, Rules};
use super::{BoxExecArgs, Failure};

/// Where the launcher puts the report key (removed before the command).
pub const KEY_ENV: &str = "VALETKEY_BOX_KEY";

/// Stage 2: the filter, a stop until stage 1 holds its listener, then the
/// command. Only returns on failure.
pub fn second(a: &BoxExecArgs) -> Failure {
    if let Err(e) = super::filter::install() {
        return Failure {
            code: 126,
            message: format!("{e}; the box cannot run without it (Linux 5.9 or later with seccomp user notification, and libseccomp 2.5)"),
        };
    }
    let me = rustix::process::getpid();
    if let Err(e) = rustix::process::kill_process(me, rustix::process::Signal::STOP) {
        return Failure::from(format!(
            "the box's second stage cannot wait for its supervisor: {e}"
        ));
    }
    let (program, argv) = (&a.command[0], &a.command[1..]);
    let e = std::process::Command::new(program)
        .arg0(&argv[0])
        .args(&argv[1..])
        .exec();
    Failure {
        code: 127,
        message: format!("cannot run {program}: {e}"),
    }
}

/// Stage 1: starts stage 2 with `env` added, supervises it and what it
/// starts, and returns the command's exit code.
pub async fn first(a: &BoxExecArgs, env: Vec<(String, String)>) -> Result<i32, Failure> {
    let key = std::env::var(KEY_ENV).unwrap_or_default();
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["box-exec", "--stage2", "--"])
        .args(&a.command)
        .envs(env)
        .env_remove(KEY_ENV);
    let mut child = cmd.spawn()?;
    let listener = match take_listener(child.id()) {
        Ok(l) => l,
        Err(e) => {
            let _ = child.kill();
            return Err(e);
        }
    };
    let mut rules = Rules {
        sockets: a.sockets.clone(),
        locked: a.lock.clone(),
        watched: a.watch.clone(),
        writable: a.writable.clone(),
        ..Rules::default()
    };
    rules.find_own_places();
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("box-supervisor".into())
        .spawn(move || supervise::serve(listener, rules, tx))?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let reporter = tokio::spawn(report(key, rx, done_rx));
    let pid = child.id();
    let resume = rustix::process::Pid::from_raw(pid as i32)
        .map(|p| rustix::process::kill_process(p, rustix::process::Signal::CONT));
    if !matches!(resume, Some(Ok(()))) {
        let _ = child.kill();
        return Err(Failure::from(
            "the box's command could not be resumed".to_owned(),
        ));
    }
    let status = wait(child).await?;
    let _ = done_tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reporter).await;
    Ok(status)
}

/// Whether the box's filter and supervisor work here (for `valetkey
/// doctor`): stage 2 runs `true` under the filter, supervised.
pub fn probe() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .args(["box-exec", "--stage2", "--", "true", "true"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let listener = match take_listener(child.id()) {
        Ok(l) => l,
        Err(_) => {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
    };
    let (tx, _rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || supervise::serve(listener, Rules::default(), tx));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).ok_or("no pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).map_err(|e| e.to_string())?;
    let st = child.wait().map_err(|e| e.to_string())?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("`true` under the filter ended with {st}"))
    }
}

/// Waits for stage 2 to stop with its filter installed, and takes the
/// filter's listener (`anon_inode:seccomp notify`) from it.
fn take_listener(pid: u32) -> Result<OwnedFd, Failure> {
    use rustix::process::{
        pidfd_getfd, pidfd_open, waitpid, Pid, PidfdFlags, PidfdGetfdFlags, WaitOptions,
    };
    let failed = |what: &str| Failure::from(format!("the box's supervisor: {what}"));
    let p = Pid::from_raw(pid as i32).ok_or_else(|| failed("no pid"))?;
    match waitpid(Some(p), WaitOptions::UNTRACED) {
        Ok(Some((_, st))) if st.stopped() => {}
        // It exited instead: the filter could not be installed, and it
        // said why on stderr.
        _ => {
            return Err(Failure {
                code: 126,
                message: String::new(),
            })
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| failed(&e.to_string()))?;
    let number = fds
        .flatten()
        .find(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:seccomp notify")
        })
        .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .ok_or_else(|| failed("the filter's listener is not in the second stage"))?;
    let pidfd = pidfd_open(p, PidfdFlags::empty()).map_err(|e| failed(&e.to_string()))?;
    pidfd_getfd(&pidfd, number, PidfdGetfdFlags::empty()).map_err(|e| failed(&e.to_string()))
}

/// Waits for the command, passing SIGINT, SIGTERM and SIGHUP on to it.
async fn wait(child: std::process::Child) -> Result<i32, Failure> {
    use std::os::unix::process::ExitStatusExt;
    use tokio::signal::unix::{signal, SignalKind};
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut child = child;
    let mut done = tokio::task::spawn_blocking(move || child.wait());
    loop {
        let sig = tokio::select! {
            st = &mut done => {
                let st = st.map_err(|e| Failure::from(e.to_string()))??;
                return Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            }
            _ = int.recv() => rustix::process::Signal::INT,
            _ = term.recv() => rustix::process::Signal::TERM,
            _ = hup.recv() => rustix::process::Signal::HUP,
        };
        if let Some(p) = pid {
            let _ = rustix::process::kill_process(p, sig);
        }
    }
}

/// Sends what the supervisor notes to the daemon (`box.report`), each
/// event once, in batches, until `done` (the command ended); then what is
/// still queued.
async fn report(
    key: String,
    mut rx: mpsc::UnboundedReceiver<BoxEvent>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    let mut out = Reporter {
        key,
        seen: Default::default(),
        client: None,
    };
    loop {
        tokio::select! {
            Some(first) = rx.recv() => {
                let mut batch = vec![first];
                drain(&mut rx, &mut batch, valetkey_core::boxes::report::PER_REPORT);
                out.send(batch).await;
            }
            _ = &mut done => break,
        }
    }
    let mut rest = vec![];
    drain(
        &mut rx,
        &mut rest,
        valetkey_core::boxes::registry::MAX_EVENTS,
    );
    for batch in rest.chunks(valetkey_core::boxes::report::PER_REPORT) {
        out.send(batch.to_vec()).await;
    }
}

/// Moves queued events into `batch`, up to `cap` in it.
fn drain(rx: &mut mpsc::UnboundedReceiver<BoxEvent>, batch: &mut Vec<BoxEvent>, cap: usize) {
    while batch.len() < cap {
        match rx.try_recv() {
            Ok(e) => batch.push(e),
            Err(_) => break,
        }
    }
}

/// The supervisor's connection to the daemon, for its reports.
struct Reporter {
    key: String,
    seen: std::collections::HashSet<(String, String, String)>,
    client: Option<valetkey_ipc::Client>,
}

impl Reporter {
    /// Sends the events of `batch` not sent before.
    async fn send(&mut self, mut batch: Vec<BoxEvent>) {
        batch.retain(|e| {
            self.seen
                .insert((e.kind.clone(), e.path.clone(), e.op.clone()))
        });
        if batch.is_empty() || self.key.is_empty() {
            return;
        }
        if self.client.is_none() {
            self.client = valetkey_ipc::Client::connect_default().await.ok();
        }
        let Some(c) = self.client.as_mut() else {
            return;
        };
        let params = BoxReportParams {
            key: self.key.clone(),
            events: batch,
        };
        if c.call::<BoxReport>(&params).await.is_err() {
            self.client = None;
        }
    }
}

//! The open boxes: what each launched, its launcher, its socket
//! directory and, once started, its pid namespace; kept in memory and as a
//! JSON record beside the socket directory, so that a restarted daemon
//! finds them again. Knows no broker: the handlers in the parent module
//! drive it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use valetkey_ipc::control::BoxEvent;
use valetkey_ipc::methods::BoxFacts;

/// An open box.
#[derive(Debug)]
pub struct BoxSession {
    /// What was launched.
    pub facts: BoxFacts,
    /// The launcher (`valetkey run`): pid and start time. The box lives
    /// as long as it does.
    pub launcher: (u32, u64),
    /// Where the box's `agent.sock` is.
    pub socket_dir: PathBuf,
    /// The agent name its requests are made as when it does not say.
    pub agent: String,
    /// Its egress proxy, in `proxy` mode (not kept across a daemon
    /// restart: the CA key never leaves the daemon's memory).
    pub proxy: Option<Arc<crate::proxy::BoxProxy>>,
    /// SHA-256 (hex) of the key its supervisor's `box.report` carries
    /// (empty: it takes no reports).
    pub report_key: String,
    /// The paths it was told not to make (its plan's `watched`).
    pub watched: Vec<String>,
    /// What its supervisor reported, oldest first (at most
    /// [`MAX_EVENTS`]).
    events: Mutex<Vec<BoxEvent>>,
    /// The box's pid namespace once started.
    pid_ns: Mutex<Option<String>>,
    /// Turns true when the box is closed.
    closed: watch::Sender<bool>,
}

/// What is kept on disk about an open box.
#[derive(Serialize, Deserialize)]
struct Record {
    facts: BoxFacts,
    launcher_pid: u32,
    launcher_start: u64,
    socket_dir: PathBuf,
    pid_ns: Option<String>,
    #[serde(default)]
    report_key: String,
}

/// The most events one box keeps.
pub const MAX_EVENTS: usize = 1000;

impl BoxSession {
    pub(super) fn new(facts: BoxFacts, launcher: (u32, u64), socket_dir: PathBuf) -> Self {
        Self {
            agent: super::agent_name(&facts),
            proxy: None,
            facts,
            launcher,
            socket_dir,
            report_key: String::new(),
            watched: vec![],
            events: Mutex::default(),
            pid_ns: Mutex::new(None),
            closed: watch::channel(false).0,
        }
    }

    /// Keeps `events`, up to [`MAX_EVENTS`] in all; returns those kept.
    pub fn keep(&self, events: Vec<BoxEvent>) -> Vec<BoxEvent> {
        let mut all = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let room = MAX_EVENTS.saturating_sub(all.len());
        let kept: Vec<BoxEvent> = events.into_iter().take(room).collect();
        all.extend(kept.iter().cloned());
        kept
    }

    /// What the supervisor reported.
    pub fn events(&self) -> Vec<BoxEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The box's socket.
    pub fn socket(&self) -> PathBuf {
        self.socket_dir.join("agent.sock")
    }

    /// Resolves when the box is closed.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Whether the process that opened the box is still there.
    pub fn launcher_alive(&self) -> bool {
        crate::attest::Attestor::still_same(self.launcher.0, self.launcher.1)
    }

    fn record(&self) -> Record {
        Record {
            facts: self.facts.clone(),
            launcher_pid: self.launcher.0,
            launcher_start: self.launcher.1,
            socket_dir: self.socket_dir.clone(),
            pid_ns: self
                .pid_ns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            report_key: self.report_key.clone(),
        }
    }

    /// The box has started in pid namespace `ns`: only that namespace is
    /// served from now on (recorded, so it holds after a restart).
    pub(super) fn started_in(&self, ns: String) -> std::io::Result<()> {
        *self.pid_ns.lock().unwrap_or_else(|p| p.into_inner()) = Some(ns);
        persist(self)
    }

    /// Whether process `pid`, connected on the box's socket, is inside the
    /// box (its pid namespace); the error says why not. Blocking (reads
    /// `/proc`).
    pub fn admits(&self, pid: u32) -> Result<(), String> {
        let ns = self
            .pid_ns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(ns) = ns else {
            return Err(format!(
                "box {} has not started yet; connect from inside it once it runs",
                self.facts.id
            ));
        };
        match crate::attest::pid_namespace(pid) {
            Some(theirs) if theirs == ns => Ok(()),
            _ => Err(format!(
                "process {pid} is not inside box {}; this socket serves that box only (use the main agent.sock, or start the agent with valetkey run)",
                self.facts.id
            )),
        }
    }
}

/// The open boxes.
#[derive(Default)]
pub struct Boxes {
    map: Mutex<HashMap<String, Arc<BoxSession>>>,
}

fn record_path(s: &BoxSession) -> PathBuf {
    s.socket_dir.with_extension("json")
}

impl Boxes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<BoxSession>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The box `id`, if open.
    pub fn get(&self, id: &str) -> Option<Arc<BoxSession>> {
        self.lock().get(id).cloned()
    }

    /// Whether no box is open.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The working directories of the open boxes.
    pub fn working_dirs(&self) -> Vec<PathBuf> {
        self.lock()
            .values()
            .map(|s| PathBuf::from(&s.facts.cwd))
            .collect()
    }

    pub(super) fn insert(&self, s: Arc<BoxSession>) -> std::io::Result<()> {
        persist(&s)?;
        self.lock().insert(s.facts.id.clone(), s);
        Ok(())
    }

    /// Closes box `id`: forgets it, tells its server, and removes its
    /// record and socket directory. `None` if it was not open.
    pub fn close(&self, id: &str) -> Option<Arc<BoxSession>> {
        let s = self.lock().remove(id)?;
        s.closed.send_replace(true);
        let _ = std::fs::remove_file(record_path(&s));
        let _ = std::fs::remove_dir_all(&s.socket_dir);
        Some(s)
    }

    /// Reads the boxes recorded under `root` by an earlier daemon: those
    /// whose launcher still runs are open again (their sockets must be
    /// bound anew), the rest are removed.
    pub fn restore(&self, root: &Path) -> Vec<Arc<BoxSession>> {
        let Ok(dir) = std::fs::read_dir(root) else {
            return vec![];
        };
        let mut back = vec![];
        for e in dir.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let rec: Option<Record> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let Some(rec) = rec.filter(|r| r.socket_dir.parent() == Some(root)) else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let mut s = BoxSession::new(
                rec.facts,
                (rec.launcher_pid, rec.launcher_start),
                rec.socket_dir,
            );
            *s.pid_ns.lock().unwrap_or_else(|p| p.into_inner()) = rec.pid_ns;
            s.report_key = rec.report_key;
            if s.launcher_alive() {
                let s = Arc::new(s);
                self.lock().insert(s.facts.id.clone(), s.clone());
                back.push(s);
            } else {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_dir_all(&s.socket_dir);
            }
        }
        back
    }
}

fn persist(s: &BoxSession) -> std::io::Result<()> {
    let path = record_path(s);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&s.record())?)?;
    std::fs::rename(&tmp, &path)
}

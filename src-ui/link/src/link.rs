//! One connection to valetkeyd's control socket, owned by one task.
//!
//! Why an actor: the control protocol carries pushed events and responses on
//! the same stream, so exactly one task may read it. The webview's commands
//! reach that task through a channel and get their answer on a oneshot; the
//! daemon's events go out through a [`Sink`] (in the app: re-emitted to the
//! webview and mirrored on the tray icon). When the socket goes away the task
//! reports [`Connection::Down`] and retries every second, so a restarted
//! daemon is picked up without the user doing anything. Nothing here decides
//! anything: every request is the daemon's to refuse.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};
use valetkey_ipc::control::{Event, EventsSubscribe, Status, StatusResult};
use valetkey_ipc::methods::{Method, NoParams};
use valetkey_ipc::{Client, ClientError};

use crate::error::UiError;

/// How long to wait between connection attempts while the daemon is down.
const RETRY: Duration = Duration::from_secs(1);
/// How long one control request may take before the UI gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The link's state, as the webview sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Connection {
    /// Not tried yet.
    Connecting,
    /// Subscribed; `status` is the daemon's latest.
    Connected {
        /// The daemon's status.
        status: StatusResult,
    },
    /// The daemon is not reachable (or refused us).
    Down {
        /// Why, for people.
        error: String,
    },
}

/// Where the link reports what it sees.
pub trait Sink: Send + Sync + 'static {
    /// The connection state changed, or the daemon's status did.
    fn connection(&self, state: &Connection);
    /// The daemon pushed an event.
    fn event(&self, event: &Event);
}

struct Job {
    method: &'static str,
    params: Value,
    reply: oneshot::Sender<Result<Value, UiError>>,
}

/// The handle commands use. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    jobs: mpsc::Sender<Job>,
    state: Arc<Mutex<Connection>>,
    retry: Arc<Notify>,
}

impl Link {
    /// Starts the link task on `rt`.
    pub fn start(path: PathBuf, sink: impl Sink, rt: &tokio::runtime::Handle) -> Link {
        let (jobs, rx) = mpsc::channel(32);
        let state = Arc::new(Mutex::new(Connection::Connecting));
        let retry = Arc::new(Notify::new());
        let task = Task {
            path,
            sink,
            state: state.clone(),
            retry: retry.clone(),
        };
        rt.spawn(task.run(rx));
        Link { jobs, state, retry }
    }

    /// The current connection state.
    pub fn state(&self) -> Connection {
        lock(&self.state).clone()
    }

    /// Try to connect now instead of at the next retry tick.
    pub fn retry_now(&self) {
        self.retry.notify_one();
    }

    /// Sends one typed control request through the link.
    pub async fn call<M: Method>(&self, params: &M::Params) -> Result<M::Result, UiError> {
        let params = serde_json::to_value(params).map_err(UiError::protocol)?;
        let (reply, rx) = oneshot::channel();
        let job = Job {
            method: M::NAME,
            params,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| {
            UiError::protocol(
                "the connection to valetkeyd has stopped; quit this program and start it again",
            )
        })?;
        let value = tokio::time::timeout(CALL_TIMEOUT, rx)
            .await
            .map_err(|_| UiError::protocol("valetkeyd did not answer within 15 s; try again, and see its log if it keeps happening"))?
            .map_err(|_| UiError::protocol("the connection to valetkeyd closed before it answered; try again"))??;
        serde_json::from_value(value).map_err(UiError::protocol)
    }
}

fn lock(state: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

struct Task<S> {
    path: PathBuf,
    sink: S,
    state: Arc<Mutex<Connection>>,
    retry: Arc<Notify>,
}

impl<S: Sink> Task<S> {
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        loop {
            let error = match self.connect().await {
                Ok(client) => match self.serve(client, &mut jobs).await {
                    Some(reason) => reason,
                    None => return, // every handle is gone: the app is quitting
                },
                Err(reason) => reason,
            };
            self.set(Connection::Down {
                error: error.clone(),
            });
            // While down, answer at once instead of letting clicks hang.
            let tick = tokio::time::sleep(RETRY);
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    job = jobs.recv() => match job {
                        Some(job) => {
                            let _ = job.reply.send(Err(UiError::DaemonDown { reason: error.clone() }));
                        }
                        None => return,
                    },
                    _ = &mut tick => break,
                    _ = self.retry.notified() => break,
                }
            }
        }
    }

    /// Connects and subscribes, or says why it could not.
    async fn connect(&self) -> Result<Client, String> {
        let mut client = Client::connect(&self.path)
            .await
            .map_err(|e| describe(&e))?;
        let sub = client
            .call::<EventsSubscribe>(&NoParams {})
            .await
            .map_err(|e| describe(&e))?;
        tracing::info!(socket = %self.path.display(), "connected to valetkeyd");
        self.set(Connection::Connected { status: sub.status });
        Ok(client)
    }

    /// Serves jobs and forwards events until the connection ends. Returns
    /// why it ended, or `None` when the app dropped every handle.
    async fn serve(&self, mut client: Client, jobs: &mut mpsc::Receiver<Job>) -> Option<String> {
        loop {
            tokio::select! {
                job = jobs.recv() => {
                    let job = job?;
                    let result = client.call_raw(job.method, job.params).await;
                    let lost = matches!(&result, Err(e) if e.rpc().is_none());
                    let _ = job.reply.send(result.map_err(UiError::from));
                    if lost {
                        return Some("the connection to valetkeyd was lost".into());
                    }
                }
                event = client.next_event() => match event {
                    Ok(event) => {
                        self.sink.event(&event);
                        if let Some(status) = self.status_after(&event, &mut client).await {
                            self.set(Connection::Connected { status });
                        }
                    }
                    Err(e) => return Some(describe(&e)),
                },
            }
        }
    }

    /// The daemon's new status when `event` may have changed it (the pending
    /// count, pause, lock), so the tray badge follows without polling.
    async fn status_after(&self, event: &Event, client: &mut Client) -> Option<StatusResult> {
        match event {
            Event::StatusChanged { status } => Some(status.clone()),
            Event::ConsentRequested { .. } | Event::ConsentDecided { .. } => {
                client.call::<Status>(&NoParams {}).await.ok()
            }
            _ => None,
        }
    }

    fn set(&self, next: Connection) {
        {
            let mut state = lock(&self.state);
            if *state == next {
                return;
            }
            *state = next.clone();
        }
        if let Connection::Down { error } = &next {
            tracing::warn!(%error, "valetkeyd unreachable; retrying every second");
        }
        self.sink.connection(&next);
    }
}

/// A reason for people: the daemon's own message when it refused us.
fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Connect { path, source, .. } => {
            format!("cannot reach {} ({source})", path.display())
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! The link against a scripted stand-in for the control socket (real
    //! Unix sockets, fake daemon): event forwarding, fail-fast while down,
    //! and reconnecting. The real daemon is covered end to end in
    //! `tests/tests/e2e/tray_ui.rs`.

    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixListener;
    use valetkey_ipc::control::Status;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Sink for Arc<Recorder> {
        fn connection(&self, state: &Connection) {
            let line = match state {
                Connection::Connected { status } => format!("connected pending={}", status.pending),
                Connection::Down { .. } => "down".into(),
                Connection::Connecting => "connecting".into(),
            };
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
        fn event(&self, event: &Event) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("event {}", event.kind()));
        }
    }

    impl Recorder {
        async fn wait_for(&self, line: &str) {
            let start = Instant::now();
            while !self
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|l| l == line)
            {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "never saw {line:?}: {:?}",
                    self.0.lock().unwrap_or_else(|p| p.into_inner())
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    fn status(pending: u32) -> Value {
        serde_json::json!({"daemon_version": "0", "paused": false, "session_locked": false,
                           "on_lock": "hold", "pending": pending})
    }

    /// Serves one connection: answers `events.subscribe` and `status`, and
    /// after subscribing pushes one `status.changed` event.
    async fn serve_one(listener: &UnixListener) {
        let (stream, _) = listener.accept().await.expect("accept");
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let req: Value = serde_json::from_str(&line).expect("json");
            let result = match req["method"].as_str() {
                Some("events.subscribe") => serde_json::json!({"status": status(0)}),
                Some("status") => status(2),
                other => panic!("unexpected {other:?}"),
            };
            let resp = serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": result});
            w.write_all(format!("{resp}\n").as_bytes())
                .await
                .expect("write");
            if req["method"] == "events.subscribe" {
                let ev = serde_json::json!({"jsonrpc": "2.0", "method": "event",
                    "params": {"type": "status.changed", "status": status(2)}});
                w.write_all(format!("{ev}\n").as_bytes())
                    .await
                    .expect("write");
            }
        }
    }

    #[tokio::test]
    async fn events_reach_the_sink_and_calls_are_answered_on_the_same_connection() {
        let dir = std::env::temp_dir().join(format!("vk-link-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("a.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        let rec = Arc::new(Recorder::default());
        let link = Link::start(
            path.clone(),
            rec.clone(),
            &tokio::runtime::Handle::current(),
        );
        let server = tokio::spawn(async move { serve_one(&listener).await });
        rec.wait_for("connected pending=0").await;
        rec.wait_for("event status.changed").await;
        rec.wait_for("connected pending=2").await;
        let s = link.call::<Status>(&NoParams {}).await.expect("status");
        assert_eq!(s.pending, 2);
        assert!(matches!(link.state(), Connection::Connected { .. }));
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn while_down_calls_fail_at_once_and_the_link_reconnects() {
        let dir = std::env::temp_dir().join(format!("vk-link-down-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("b.sock");
        let _ = std::fs::remove_file(&path);
        let rec = Arc::new(Recorder::default());
        let link = Link::start(
            path.clone(),
            rec.clone(),
            &tokio::runtime::Handle::current(),
        );
        rec.wait_for("down").await;
        let asked = Instant::now();
        let err = link.call::<Status>(&NoParams {}).await.expect_err("down");
        assert!(matches!(err, UiError::DaemonDown { .. }), "{err:?}");
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "a click hung while down"
        );

        // The daemon appears: the link finds it by itself.
        let listener = UnixListener::bind(&path).expect("bind");
        let server = tokio::spawn(async move { serve_one(&listener).await });
        link.retry_now();
        rec.wait_for("connected pending=0").await;

        // It goes away again: reported as down.
        server.abort();
        let _ = server.await;
        let start = Instant::now();
        while !matches!(link.state(), Connection::Down { .. }) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "loss never noticed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

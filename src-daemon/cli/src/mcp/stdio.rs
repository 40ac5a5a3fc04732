//! `valetkey mcp proxy NAME`: a local stdio MCP server that is a window
//! onto a remote one. MCP clients run it as an ordinary stdio server; it
//! sends each message on with streamable HTTP through Valet Key's egress
//! proxy (`proxy.open` on its own agent connection), carrying only a
//! placeholder (`token.placeholder`). valetkeyd swaps the placeholder for
//! the server's token on the way out, after the policy has seen the
//! JSON-RPC method and tool, so neither the MCP client nor this process
//! ever holds the token.
//!
//! A client gives the handshake a short time (Claude Code 30 s), and a
//! consent card may wait longer for the user. So when `mcp add` recorded
//! the server's `initialize`, this process answers the client's
//! `initialize` (and `ping`) from that record at once, and gets the
//! placeholder, which may wait for consent, when the first message that
//! needs the server comes; the server's own handshake, with the client's
//! parameters, goes first. When stdin ends the client is gone: what is
//! still waiting gets a few seconds, then is dropped, and with this
//! process's agent connection its consent card goes down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, OnceCell};
use valetkey_ipc::control::McpHandshake;
use valetkey_ipc::methods::{ProxyOpen, TokenPlaceholder, TokenPlaceholderParams};
use valetkey_ipc::Client;

use super::super::client::client_failure;
use super::super::{Cli, Failure};
use super::bridge::{error_reply, http_client, Bridge};
use valetkey_core::mcp::handshake::{local_answer, revision_for};

/// How long requests still in flight get once the client closed stdin.
const GRACE: Duration = Duration::from_secs(3);

/// One client's session: what is known at start, and the bridge once a
/// message needed it.
struct Session {
    /// The agent connection: the proxy lives as long as it does.
    agent: tokio::sync::Mutex<Client>,
    provider: String,
    scopes: Vec<String>,
    http: reqwest::Client,
    url: String,
    /// The server's `initialize`, as `mcp add` recorded it.
    handshake: Option<McpHandshake>,
    /// The client's `initialize`, once answered from the record.
    client_init: Mutex<Option<Value>>,
    bridge: OnceCell<Arc<Bridge>>,
}

/// Runs the bridge until stdin ends.
pub async fn run(cli: &Cli, a: &super::ProxyArgs) -> Result<(), Failure> {
    let mut agent =
        super::super::client::hello_as(cli, &a.agent, "MCP client (valetkey mcp proxy)", None)
            .await?;
    let (server, scopes) = super::server_scopes(&mut agent, &a.name, &a.scopes).await?;
    let opened = agent
        .call::<ProxyOpen>(&Default::default())
        .await
        .map_err(client_failure)?;
    let s = Arc::new(Session {
        agent: tokio::sync::Mutex::new(agent),
        provider: a.name.clone(),
        scopes,
        http: http_client(&opened.proxy_url, &opened.ca_bundle)?,
        url: server.mcp_url.clone().unwrap_or_default(),
        handshake: server.mcp_handshake,
        client_init: Mutex::new(None),
        bridge: OnceCell::new(),
    });
    eprintln!(
        "valetkey mcp proxy: {} as agent {} (the token stays in valetkeyd)",
        s.url, a.agent
    );
    let (tx, rx) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(write_out(rx));
    let mut tasks = tokio::task::JoinSet::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let (s, tx) = (s.clone(), tx.clone());
        tasks.spawn(async move { s.handle(line, &tx).await });
        while tasks.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} });
    if drained.await.is_err() {
        eprintln!(
            "valetkey mcp proxy: the MCP client closed its end; dropping {} request(s) still waiting",
            tasks.len()
        );
        tasks.abort_all();
    }
    drop(tx);
    let _ = writer.await;
    // The agent connection (and with it the proxy and any card) ends here.
    drop(s);
    Ok(())
}

/// Writes each message as one line to stdout.
async fn write_out(mut rx: mpsc::Receiver<String>) {
    let mut out = tokio::io::stdout();
    while let Some(m) = rx.recv().await {
        let line = m.replace('\n', " ");
        if out.write_all(line.as_bytes()).await.is_err()
            || out.write_all(b"\n").await.is_err()
            || out.flush().await.is_err()
        {
            return;
        }
    }
}

impl Session {
    /// One message from the client.
    async fn handle(&self, line: String, out: &mpsc::Sender<String>) {
        let msg: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(answer) = self.answer_locally(&msg) {
            if let Some(a) = answer {
                let _ = out.send(a.to_string()).await;
            }
            return;
        }
        match self.bridge().await {
            Ok(b) => b.send(line, out).await,
            Err(m) => {
                if let Some(id) = msg.get("id") {
                    let _ = out.send(error_reply(id, m, Value::Null)).await;
                }
            }
        }
    }

    /// What the record answers without the server: `Some(answer)` for
    /// `initialize` and an early `ping`, `Some(None)` for the client's
    /// `notifications/initialized` (the server gets its own), `None` for
    /// what goes to the server.
    fn answer_locally(&self, msg: &Value) -> Option<Option<Value>> {
        let h = self.handshake.as_ref()?;
        match msg["method"].as_str()? {
            "initialize" => {
                let mut kept = msg.clone();
                kept["params"]["protocolVersion"] =
                    revision_for(h, msg["params"]["protocolVersion"].as_str()).into();
                *self.client_init.lock().unwrap_or_else(|e| e.into_inner()) = Some(kept);
                Some(Some(local_answer(h, msg)))
            }
            "notifications/initialized" => Some(None),
            "ping" if self.bridge.get().is_none() => Some(Some(serde_json::json!({
                "jsonrpc": "2.0", "id": msg["id"], "result": {},
            }))),
            _ => None,
        }
    }

    /// The bridge, opened on first use: the placeholder (which waits for
    /// your consent when there is no grant yet), then the server's
    /// handshake when the client's was answered from the record.
    async fn bridge(&self) -> Result<&Arc<Bridge>, String> {
        self.bridge.get_or_try_init(|| self.open()).await
    }

    async fn open(&self) -> Result<Arc<Bridge>, String> {
        let ph = self
            .agent
            .lock()
            .await
            .call::<TokenPlaceholder>(&TokenPlaceholderParams {
                provider: self.provider.clone(),
                scopes: self.scopes.clone(),
            })
            .await
            .map_err(|e| e.to_string())?;
        let b = Bridge::new(self.http.clone(), self.url.clone(), &ph.placeholder);
        if let Some(h) = &self.handshake {
            let init = self
                .client_init
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            b.initialize(&init.unwrap_or_else(|| own_initialize(h)))
                .await?;
        }
        Ok(Arc::new(b))
    }
}

/// An `initialize` of Valet Key's own, for a client that sent none.
fn own_initialize(h: &McpHandshake) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": "valetkey-initialize", "method": "initialize",
        "params": {
            "protocolVersion": revision_for(h, None),
            "capabilities": {},
            "clientInfo": { "name": "valetkey-mcp-proxy", "version": env!("CARGO_PKG_VERSION") },
        },
    })
}

//! `valetkey mcp proxy NAME`: a local stdio MCP server that is a window
//! onto a remote one. MCP clients run it as an ordinary stdio server; it
//! sends each message on with streamable HTTP through Valet Key's egress
//! proxy (`proxy.open` on its own agent connection), carrying only a
//! placeholder (`token.placeholder`). valetkeyd swaps the placeholder for
//! the server's token on the way out, after the policy has seen the
//! JSON-RPC method and tool, so neither the MCP client nor this process
//! ever holds the token.
//!
//! Messages are sent as they come (a client may have several requests in
//! flight); answers go to stdout one JSON message per line, whether the
//! server answered with JSON or with an event stream. A refusal (no grant,
//! the policy, a revoked agent) comes back as a JSON-RPC error for the
//! request's id, with the proxy's reason.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use valetkey_ipc::methods::{ProxyOpen, TokenPlaceholder, TokenPlaceholderParams};

use super::super::client::client_failure;
use super::super::{Cli, Failure};
use super::sse::Events;

/// The JSON-RPC error code of a request Valet Key or the server refused
/// (or could not pass on).
pub const REFUSED: i64 = -32001;

/// One remote server, as this process reaches it.
struct Bridge {
    http: reqwest::Client,
    url: String,
    /// `Bearer vkp_…`: a placeholder, not the token.
    auth: String,
    /// `Mcp-Session-Id`, once the server gave one.
    session: Mutex<Option<String>>,
    /// The protocol revision `initialize` agreed on.
    version: Mutex<Option<String>>,
}

/// Runs the bridge until stdin ends.
pub async fn run(cli: &Cli, a: &super::ProxyArgs) -> Result<(), Failure> {
    let mut agent =
        super::super::client::hello_as(cli, &a.agent, "MCP client (valetkey mcp proxy)", None)
            .await?;
    let (url, scopes) = super::server_scopes(&mut agent, &a.name, &a.scopes).await?;
    let opened = agent
        .call::<ProxyOpen>(&Default::default())
        .await
        .map_err(client_failure)?;
    // Waits for your consent when there is no grant yet.
    let ph = agent
        .call::<TokenPlaceholder>(&TokenPlaceholderParams {
            provider: a.name.clone(),
            scopes,
        })
        .await
        .map_err(client_failure)?;
    let bridge = Arc::new(Bridge {
        http: http_client(&opened.proxy_url, &opened.ca_bundle)?,
        url,
        auth: format!("Bearer {}", ph.placeholder),
        session: Mutex::new(None),
        version: Mutex::new(None),
    });
    eprintln!(
        "valetkey mcp proxy: {} as agent {} (the token stays in valetkeyd)",
        bridge.url, a.agent
    );
    let (tx, rx) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(write_out(rx));
    let mut tasks = tokio::task::JoinSet::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let (b, tx) = (bridge.clone(), tx.clone());
        tasks.spawn(async move { b.send(line, &tx).await });
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    let _ = writer.await;
    // The agent connection (and with it the proxy) ends here.
    drop(agent);
    Ok(())
}

/// An HTTP client that goes through the proxy and trusts its CA.
fn http_client(proxy_url: &str, ca_bundle: &str) -> Result<reqwest::Client, Failure> {
    let pem = std::fs::read(ca_bundle)
        .map_err(|e| Failure::from(format!("the proxy's CA bundle {ca_bundle}: {e}")))?;
    let mut b = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy_url)?)
        .user_agent(concat!("valetkey-mcp-proxy/", env!("CARGO_PKG_VERSION")));
    for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
        b = b.add_root_certificate(cert);
    }
    Ok(b.build()?)
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

/// A JSON-RPC error answering `id`.
fn error_reply(id: &Value, message: String, data: Value) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": REFUSED, "message": message, "data": data },
    })
    .to_string()
}

/// What a refusal's body says: the proxy's `{"error":{"message",…}}`, or
/// an OAuth-style `{"error","error_description"}` from the server.
fn refusal(status: u16, body: &str) -> (String, Value) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .or(v["error_description"].as_str())
        .or(v["error"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}"));
    (
        format!("HTTP {status}: {message}"),
        serde_json::json!({ "status": status, "body": v }),
    )
}

impl Bridge {
    fn request(&self, line: String) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                "application/json, text/event-stream",
            )
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .body(line);
        let lock = |m: &Mutex<Option<String>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(s) = lock(&self.session) {
            req = req.header("mcp-session-id", s);
        }
        if let Some(v) = lock(&self.version) {
            req = req.header("mcp-protocol-version", v);
        }
        req
    }

    /// Sends one message and passes the answer (if any) to `out`.
    async fn send(&self, line: String, out: &mpsc::Sender<String>) {
        let msg: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let id = msg.get("id").cloned();
        let initialize = msg["method"] == "initialize";
        let resp = match self.request(line).send().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(id) = &id {
                    let m = format!("cannot reach {} through valetkeyd's proxy (access revoked, or valetkeyd stopped?): {e}", self.url);
                    let _ = out.send(error_reply(id, m, Value::Null)).await;
                }
                return;
            }
        };
        if let Some(s) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.to_owned());
        }
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let body = resp.text().await.unwrap_or_default();
            if let Some(id) = &id {
                let (m, data) = refusal(status, &body);
                let _ = out.send(error_reply(id, m, data)).await;
            }
            return;
        }
        self.answer(resp, initialize, out).await;
    }

    /// Passes on a successful answer: JSON, or an event stream.
    async fn answer(
        &self,
        mut resp: reqwest::Response,
        initialize: bool,
        out: &mpsc::Sender<String>,
    ) {
        let stream = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if !stream {
            let text = resp.text().await.unwrap_or_default();
            if !text.trim().is_empty() {
                self.note_version(initialize, &text);
                let _ = out.send(text).await;
            }
            return;
        }
        let mut events = Events::default();
        while let Ok(Some(chunk)) = resp.chunk().await {
            for data in events.feed(&chunk) {
                self.note_version(initialize, &data);
                if out.send(data).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Keeps the revision `initialize` agreed on, for later requests.
    fn note_version(&self, initialize: bool, message: &str) {
        if !initialize {
            return;
        }
        let v: Value = serde_json::from_str(message).unwrap_or(Value::Null);
        if let Some(version) = v["result"]["protocolVersion"].as_str() {
            *self.version.lock().unwrap_or_else(|e| e.into_inner()) = Some(version.to_owned());
        }
    }
}

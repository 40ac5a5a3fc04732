//! One remote MCP server as `valetkey mcp proxy` reaches it: streamable
//! HTTP through valetkeyd's egress proxy, with a placeholder for a token.
//! Each message is POSTed as it comes; the answer, JSON or an event
//! stream, goes to stdout one message per line. A refusal comes back as a
//! JSON-RPC error for the request's id, with the proxy's reason.

use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;
use valetkey_core::mcp::handshake::{answer_of, is_event_stream};
use valetkey_core::mcp::sse::Events;

use super::super::Failure;

/// The JSON-RPC error code of a request Valet Key or the server refused
/// (or could not pass on).
pub const REFUSED: i64 = -32001;

/// The remote server, as this process reaches it.
pub struct Bridge {
    http: reqwest::Client,
    url: String,
    /// `Bearer vkp_…`: a placeholder, not the token.
    auth: String,
    /// `Mcp-Session-Id`, once the server gave one.
    session: Mutex<Option<String>>,
    /// The protocol revision `initialize` agreed on.
    version: Mutex<Option<String>>,
}

/// An HTTP client that goes through the proxy and trusts its CA.
pub fn http_client(proxy_url: &str, ca_bundle: &str) -> Result<reqwest::Client, Failure> {
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

/// A JSON-RPC error answering `id`.
pub fn error_reply(id: &Value, message: String, data: Value) -> String {
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

fn lock(m: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bridge {
    pub fn new(http: reqwest::Client, url: String, placeholder: &str) -> Bridge {
        Bridge {
            http,
            url,
            auth: format!("Bearer {placeholder}"),
            session: Mutex::new(None),
            version: Mutex::new(None),
        }
    }

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
        if let Some(s) = lock(&self.session).clone() {
            req = req.header("mcp-session-id", s);
        }
        if let Some(v) = lock(&self.version).clone() {
            req = req.header("mcp-protocol-version", v);
        }
        req
    }

    /// Sends one message and keeps the session the server gave; the
    /// response, or the error to answer the message's `id` with.
    async fn post(&self, line: String) -> Result<reqwest::Response, (String, Value)> {
        let resp = self.request(line).send().await.map_err(|e| {
            let m = format!("cannot reach {} through valetkeyd's proxy (access revoked, or valetkeyd stopped?): {e}", self.url);
            (m, Value::Null)
        })?;
        if let Some(s) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            *lock(&self.session) = Some(s.to_owned());
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        Err(refusal(status, &resp.text().await.unwrap_or_default()))
    }

    /// The server's own `initialize`, with the client's message `msg`
    /// (which a recorded handshake already answered), then
    /// `notifications/initialized`. Nothing goes to the client.
    pub async fn initialize(&self, msg: &Value) -> Result<(), String> {
        let resp = self
            .post(msg.to_string())
            .await
            .map_err(|(m, _)| format!("the server's initialize: {m}"))?;
        let stream = is_event_stream(&resp);
        let text = resp.text().await.unwrap_or_default();
        let answer = answer_of(&text, stream, &msg["id"])
            .ok_or_else(|| "the server did not answer initialize".to_owned())?;
        let Some(version) = answer["result"]["protocolVersion"].as_str() else {
            return Err(format!(
                "the server refused initialize: {}",
                answer["error"]
            ));
        };
        let asked = msg["params"]["protocolVersion"].as_str();
        if asked != Some(version) {
            eprintln!("valetkey mcp proxy: the server now speaks MCP {version}, not {} as it did at `mcp add`; run `valetkey mcp add --replace` to record it again", asked.unwrap_or("?"));
        }
        *lock(&self.version) = Some(version.to_owned());
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        self.post(note.to_owned())
            .await
            .map(drop)
            .map_err(|(m, _)| format!("notifications/initialized: {m}"))
    }

    /// Sends one message and passes the answer (if any) to `out`.
    pub async fn send(&self, line: String, out: &mpsc::Sender<String>) {
        let msg: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let id = msg.get("id").cloned();
        let initialize = msg["method"] == "initialize";
        match self.post(line).await {
            Ok(resp) => self.answer(resp, initialize, out).await,
            Err((m, data)) => {
                if let Some(id) = &id {
                    let _ = out.send(error_reply(id, m, data)).await;
                }
            }
        }
    }

    /// Passes on a successful answer: JSON, or an event stream.
    async fn answer(
        &self,
        mut resp: reqwest::Response,
        initialize: bool,
        out: &mpsc::Sender<String>,
    ) {
        if !is_event_stream(&resp) {
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
            *lock(&self.version) = Some(version.to_owned());
        }
    }
}

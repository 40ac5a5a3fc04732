//! The MCP handshake, kept so a client need not wait for a token.
//!
//! An MCP client gives its server a short time to answer `initialize`
//! (Claude Code 30 s, the TypeScript SDK's default request timeout 60 s),
//! and a consent card may wait for the user for longer. So `mcp add`,
//! which holds a fresh token right after the login, asks the server's
//! `initialize` once for each protocol revision Valet Key knows and
//! records what it said ([`probe`]); `valetkey mcp proxy` answers a
//! client's `initialize` from that record ([`local_answer`]) and asks for
//! consent only when a call needs the server. The server's own
//! `initialize` is then sent with the client's parameters, so the server
//! sees the client it serves.

use serde_json::{json, Value};
use valetkey_ipc::control::McpHandshake;

use super::sse::Events;
use super::McpError;
use crate::secret::Secret;

/// The protocol revisions Valet Key can pass on, newest first.
pub const REVISIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The most a recorded handshake may take as JSON: it travels in
/// `mcp.add` and `providers.list` frames, which are capped at 64 KiB.
pub const MAX_RECORD: usize = 16 * 1024;

/// Asks `url`'s `initialize` for each of [`REVISIONS`] with `token`, and
/// ends each session it opened. Refused when the server answers none, or
/// with more than [`MAX_RECORD`] bytes to keep.
pub async fn probe(
    http: &reqwest::Client,
    url: &str,
    token: &Secret,
) -> Result<McpHandshake, McpError> {
    let mut found: Option<McpHandshake> = None;
    let mut last = None;
    for rev in REVISIONS {
        match initialize(http, url, token, rev).await {
            Ok(result) => {
                let agreed = result["protocolVersion"].as_str().map(str::to_owned);
                let h = found.get_or_insert_with(|| from_result(&result));
                if agreed.as_deref() == Some(rev) {
                    h.protocol_versions.push(rev.to_owned());
                }
            }
            Err(e) => last = Some(e),
        }
    }
    match (found, last) {
        (Some(h), _) if !h.protocol_versions.is_empty() => within_cap(url, h),
        (_, Some(e)) => Err(e),
        _ => Err(McpError::Unsupported(format!(
            "{url} agreed to none of the MCP revisions {}",
            REVISIONS.join(", ")
        ))),
    }
}

/// `h`, unless it is too large to record.
fn within_cap(url: &str, h: McpHandshake) -> Result<McpHandshake, McpError> {
    let len = serde_json::to_vec(&h).map_or(usize::MAX, |v| v.len());
    if len > MAX_RECORD {
        return Err(McpError::Unsupported(format!(
            "{url}'s initialize result is {len} bytes, more than the {MAX_RECORD} Valet Key \
             records"
        )));
    }
    Ok(h)
}

/// What a server's `initialize` result says about it.
fn from_result(result: &Value) -> McpHandshake {
    McpHandshake {
        protocol_versions: Vec::new(),
        capabilities: result
            .get("capabilities")
            .cloned()
            .unwrap_or_else(|| json!({})),
        server_info: result.get("serverInfo").cloned().unwrap_or(Value::Null),
        instructions: result["instructions"].as_str().map(str::to_owned),
    }
}

/// One `initialize` at revision `rev`; its `result`. The session, if the
/// server opened one, is ended with a `DELETE`.
async fn initialize(
    http: &reqwest::Client,
    url: &str,
    token: &Secret,
    rev: &str,
) -> Result<Value, McpError> {
    let fail = |detail: String| McpError::Http {
        url: url.to_owned(),
        detail,
    };
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": rev,
            "capabilities": {},
            "clientInfo": { "name": "valetkey", "version": env!("CARGO_PKG_VERSION") },
        },
    });
    let resp = http
        .post(url)
        .bearer_auth(token.expose())
        .header(
            reqwest::header::ACCEPT,
            "application/json, text/event-stream",
        )
        .json(&body)
        .send()
        .await
        .map_err(|e| fail(format!("initialize: {e}")))?;
    let session = resp.headers().get("mcp-session-id").cloned();
    let status = resp.status();
    let stream = is_event_stream(&resp);
    let text = resp.text().await.map_err(|e| fail(e.to_string()))?;
    if let Some(s) = session {
        let _ = http
            .delete(url)
            .bearer_auth(token.expose())
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", rev)
            .send()
            .await;
    }
    if !status.is_success() {
        return Err(fail(format!("initialize: HTTP {status}")));
    }
    let answer = answer_of(&text, stream, &json!(1))
        .ok_or_else(|| fail("initialize: no answer in the response".into()))?;
    match answer.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(fail(format!("initialize refused: {}", answer["error"]))),
    }
}

/// Whether a response is an event stream.
pub fn is_event_stream(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"))
}

/// The JSON-RPC answer to `id` in a response body: JSON, or an event
/// stream's messages.
pub fn answer_of(body: &str, stream: bool, id: &Value) -> Option<Value> {
    let messages: Vec<String> = if stream {
        let mut e = Events::default();
        let mut all = e.feed(body.as_bytes());
        all.extend(e.feed(b"\n\n"));
        all
    } else {
        vec![body.to_owned()]
    };
    messages
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .find(|v| {
            v.get("id") == Some(id) && (v.get("result").is_some() || v.get("error").is_some())
        })
}

/// The revision to answer a client that asked for `asked`: that one when
/// the server agreed to it, else the server's newest.
pub fn revision_for<'a>(h: &'a McpHandshake, asked: Option<&'a str>) -> Option<&'a str> {
    asked
        .filter(|a| h.protocol_versions.iter().any(|v| v == a))
        .or(h.protocol_versions.first().map(String::as_str))
}

/// The answer to a client's `initialize` message `msg`, from the record.
pub fn local_answer(h: &McpHandshake, msg: &Value) -> Value {
    let asked = msg["params"]["protocolVersion"].as_str();
    let mut result = json!({
        "protocolVersion": revision_for(h, asked),
        "capabilities": h.capabilities,
        "serverInfo": h.server_info,
    });
    if let Some(i) = &h.instructions {
        result["instructions"] = json!(i);
    }
    json!({ "jsonrpc": "2.0", "id": msg["id"], "result": result })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> McpHandshake {
        McpHandshake {
            protocol_versions: vec!["2025-06-18".into(), "2025-03-26".into()],
            capabilities: json!({"tools": {"listChanged": true}}),
            server_info: json!({"name": "notes", "version": "1.0.0"}),
            instructions: Some("Use whoami first.".into()),
        }
    }

    #[test]
    fn a_record_too_large_for_a_frame_is_refused_and_a_small_one_kept() {
        assert_eq!(within_cap("u", record()).expect("small"), record());
        let mut big = record();
        big.instructions = Some("x".repeat(MAX_RECORD));
        let e = within_cap("https://mcp.example/", big).expect_err("too large");
        assert!(e.to_string().contains("more than the 16384"), "{e}");
    }

    #[test]
    fn a_client_gets_its_own_revision_when_the_server_agreed_to_it() {
        let msg = json!({"jsonrpc":"2.0","id":0,"method":"initialize",
            "params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"c","version":"1"}}});
        let a = local_answer(&record(), &msg);
        assert_eq!(a["id"], 0);
        assert_eq!(a["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(a["result"]["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(a["result"]["serverInfo"]["name"], "notes");
        assert_eq!(a["result"]["instructions"], "Use whoami first.");
    }

    #[test]
    fn a_revision_the_server_never_agreed_to_gets_the_servers_newest() {
        let msg = json!({"id":"a","method":"initialize","params":{"protocolVersion":"2099-01-01"}});
        assert_eq!(
            local_answer(&record(), &msg)["result"]["protocolVersion"],
            "2025-06-18"
        );
        let mut bare = record();
        bare.instructions = None;
        assert!(local_answer(&bare, &msg)["result"]
            .get("instructions")
            .is_none());
    }

    #[test]
    fn the_answer_is_found_in_json_or_in_an_event_stream() {
        let id = json!(1);
        let j = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}"#;
        assert_eq!(
            answer_of(j, false, &id).expect("json")["result"]["protocolVersion"],
            "2025-06-18"
        );
        let s =
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n\
                 data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1}}";
        assert_eq!(
            answer_of(s, true, &id).expect("stream")["error"]["code"],
            -1
        );
        assert!(answer_of(s, true, &json!(2)).is_none());
    }
}

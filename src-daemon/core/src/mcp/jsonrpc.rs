//! What a request to an MCP server's endpoint asks, read from its body:
//! the JSON-RPC method and, for `tools/call`, the tool. This is what the
//! proxy passes to the policy (`input.mcp`) and writes to the audit trail;
//! it reads nothing else of the body.

/// The largest body read (MCP requests are small; a larger one is refused).
pub const MAX_BODY: usize = 1 << 20;

/// One JSON-RPC message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `initialize`, `tools/list`, `tools/call`, `notifications/…`, or
    /// empty for a response the client sends to a server's request.
    pub method: String,
    /// `params.name` of a `tools/call`.
    pub tool: Option<String>,
}

/// Reads `body` (empty for a GET or DELETE of the endpoint). A batch (a
/// JSON array: removed from MCP in revision 2025-06-18) or a body that is
/// not a JSON-RPC object is refused, so nothing passes unread.
pub fn call_of(body: &[u8]) -> Result<Call, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Call {
            method: String::new(),
            tool: None,
        });
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let obj = match v {
        serde_json::Value::Object(o) => o,
        serde_json::Value::Array(_) => {
            return Err("JSON-RPC batches are not passed on (MCP removed them in 2025-06-18); send one message per request".into())
        }
        _ => return Err("the body is not a JSON-RPC message".into()),
    };
    let method = match obj.get("method") {
        Some(serde_json::Value::String(m)) if m.len() <= 128 => m.clone(),
        Some(_) => {
            return Err("the JSON-RPC method must be a string of at most 128 characters".into())
        }
        // A response to a server's request (sampling, elicitation).
        None => String::new(),
    };
    let tool = if method == "tools/call" {
        match obj.get("params").and_then(|p| p.get("name")) {
            Some(serde_json::Value::String(n)) if !n.is_empty() && n.len() <= 128 => {
                Some(n.clone())
            }
            _ => {
                return Err(
                    "tools/call needs params.name, a tool name of at most 128 characters".into(),
                )
            }
        }
    } else {
        None
    };
    Ok(Call { method, tool })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_method_and_the_tool() {
        let c = call_of(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#).expect("call");
        assert_eq!(c.method, "tools/call");
        assert_eq!(c.tool.as_deref(), Some("echo"));
        let l = call_of(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).expect("list");
        assert_eq!((l.method.as_str(), l.tool), ("tools/list", None));
        let r = call_of(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#).expect("response");
        assert_eq!(r.method, "");
        assert_eq!(call_of(b"").expect("empty").method, "");
    }

    #[test]
    fn refuses_what_it_cannot_read_whole() {
        for (body, why) in [
            (
                &br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#[..],
                "batches",
            ),
            (b"{not json", "not JSON"),
            (b"42", "not a JSON-RPC"),
            (br#"{"method":7}"#, "string"),
            (br#"{"method":"tools/call","params":{}}"#, "params.name"),
            (
                br#"{"method":"tools/call","params":{"name":""}}"#,
                "params.name",
            ),
        ] {
            let e = call_of(body).expect_err(why);
            assert!(e.contains(why), "{e} should say {why}");
        }
    }
}

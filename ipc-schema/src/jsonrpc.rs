//! The JSON-RPC 2.0 envelope.
//!
//! Requests are parsed in two steps: first this envelope, then the params
//! against the method named in it (see [`crate::methods`]). That way an
//! unknown method and a malformed params object get distinct, precise errors
//! instead of one opaque "could not deserialize".

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorCode, RpcError};

/// A request id: a number or a string, echoed back in the response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Id {
    /// A numeric id.
    Num(i64),
    /// A string id.
    Str(String),
}

/// A request as received, before its params are checked.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Request {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// Echoed in the response. Notifications (no id) are not used by this
    /// protocol and are answered with `bad_request`.
    #[serde(default)]
    pub id: Option<Id>,
    /// The method name, for example `token.get`.
    pub method: String,
    /// The method's params object; absent means `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// A response: exactly one of `result` or `error` is present.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Response {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The request's id, or `null` when the request could not be read.
    pub id: Option<Id>,
    /// The method's result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    /// A success response.
    pub fn ok(id: Option<Id>, result: Value) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id,
            result: Some(result),
            error: None,
        }
    }

    /// An error response.
    pub fn err(id: Option<Id>, error: RpcError) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id,
            result: None,
            error: Some(error),
        }
    }
}

/// A request as received, borrowing from the frame: the daemon's hot path
/// parses this once, straight into the method's typed params, with no
/// `serde_json::Value` tree in between.
#[derive(Debug, Deserialize)]
pub struct RequestRef<'a> {
    /// Always `"2.0"`.
    #[serde(borrow)]
    pub jsonrpc: std::borrow::Cow<'a, str>,
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<Id>,
    /// The method name.
    #[serde(borrow)]
    pub method: std::borrow::Cow<'a, str>,
    /// The params object, unparsed; absent means `{}`.
    #[serde(default, borrow)]
    pub params: Option<&'a serde_json::value::RawValue>,
}

/// [`parse_request`], borrowing: the same checks and the same errors, and
/// the params left unparsed for the method's own type. Only a frame that
/// fails to parse is looked at a second time, to find its id.
pub fn parse_request_ref(frame: &[u8]) -> Result<RequestRef<'_>, Box<Response>> {
    let req: RequestRef<'_> = match serde_json::from_slice(frame) {
        Ok(r) => r,
        // Not a request of this shape: the slow path gives the same
        // answer (and id) as before.
        Err(_) => {
            return Err(parse_request(frame).err().unwrap_or_else(|| {
                Box::new(Response::err(
                    None,
                    RpcError::new(ErrorCode::BadRequest, "not a JSON-RPC 2.0 request"),
                ))
            }))
        }
    };
    let object = req.params.map(|p| p.get().trim_start().starts_with('{'));
    check(&req.jsonrpc, &req.id, object)?;
    Ok(req)
}

/// The envelope checks both parsers make, in order: the version, an id,
/// and params (when present, `Some(is_object)`) that are an object.
fn check(jsonrpc: &str, id: &Option<Id>, params_object: Option<bool>) -> Result<(), Box<Response>> {
    let why = if jsonrpc != "2.0" {
        format!("\"jsonrpc\" must be \"2.0\", got {jsonrpc:?}")
    } else if id.is_none() {
        "every request needs an \"id\"; notifications are not supported".into()
    } else if params_object == Some(false) {
        "\"params\" must be an object".into()
    } else {
        return Ok(());
    };
    Err(Box::new(Response::err(
        id.clone(),
        RpcError::new(ErrorCode::BadRequest, why),
    )))
}

/// Parses one frame into a request, or the error response to send back.
///
/// The id is recovered where possible so that even a bad request is answered
/// on the right id.
pub fn parse_request(frame: &[u8]) -> Result<Request, Box<Response>> {
    let value: Value = serde_json::from_slice(frame).map_err(|e| {
        Box::new(Response::err(
            None,
            RpcError::new(
                ErrorCode::ParseError,
                format!("frame is not valid JSON: {e}; send one UTF-8 JSON object per line"),
            ),
        ))
    })?;
    if !value.is_object() {
        let what = match &value {
            Value::Array(_) => "an array (batches are not supported)",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(Box::new(Response::err(
            None,
            RpcError::new(
                ErrorCode::BadRequest,
                format!("a frame must be one JSON-RPC 2.0 request object, got {what}; send one object per line"),
            ),
        )));
    }
    let id = value
        .get("id")
        .and_then(|v| serde_json::from_value::<Id>(v.clone()).ok());
    let bad = |why: String| {
        Box::new(Response::err(
            id.clone(),
            RpcError::new(ErrorCode::BadRequest, why),
        ))
    };
    let req: Request = serde_json::from_value(value)
        .map_err(|e| bad(format!("not a JSON-RPC 2.0 request: {e}")))?;
    check(
        &req.jsonrpc,
        &req.id,
        req.params.as_ref().map(Value::is_object),
    )?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_name(r: Result<Request, Box<Response>>) -> (Option<Id>, String) {
        let resp = r.expect_err("should fail");
        let e = resp.error.expect("has error");
        (resp.id, e.name().to_owned())
    }

    #[test]
    fn a_frame_that_is_not_an_object_says_what_it_is() {
        for (frame, what) in [
            (
                &br#"[{"jsonrpc":"2.0","id":1,"method":"whoami"}]"#[..],
                "an array (batches are not supported)",
            ),
            (br#""hello""#, "a string"),
            (b"42", "a number"),
            (b"null", "null"),
        ] {
            let resp = parse_request_ref(frame).expect_err("refused");
            let e = resp.error.expect("error");
            assert_eq!(e.name(), "bad_request");
            assert!(
                e.message.contains(what) && !e.message.contains("invalid type"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn accepts_a_well_formed_request() {
        let r = parse_request(br#"{"jsonrpc":"2.0","id":7,"method":"whoami"}"#).expect("ok");
        assert_eq!(r.id, Some(Id::Num(7)));
        assert_eq!(r.method, "whoami");
    }

    #[test]
    fn rejects_garbage_with_precise_codes() {
        assert_eq!(err_name(parse_request(b"{nope")).1, "parse_error");
        assert_eq!(
            err_name(parse_request(&[0xff, 0xfe, b'{'])).1,
            "parse_error"
        );
        let (id, name) = err_name(parse_request(br#"{"jsonrpc":"1.0","id":"a","method":"x"}"#));
        assert_eq!(
            (id, name.as_str()),
            (Some(Id::Str("a".into())), "bad_request")
        );
        assert_eq!(
            err_name(parse_request(br#"{"jsonrpc":"2.0","method":"x"}"#)).1,
            "bad_request"
        );
        assert_eq!(
            err_name(parse_request(
                br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#
            ))
            .1,
            "bad_request"
        );
        assert_eq!(err_name(parse_request(b"[]")).1, "bad_request");
    }

    #[test]
    fn the_borrowing_parser_gives_the_same_answers() {
        let frames: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":7,"method":"whoami"}"#,
            br#"{"jsonrpc":"2.0","id":"x","method":"token.get","params":{"provider":"p"}}"#,
            b"{nope",
            &[0xff, 0xfe, b'{'],
            br#"{"jsonrpc":"1.0","id":"a","method":"x"}"#,
            br#"{"jsonrpc":"2.0","method":"x"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":null}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":7}"#,
            b"[]",
        ];
        for f in frames {
            let old = parse_request(f).map(|r| (r.id, r.method));
            let new = parse_request_ref(f).map(|r| (r.id, r.method.into_owned()));
            match (old, new) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(
                    serde_json::to_string(&a).expect("json"),
                    serde_json::to_string(&b).expect("json"),
                    "{}",
                    String::from_utf8_lossy(f)
                ),
                (a, b) => panic!("{}: {a:?} vs {b:?}", String::from_utf8_lossy(f)),
            }
        }
        let r = parse_request_ref(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":[1]}}"#)
            .expect("ok");
        assert_eq!(r.params.map(|p| p.get()), Some(r#"{"a":[1]}"#));
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(err_name(parse_request(deep.as_bytes())).1, "parse_error");
    }
}

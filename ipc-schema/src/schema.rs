//! Generates the JSON Schema of the agent protocol from the Rust types.
//!
//! The committed copy lives at `ipc-schema/schema/agent-protocol.json`; the
//! test below regenerates it and fails when the two differ, so the document
//! other-language clients read can never drift from the code.

use schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::control::Event;
use crate::error::{ErrorCode, RpcError};
use crate::jsonrpc::{Request, Response};
use crate::policy::{PolicyDecision, PolicyInput};
use crate::requests::{AgentMethod, ControlMethod};
use crate::{MAX_FRAME_LEN, PROTOCOL_VERSION};

fn defs_of<T: JsonSchema>(gen: &mut SchemaGenerator) -> Value {
    gen.subschema_for::<T>().to_value()
}

/// The whole agent protocol as one JSON document (pretty-printed, stable order).
pub fn agent_protocol_schema() -> String {
    let mut gen = SchemaSettings::draft2020_12().into_generator();
    let methods = AgentMethod::schema_entries(&mut gen);
    document(
        gen,
        methods,
        "agent-protocol.json",
        "Valet Key agent protocol",
        "JSON-RPC 2.0 over a Unix socket (agent.sock), one JSON object per line. See PROTOCOL.md.",
        None,
    )
}

/// The control protocol (tray app and CLI) as one JSON document.
pub fn control_protocol_schema() -> String {
    let mut gen = SchemaSettings::draft2020_12().into_generator();
    let methods = ControlMethod::schema_entries(&mut gen);
    let event = defs_of::<Event>(&mut gen);
    document(
        gen,
        methods,
        "control-protocol.json",
        "Valet Key control protocol",
        "JSON-RPC 2.0 over a Unix socket (control.sock), one JSON object per line; events are pushed as notifications with method \"event\". See PROTOCOL.md.",
        Some(event),
    )
}

/// The policy input document and decision, as one JSON Schema whose root
/// is the input.
pub fn policy_input_schema() -> String {
    let mut gen = SchemaSettings::draft2020_12().into_generator();
    let root = gen.subschema_for::<PolicyInput>();
    let decision = gen.subschema_for::<PolicyDecision>();
    let doc = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://valetkey.invalid/schema/policy-input.json",
        "title": "Valet Key policy input",
        "description": "The `input` document of every Rego policy Valet Key evaluates. See docs/POLICY.md.",
        "$ref": root.to_value()["$ref"].clone(),
        "x-decision": decision,
        "$defs": gen.take_definitions(true),
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn document(
    mut gen: SchemaGenerator,
    methods: Map<String, Value>,
    file: &str,
    title: &str,
    description: &str,
    event: Option<Value>,
) -> String {
    let request = defs_of::<Request>(&mut gen);
    let response = defs_of::<Response>(&mut gen);
    let error = defs_of::<RpcError>(&mut gen);
    let errors: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| json!({"code": c.code(), "name": c.name(), "description": c.description()}))
        .collect();
    let doc = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://valetkey.invalid/schema/{file}"),
        "title": title,
        "description": description,
        "x-protocol-version": PROTOCOL_VERSION,
        "x-max-frame-bytes": MAX_FRAME_LEN,
        "x-request": request,
        "x-response": response,
        "x-error-object": error,
        "x-methods": methods,
        "x-errors": errors,
        "x-event": event,
        "$defs": gen.take_definitions(true),
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_committed(file: &str, fresh: String) {
        // The runtime variable, not env!(): a build reused from another
        // checkout of the same commit would otherwise read that checkout.
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
        let path = format!("{dir}/schema/{file}");
        if std::env::var_os("VALETKEY_BLESS").is_some() {
            std::fs::write(&path, &fresh).expect("write schema");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "ipc-schema/schema/{file} is out of date with the Rust types.\n\
             Regenerate it with: VALETKEY_BLESS=1 cargo test -p valetkey-ipc schema"
        );
    }

    #[test]
    fn committed_schema_matches_the_types() {
        check_committed("agent-protocol.json", agent_protocol_schema());
    }

    #[test]
    fn committed_control_schema_matches_the_types() {
        check_committed("control-protocol.json", control_protocol_schema());
        let v: Value = serde_json::from_str(&control_protocol_schema()).expect("valid JSON");
        for m in [
            "consent.list",
            "consent.decide",
            "revoke",
            "issuing.set",
            "events.subscribe",
        ] {
            assert!(v["x-methods"][m]["params"].is_object(), "{m} params");
        }
        assert!(v["x-event"].is_object());
    }

    #[test]
    fn committed_policy_input_schema_matches_the_types() {
        check_committed("policy-input.json", policy_input_schema());
        let v: Value = serde_json::from_str(&policy_input_schema()).expect("valid JSON");
        let input = &v["$defs"]["PolicyInput"]["properties"];
        for f in [
            "agent",
            "delegating_user",
            "delegation",
            "provider",
            "action",
            "scopes",
            "resource",
            "tool",
            "time",
            "human_approval",
            "request",
        ] {
            assert!(input[f].is_object(), "input.{f}");
        }
    }

    #[test]
    fn schema_names_every_method_and_error() {
        let v: Value = serde_json::from_str(&agent_protocol_schema()).expect("valid JSON");
        for m in ["hello", "token.get", "providers.list", "whoami"] {
            assert!(v["x-methods"][m]["params"].is_object(), "{m} params");
        }
        assert_eq!(
            v["x-errors"].as_array().map(Vec::len),
            Some(ErrorCode::ALL.len())
        );
        assert!(v["$defs"]["TokenGetParams"]["properties"]["scopes"].is_object());
    }
}

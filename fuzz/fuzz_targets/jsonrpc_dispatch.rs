//! JSON-RPC decoding and dispatch: every input frame goes through the real
//! dispatcher of a real daemon state (in-memory database, no providers, so
//! no keychain or network is touched), first on a fresh session and then
//! on one that already said hello. Invariants: no panic, and every answer
//! is a well-formed JSON-RPC response with either a result or an error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use valetkey_core::broker::{Broker, Shared};
use valetkey_core::caller::Caller;
use valetkey_ipc::methods::PeerIdentity;
use valetkeyd::server::dispatch::dispatch;
use valetkeyd::server::{Answer, Session};

fn daemon() -> &'static (tokio::runtime::Runtime, Shared) {
    static D: OnceLock<(tokio::runtime::Runtime, Shared)> = OnceLock::new();
    D.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let cfg = valetkey_core::config::Config::load(std::path::Path::new("/nonexistent/config.toml"))
            .expect("empty config");
        let store = valetkey_core::store::Store::open_in_memory(valetkey_core::clock::system()).expect("db");
        let d = rt.block_on(async { Broker::new(cfg, store) });
        (rt, d)
    })
}

fn session() -> Session {
    Session {
        conn_id: 1,
        caller: Caller::new(1, PeerIdentity {
            uid: 0,
            pid: std::process::id(),
            exe: "/usr/bin/fuzz-agent".into(),
            sha256: "0".repeat(64),
            start_time: 0,
            parents: vec![],
        }),
        egress: None,
        opened: None,
    }
}

const HELLO: &[u8] =
    br#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"protocol":1,"agent":{"name":"fuzz"}}}"#;

fuzz_target!(|data: &[u8]| {
    let (rt, d) = daemon();
    rt.block_on(async {
        let mut fresh = session();
        let mut greeted = session();
        let hello = dispatch(d, &mut greeted, HELLO).await;
        assert!(hello.error().is_none(), "hello failed: {:?}", hello.error());
        for s in [&mut fresh, &mut greeted] {
            let v: serde_json::Value = match dispatch(d, s, data).await {
                Answer::Encoded(bytes) => serde_json::from_slice(&bytes).expect("a valid frame"),
                Answer::Error(resp) => serde_json::to_value(&resp).expect("serializable"),
            };
            assert!(v.get("result").is_some() != v.get("error").is_some(), "result xor error");
            assert_eq!(v["jsonrpc"], "2.0");
        }
    });
});

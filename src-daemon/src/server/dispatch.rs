//! Routes a frame to its handler. The only place that turns JSON into typed
//! params and handler results or errors back into JSON.

use serde_json::Value;
use valetkey_ipc::jsonrpc::{parse_request, Response};
use valetkey_ipc::methods::{
    ConsentWait, DelegationCreate, Hello, Jwks, Method, ProvidersList, TokenGet, Whoami,
};
use valetkey_ipc::{ErrorCode, RpcError};

use super::conn::Session;
use crate::error::BrokerError;
use crate::handlers;
use crate::state::Daemon;

pub(super) fn params<M: Method>(raw: Option<Value>) -> Result<M::Params, BrokerError> {
    let raw = raw.unwrap_or_else(|| Value::Object(Default::default()));
    serde_json::from_value(raw).map_err(|e| {
        BrokerError::rpc(
            ErrorCode::InvalidParams,
            format!("invalid params for {}: {e}; see PROTOCOL.md", M::NAME),
        )
    })
}

pub(super) fn result<T: serde::Serialize>(r: Result<T, BrokerError>) -> Result<Value, BrokerError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|e| {
            BrokerError::rpc(ErrorCode::Internal, format!("cannot encode result: {e}"))
        })
    })
}

/// Answers one frame.
pub async fn dispatch(d: &Daemon, s: &mut Session, frame: &[u8]) -> Response {
    let req = match parse_request(frame) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let id = req.id;
    let method = req.method.as_str();
    let outcome = if method == Hello::NAME {
        match params::<Hello>(req.params) {
            Ok(p) => result(handlers::hello::handle(d, s, p)),
            Err(e) => Err(e),
        }
    } else if method == Jwks::NAME {
        // Public keys: a local resource server may ask without a hello.
        match params::<Jwks>(req.params) {
            Ok(_) => result(handlers::delegation::jwks(d)),
            Err(e) => Err(e),
        }
    } else if s.agent.is_none() {
        Err(BrokerError::rpc(
            ErrorCode::HelloRequired,
            format!("call hello before {method:?}; every connection starts with hello"),
        ))
    } else {
        match method {
            TokenGet::NAME => match params::<TokenGet>(req.params) {
                Ok(p) => result(handlers::token::handle(d, s, p).await),
                Err(e) => Err(e),
            },
            ConsentWait::NAME => match params::<ConsentWait>(req.params) {
                Ok(p) => result(handlers::token::handle_wait(d, s, p).await),
                Err(e) => Err(e),
            },
            ProvidersList::NAME => match params::<ProvidersList>(req.params) {
                Ok(_) => result(handlers::providers::handle(d)),
                Err(e) => Err(e),
            },
            Whoami::NAME => match params::<Whoami>(req.params) {
                Ok(_) => result(handlers::whoami::handle(d, s)),
                Err(e) => Err(e),
            },
            DelegationCreate::NAME => match params::<DelegationCreate>(req.params) {
                Ok(p) => result(handlers::delegation::create(d, s, p).await),
                Err(e) => Err(e),
            },
            other => Err(BrokerError::Rpc(
                RpcError::new(
                    ErrorCode::UnknownMethod,
                    format!(
                        "unknown method {other:?}; methods: hello, token.get, consent.wait, delegation.create, jwks, providers.list, whoami"
                    ),
                )
                .with("method", other),
            )),
        }
    };
    match outcome {
        Ok(v) => Response::ok(id, v),
        Err(e) => {
            let err: RpcError = e.into();
            tracing::info!(code = err.name(), method, "request refused");
            Response::err(id, err)
        }
    }
}

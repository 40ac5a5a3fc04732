//! Routes a frame to its handler. The only place that turns JSON into typed
//! params and handler results or errors back into JSON.

use valetkey_ipc::jsonrpc::{parse_request, Response};
use valetkey_ipc::methods::{
    ConsentWait, DelegationCreate, Hello, Jwks, Method, ProvidersList, TokenGet, Whoami,
};
use valetkey_ipc::{ErrorCode, RpcError};

use super::wire::{params, result, Session};
use valetkey_core::access;
use valetkey_core::broker::Shared;
use valetkey_core::error::BrokerError;

/// Answers one frame.
pub async fn dispatch(d: &Shared, s: &mut Session, frame: &[u8]) -> Response {
    let req = match parse_request(frame) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let id = req.id;
    let method = req.method.as_str();
    let outcome = if method == Hello::NAME {
        match params::<Hello>(req.params) {
            Ok(p) => result(access::hello::handle(d, &mut s.caller, p)),
            Err(e) => Err(e),
        }
    } else if method == Jwks::NAME {
        // Public keys: a local resource server may ask without a hello.
        match params::<Jwks>(req.params) {
            Ok(_) => result(access::delegate::jwks(d)),
            Err(e) => Err(e),
        }
    } else if s.caller.agent.is_none() {
        Err(BrokerError::rpc(
            ErrorCode::HelloRequired,
            format!("call hello before {method:?}; every connection starts with hello"),
        ))
    } else {
        match method {
            TokenGet::NAME => match params::<TokenGet>(req.params) {
                Ok(p) => result(access::token::handle(d, &s.caller, p).await),
                Err(e) => Err(e),
            },
            ConsentWait::NAME => match params::<ConsentWait>(req.params) {
                Ok(p) => result(access::token::handle_wait(d, &s.caller, p).await),
                Err(e) => Err(e),
            },
            ProvidersList::NAME => match params::<ProvidersList>(req.params) {
                Ok(_) => result(access::providers::handle(d)),
                Err(e) => Err(e),
            },
            Whoami::NAME => match params::<Whoami>(req.params) {
                Ok(_) => result(access::whoami::handle(d, &s.caller)),
                Err(e) => Err(e),
            },
            DelegationCreate::NAME => match params::<DelegationCreate>(req.params) {
                Ok(p) => result(access::delegate::create(d, &s.caller, p).await),
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

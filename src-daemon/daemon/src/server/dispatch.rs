//! Routes an agent's frame to its handler: the one place that turns JSON
//! into typed params, and typed results or errors back into a frame.
//! Every method but `hello` and `jwks` needs a greeted caller, checked
//! here once, so no handler checks `hello` again.

use valetkey_ipc::control::BoxReport;
use valetkey_ipc::jsonrpc::{parse_request_ref, Id, RequestRef};
use valetkey_ipc::methods::{
    ConsentWait, DelegationCreate, Hello, Jwks, Method, ProvidersList, ProxyOpen, TokenGet,
    TokenPlaceholder, Whoami,
};
use valetkey_ipc::{ErrorCode, RpcError};

use super::wire::{encode, params_ref, Answer, Session};
use valetkey_core::access;
use valetkey_core::broker::Shared;
use valetkey_core::error::BrokerError;

/// Answers one frame.
pub async fn dispatch(d: &Shared, s: &mut Session, frame: &[u8]) -> Answer {
    let req = match parse_request_ref(frame) {
        Ok(r) => r,
        Err(resp) => return Answer::Error(*resp),
    };
    let answer = route(d, s, &req).await;
    if let Some(e) = answer.error() {
        tracing::info!(code = e.name(), method = %req.method, "request refused");
    }
    answer
}

fn unknown(id: &Option<Id>, method: &str) -> Answer {
    Answer::err(
        id.clone(),
        RpcError::new(
            ErrorCode::UnknownMethod,
            format!(
                "unknown method {method:?}; methods: hello, token.get, token.placeholder, proxy.open, consent.wait, delegation.create, jwks, providers.list, whoami, box.report"
            ),
        )
        .with("method", method),
    )
}

async fn route(d: &Shared, s: &mut Session, req: &RequestRef<'_>) -> Answer {
    let (id, method) = (&req.id, req.method.as_ref());
    macro_rules! call {
        ($m:ty, |$p:ident| $call:expr) => {
            match params_ref::<$m>(req.params) {
                Ok($p) => encode(id, $call),
                Err(e) => Answer::err(id.clone(), e),
            }
        };
    }
    match method {
        Hello::NAME => return call!(Hello, |p| access::hello::handle(d, &mut s.caller, p)),
        // Public keys: a local resource server may ask without a hello.
        Jwks::NAME => return call!(Jwks, |_p| access::delegate::jwks(d)),
        // Keeps what it opened in the session (it lives as long).
        ProxyOpen::NAME => return call!(ProxyOpen, |_p| Box::pin(proxy_open(d, s)).await),
        // A box's supervisor, with its key: no agent behind it.
        BoxReport::NAME => {
            return call!(BoxReport, |p| valetkey_core::boxes::report::handle(
                d,
                &s.caller.identity,
                p
            ))
        }
        _ => {}
    }
    // Everything else needs a greeted caller (an unknown method too: a
    // connection learns nothing before hello).
    let Some(g) = s.caller.greeted() else {
        return hello_required(id, method);
    };
    match method {
        // A box in proxy mode holds no token: it is answered with a
        // placeholder (boxed: rare, and its future is large).
        TokenGet::NAME if g.in_proxy_box() => {
            call!(TokenGet, |p| Box::pin(access::withheld::token_get(d, g, p))
                .await)
        }
        TokenGet::NAME => call!(TokenGet, |p| access::token::handle(d, g, p).await),
        // Rare and large (a consent wait, a delegation): boxed, so every
        // connection's future is not as big as these.
        ConsentWait::NAME => {
            call!(ConsentWait, |p| Box::pin(access::token::handle_wait(
                d, g, p
            ))
            .await)
        }
        TokenPlaceholder::NAME => {
            call!(TokenPlaceholder, |p| Box::pin(
                valetkey_core::access::proxied::placeholder(d, g, p)
            )
            .await)
        }
        ProvidersList::NAME => call!(ProvidersList, |p| access::providers::handle(
            d,
            p.handshake_of.as_deref()
        )),
        Whoami::NAME => call!(Whoami, |_p| access::whoami::handle(d, g)),
        DelegationCreate::NAME => {
            call!(DelegationCreate, |p| Box::pin(access::delegate::create(
                d, g, p
            ))
            .await)
        }
        other => unknown(id, other),
    }
}

/// `proxy.open`: the connection's proxy (opened once, answered again).
async fn proxy_open(
    d: &Shared,
    s: &mut Session,
) -> Result<valetkey_ipc::methods::ProxyOpenResult, BrokerError> {
    if let Some(o) = &s.opened {
        return Ok(o.result.clone());
    }
    let Some(px) = s.egress.clone() else {
        return Err(BrokerError::rpc(
            ErrorCode::Internal,
            "this daemon runs no egress proxy",
        ));
    };
    let o = super::proxy::agent::open(d, &px, &mut s.caller).await?;
    let r = o.result.clone();
    s.opened = Some(o);
    Ok(r)
}

fn hello_required(id: &Option<Id>, method: &str) -> Answer {
    Answer::err(
        id.clone(),
        BrokerError::rpc(
            ErrorCode::HelloRequired,
            format!("call hello before {method:?}; every connection starts with hello"),
        ),
    )
}

//! Routes an agent's frame to its handler: the one place that turns JSON
//! into typed params, and typed results or errors back into a frame.
//! Every method but `hello` and `jwks` needs a greeted caller, checked
//! here once, so no handler checks `hello` again.

use valetkey_ipc::jsonrpc::{parse_request_ref, Id, RequestRef};
use valetkey_ipc::requests::{AgentMethod, AgentRequest};
use valetkey_ipc::{ErrorCode, RpcError};

use super::wire::{encode, Answer, Session};
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
                "unknown method {method:?}; methods: {}",
                AgentMethod::listed()
            ),
        )
        .with("method", method),
    )
}

/// Whether `m` is answered before `hello`: `hello` itself, the public keys
/// (a local resource server may ask without one), `proxy.open` (its own
/// checks), and a box supervisor's `box.report` (its key, no agent).
fn before_hello(m: AgentMethod) -> bool {
    use AgentMethod as M;
    match m {
        M::Hello | M::Jwks | M::ProxyOpen | M::BoxReport => true,
        M::TokenGet
        | M::TokenPlaceholder
        | M::ConsentWait
        | M::ProvidersList
        | M::Whoami
        | M::DelegationCreate => false,
    }
}

async fn route(d: &Shared, s: &mut Session, req: &RequestRef<'_>) -> Answer {
    let id = &req.id;
    // An unknown method, or one that needs a greeted caller, before hello
    // gets hello_required: a connection learns nothing before it, not
    // even which methods exist or what their params are.
    let greeted = s.caller.greeted().is_some();
    let method = match AgentMethod::from_wire(&req.method) {
        Some(m) if greeted || before_hello(m) => m,
        None if greeted => return unknown(id, &req.method),
        _ => return hello_required(id, &req.method),
    };
    match method.parse(req.params) {
        Ok(request) => answer(d, s, id, request).await,
        Err(e) => Answer::err(id.clone(), e),
    }
}

/// One exhaustive match: a method added to [`AgentMethod`]'s list and not
/// handled here does not compile.
async fn answer(d: &Shared, s: &mut Session, id: &Option<Id>, request: AgentRequest) -> Answer {
    use AgentRequest as R;
    let name = request.method().wire();
    let greeted = s.caller.greeted();
    macro_rules! greeted {
        () => {
            match greeted {
                Some(g) => g,
                None => return hello_required(id, name),
            }
        };
    }
    match request {
        R::Hello(p) => encode(id, access::hello::handle(d, &mut s.caller, p)),
        R::Jwks(_) => encode(id, access::delegate::jwks(d)),
        // Keeps what it opened in the session (it lives as long).
        R::ProxyOpen(_) => encode(id, Box::pin(proxy_open(d, s)).await),
        R::BoxReport(p) => encode(
            id,
            valetkey_core::boxes::report::handle(d, &s.caller.identity, p),
        ),
        // A box in proxy mode holds no token: it is answered with a
        // placeholder (boxed: rare, and its future is large).
        R::TokenGet(p) => match greeted!() {
            g if g.in_proxy_box() => {
                encode(id, Box::pin(access::withheld::token_get(d, g, p)).await)
            }
            g => encode(id, access::token::handle(d, g, p).await),
        },
        // Rare and large (a consent wait, a delegation): boxed, so every
        // connection's future is not as big as these.
        R::ConsentWait(p) => {
            let g = greeted!();
            encode(id, Box::pin(access::token::handle_wait(d, g, p)).await)
        }
        R::TokenPlaceholder(p) => {
            let g = greeted!();
            encode(id, Box::pin(access::proxied::placeholder(d, g, p)).await)
        }
        R::ProvidersList(p) => {
            greeted!();
            encode(id, access::providers::handle(d, p.handshake_of.as_deref()))
        }
        R::Whoami(_) => encode(id, access::whoami::handle(d, greeted!())),
        R::DelegationCreate(p) => {
            let g = greeted!();
            encode(id, Box::pin(access::delegate::create(d, g, p)).await)
        }
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

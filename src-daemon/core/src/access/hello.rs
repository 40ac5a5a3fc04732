//! `hello`: checks the protocol version, validates the self-description,
//! verifies a sub-agent's delegation token, and binds the declared name to
//! the attested binary in the registry.

use valetkey_ipc::methods::{HelloParams, HelloResult};
use valetkey_ipc::{ErrorCode, RpcError, PROTOCOL_VERSION};

use crate::broker::Shared;
use crate::caller::Caller;
use crate::error::BrokerError;

/// Handles `hello`, and records the outcome with the attestation: a
/// session whose greeting cannot be recorded is refused (fail closed).
pub fn handle(d: &Shared, s: &mut Caller, p: HelloParams) -> Result<HelloResult, BrokerError> {
    let name = p.agent.name.clone();
    let presented = p.delegation.is_some();
    let r = greet(d, s, p).map_err(RpcError::from);
    let mut rec = crate::audit::about(s, if presented { "delegation.use" } else { "hello" });
    rec.detail = Some(format!("attested {}", s.identity.exe));
    match &r {
        Ok(res) => {
            rec.outcome = "accepted".into();
            if let Some(del) = &res.delegation {
                rec.chain = del.chain.clone();
                rec.provider = Some(del.provider.clone());
                rec.scopes = del.scopes.clone();
                rec.detail = Some(format!(
                    "attested {}; jti {} depth {}",
                    s.identity.exe, del.jti, del.depth
                ));
            }
        }
        Err(e) => {
            if s.agent.is_none() {
                rec.agent = Some(name.clone());
                rec.chain.push(format!("agent:{name}"));
            }
            rec.outcome = format!("refused:{}", e.name());
        }
    }
    if let Err(e) = crate::observe::record(d, rec) {
        if r.is_ok() {
            s.agent = None;
            s.delegation = None;
        }
        return Err(e);
    }
    r.map_err(BrokerError::Rpc)
}

fn greet(d: &Shared, s: &mut Caller, p: HelloParams) -> Result<HelloResult, BrokerError> {
    if s.agent.is_some() {
        return Err(BrokerError::rpc(
            ErrorCode::AlreadyGreeted,
            "hello was already sent on this connection; open a new connection to change identity",
        ));
    }
    if p.protocol != PROTOCOL_VERSION {
        return Err(RpcError::new(
            ErrorCode::ProtocolMismatch,
            format!(
                "this valetkeyd speaks protocol {PROTOCOL_VERSION}, the client sent {}; upgrade the older side",
                p.protocol
            ),
        )
        .with("supported", [PROTOCOL_VERSION])
        .into());
    }
    p.agent
        .validate()
        .map_err(|m| BrokerError::rpc(ErrorCode::InvalidParams, m))?;
    crate::boxes::check_name(&s.identity, &p.agent.name)?;
    // Verify before registering anything: a bad token leaves no trace in
    // the registry.
    let delegation = match &p.delegation {
        Some(t) => Some(crate::delegation::verify::verify_hello(
            d,
            t.expose(),
            &p.agent.name,
            s.identity.binding(),
        )?),
        None => None,
    };
    let agent_id = d.store.upsert_agent_seen(
        &p.agent.name,
        &p.agent.purpose,
        &p.agent.version,
        &s.identity.binding_exe(),
        s.identity.binding(),
    )?;
    tracing::Span::current().record("agent", p.agent.name.as_str());
    tracing::info!(exe = %s.identity.exe, "agent said hello");
    d.events.emit(
        &d.store,
        valetkey_ipc::control::Event::AgentSeen {
            agent: p.agent.name.clone(),
            exe: s.identity.exe.clone(),
        },
    );
    if let Some(del) = &delegation {
        tracing::info!(chain = %del.chain.join(" → "), jti = %del.jti, "sub-agent presented a delegation");
    }
    let info = delegation.clone();
    s.greet(agent_id, p.agent, delegation);
    Ok(HelloResult {
        protocol: PROTOCOL_VERSION,
        daemon_version: env!("CARGO_PKG_VERSION").into(),
        agent_id,
        identity: s.identity.clone(),
        delegation: info,
    })
}

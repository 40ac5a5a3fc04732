//! Control-socket handlers: thin wrappers that turn typed params into
//! calls on the consent flow, the store and revocation.

use valetkey_ipc::control::{
    ActivityListParams, ActivityListResult, AgentNameParams, AgentView, AgentsListResult,
    BinaryView, ConsentDecideParams, ConsentDecideResult, ConsentListResult, Event, GrantView,
    IssuingSetParams, RevokeParams, RevokeResult, StatusResult,
};
use valetkey_ipc::{ErrorCode, RpcError};

use crate::consent::{flow, revoke as revocation};
use crate::error::BrokerError;
use crate::state::Daemon;

/// `consent.list`.
pub fn consent_list(d: &Daemon) -> Result<ConsentListResult, BrokerError> {
    Ok(ConsentListResult {
        consents: d.consents.list(),
    })
}

/// `consent.decide`.
pub fn consent_decide(
    d: &Daemon,
    p: ConsentDecideParams,
) -> Result<ConsentDecideResult, BrokerError> {
    flow::decide(d, &p.id, p.decision, p.scopes)
}

/// `agents.list`.
pub fn agents_list(d: &Daemon) -> Result<AgentsListResult, BrokerError> {
    let grants = d.store.list_grants(None, false)?;
    let mut agents = Vec::new();
    for a in d.store.list_agents()? {
        let binaries = d
            .store
            .agent_binaries(a.id)?
            .into_iter()
            .map(|b| BinaryView {
                exe: b.exe,
                sha256: b.sha256,
                last_seen: b.last_seen,
            })
            .collect();
        agents.push(AgentView {
            id: a.id,
            grants: grants
                .iter()
                .filter(|g| g.agent_id == a.id)
                .map(|g| GrantView {
                    id: g.id,
                    provider: g.provider.clone(),
                    scopes: g.scopes.clone(),
                    binary_sha256: g.binary_sha256.clone(),
                    created_at: g.created_at,
                    expires_at: g.expires_at,
                    last_used_at: g.last_used_at,
                })
                .collect(),
            name: a.name,
            purpose: a.purpose,
            version: a.version,
            status: a.status,
            first_seen: a.created_at,
            last_seen: a.last_seen,
            binaries,
        });
    }
    Ok(AgentsListResult { agents })
}

/// `agents.reinstate`.
pub fn agents_reinstate(d: &Daemon, p: AgentNameParams) -> Result<StatusResult, BrokerError> {
    let a = d.store.agent_by_name(&p.name)?.ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::NotFound,
            format!("no agent named {:?}; `valetkey agents` lists them", p.name),
        )
    })?;
    d.store.set_agent_status(a.id, crate::store::ACTIVE)?;
    d.store.clear_denials(a.id)?;
    tracing::info!(agent = %a.name, "agent reinstated");
    d.events
        .emit(&d.store, Event::StatusChanged { status: d.status() });
    Ok(d.status())
}

/// `revoke`.
pub async fn revoke(d: &Daemon, p: RevokeParams) -> Result<RevokeResult, BrokerError> {
    revocation::revoke(d, p.target).await
}

/// `issuing.set`.
pub fn issuing_set(d: &Daemon, p: IssuingSetParams) -> Result<StatusResult, BrokerError> {
    if d.set_paused(p.paused) {
        tracing::info!(paused = p.paused, "issuing paused state changed");
        d.events
            .emit(&d.store, Event::StatusChanged { status: d.status() });
    }
    Ok(d.status())
}

/// `activity.list`.
pub fn activity_list(d: &Daemon, p: ActivityListParams) -> Result<ActivityListResult, BrokerError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(RpcError::new(ErrorCode::InvalidParams, "limit must be 1 to 500").into());
    }
    Ok(ActivityListResult {
        entries: d.store.list_activity(limit)?,
    })
}

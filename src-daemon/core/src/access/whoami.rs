//! `whoami`: the caller as the daemon sees it, with its usable grants.

use valetkey_ipc::methods::{GrantSummary, WhoamiResult};
use valetkey_ipc::ErrorCode;

use crate::broker::Shared;
use crate::caller::Caller;
use crate::error::BrokerError;

/// Handles `whoami`.
pub fn handle(d: &Shared, s: &Caller) -> Result<WhoamiResult, BrokerError> {
    let (agent_id, agent) = s
        .agent
        .clone()
        .ok_or_else(|| BrokerError::rpc(ErrorCode::HelloRequired, "call hello first"))?;
    let grants = d
        .store
        .list_grants(Some(&agent.name), false)?
        .into_iter()
        .filter(|g| g.binary_sha256 == s.identity.sha256)
        .map(|g| GrantSummary {
            provider: g.provider,
            scopes: g.scopes,
            expires_at: g.expires_at.map(|t| t.max(0) as u64),
        })
        .collect();
    Ok(WhoamiResult {
        agent_id,
        agent,
        identity: s.identity.clone(),
        grants,
        delegation: s.delegation.clone(),
    })
}

//! `whoami`: the caller as the daemon sees it, with its usable grants.

use valetkey_ipc::methods::{GrantSummary, WhoamiResult};

use crate::broker::Shared;
use crate::caller::Greeted;
use crate::error::BrokerError;

/// Handles `whoami`.
pub fn handle(d: &Shared, s: Greeted<'_>) -> Result<WhoamiResult, BrokerError> {
    let grants = d
        .store
        .list_grants(Some(&s.agent.name), false)?
        .into_iter()
        .filter(|g| g.binary_sha256 == s.identity.binding())
        .map(|g| GrantSummary {
            provider: g.provider,
            scopes: g.scopes,
            expires_at: g.expires_at.map(|t| t.max(0) as u64),
        })
        .collect();
    Ok(WhoamiResult {
        agent_id: s.id,
        agent: s.agent.clone(),
        identity: s.identity.clone(),
        grants,
        delegation: s.delegation.clone(),
    })
}

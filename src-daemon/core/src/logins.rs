//! Provider logins as the daemon keeps them. The CLI runs the browser or
//! device flow and writes the refresh token to the keychain; the daemon
//! then records the login (`login.record`), and on `logout` revokes the
//! token at the provider, deletes it from the keychain and forgets the
//! login. Either way nothing from the previous login is handed out again.

use valetkey_ipc::control::{
    LoginRecordParams, LogoutParams, LogoutResult, ProviderStatus, ProvidersStatusResult,
    UpstreamRevocation,
};
use valetkey_ipc::ErrorCode;

use crate::broker::Shared;
use crate::config::Provider;
use crate::error::BrokerError;
use crate::keychain::Item;
use crate::tokens::TokenService;

fn provider(d: &Shared, name: &str) -> Result<std::sync::Arc<Provider>, BrokerError> {
    d.provider(name).ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::UnknownProvider,
            format!(
                "no provider named {name:?} in {} or among the MCP servers; known: {}",
                d.config.path.display(),
                d.provider_names().join(", ")
            ),
        )
    })
}

fn status_of(d: &Shared, p: &Provider) -> Result<ProviderStatus, BrokerError> {
    let st = d.store.provider_state(&p.name)?;
    Ok(ProviderStatus {
        name: p.name.clone(),
        display_name: p.display_name.clone(),
        logged_in_at: st.logged_in_at,
        login_scopes: st.login_scopes.clone(),
        login_required: st.login_required,
        allowed_scopes: p.allowed_scopes.clone(),
        narrows_on_refresh: p.narrows_on_refresh,
    })
}

/// `providers.status`.
pub fn status(d: &Shared) -> Result<ProvidersStatusResult, BrokerError> {
    let providers = d
        .providers()
        .iter()
        .map(|p| status_of(d, p))
        .collect::<Result<_, _>>()?;
    Ok(ProvidersStatusResult { providers })
}

/// `login.record`: the refresh token is in the keychain; start using it.
pub fn record(d: &Shared, p: LoginRecordParams) -> Result<ProviderStatus, BrokerError> {
    let provider = provider(d, &p.provider)?;
    valetkey_ipc::methods::validate_scopes(&p.scopes)
        .map_err(|m| BrokerError::rpc(ErrorCode::InvalidParams, m))?;
    d.store.record_login(&provider.name, &p.scopes)?;
    d.tokens.forget_provider(&provider.name);
    let mut rec = crate::audit::by_user("login", None);
    rec.provider = Some(provider.name.clone());
    rec.granted = p.scopes.clone();
    rec.outcome = "logged_in".into();
    crate::record::record(d, rec)?;
    tracing::info!(provider = %provider.name, "login recorded");
    status_of(d, &provider)
}

/// `logout`: revoke upstream, then delete here, whatever the provider said.
pub async fn logout(d: &Shared, p: LogoutParams) -> Result<LogoutResult, BrokerError> {
    let provider = provider(d, &p.provider)?;
    let (upstream, error) = match d
        .keychain
        .get(Item::RefreshToken(&provider.keychain_key))
        .await?
    {
        None => (UpstreamRevocation::NoToken, None),
        Some(rt) => {
            let secret = TokenService::client_secret(&*d.keychain, &provider)
                .await
                .ok()
                .flatten();
            match d.upstream.revoke(&provider, &rt, secret.as_ref()).await {
                Ok(true) => (UpstreamRevocation::Revoked, None),
                Ok(false) => (UpstreamRevocation::Unsupported, None),
                Err(e) => (UpstreamRevocation::Failed, Some(e.to_string())),
            }
        }
    };
    d.keychain
        .delete(Item::RefreshToken(&provider.keychain_key))
        .await?;
    d.store.record_logout(&provider.name)?;
    d.tokens.forget_provider(&provider.name);
    let mut rec = crate::audit::by_user("logout", None);
    rec.provider = Some(provider.name.clone());
    rec.outcome = if error.is_some() {
        "deleted_locally"
    } else {
        "logged_out"
    }
    .into();
    crate::record::record_best_effort(d, rec);
    tracing::info!(provider = %provider.name, ?upstream, "logged out");
    Ok(LogoutResult { upstream, error })
}

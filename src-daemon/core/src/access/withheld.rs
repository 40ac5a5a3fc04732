//! What a box in `proxy` mode gets where another agent would get a token:
//! a placeholder, or `proxy_only`.
//!
//! The promise of such a box is that it never holds the real token, in
//! its environment, files or memory: the egress proxy writes the token
//! into the requests its rules allow. So every method that would hand a
//! token to the box answers otherwise:
//!
//! - `token.get` takes the steps of `token.placeholder` (consent, policy,
//!   audit, a grant that serves the proxy only) and answers with the
//!   placeholder in `access_token` and `placeholder: true`. An SDK that
//!   sets `Authorization: Bearer …` itself then works unchanged through
//!   the proxy. A provider with no proxy rules gets `proxy_only`: the
//!   proxy could not use a placeholder for it;
//! - `consent.wait` and `delegation.create` get `proxy_only`: the one
//!   would issue a token to the box, the other to a sub-agent anywhere.
//!
//! A grant allowed on such a box's card is marked `proxy_only` in the
//! store, and a raw `token.get` under it (the same script in a box with
//! the shared network, say) is asked anew ([`crate::access::token`]).

use valetkey_ipc::methods::{TokenGetParams, TokenGetResult, TokenPlaceholderParams};
use valetkey_ipc::AccessToken;

use crate::broker::Shared;
use crate::caller::Greeted;
use crate::error::BrokerError;

/// `token.get` from a box in `proxy` mode: a placeholder in place of the
/// token, after the same steps.
pub async fn token_get(
    d: &Shared,
    s: Greeted<'_>,
    p: TokenGetParams,
) -> Result<TokenGetResult, BrokerError> {
    let proxied = d.provider(&p.provider).is_some_and(|x| x.proxy.is_some());
    if !proxied {
        return Err(BrokerError::proxy_only(
            &p.provider,
            "this box's network is the egress proxy, which holds the tokens, and this provider has no proxy rules for it to use a placeholder with ([providers.NAME.proxy]); start the box with --net shared to hand it raw tokens",
        ));
    }
    let wait = p.wait.unwrap_or(true);
    let asked = TokenPlaceholderParams {
        provider: p.provider,
        scopes: p.scopes,
    };
    let got = crate::access::proxied::placeholder_waiting(d, s, asked, wait).await?;
    Ok(TokenGetResult {
        access_token: AccessToken::new(got.placeholder),
        token_type: "Bearer".into(),
        // A placeholder is good while the box runs; an hour ahead keeps
        // clients that refresh early asking now and then, not at once.
        expires_at: (d.clock.now().max(0) as u64) + 3600,
        scopes: got.scopes,
        resource: None,
        provider: got.provider,
        placeholder: true,
    })
}

//! `valetkey login`, `logout` and `provider set-secret`. Login runs the
//! browser or device flow here and puts the refresh token straight into
//! the keychain; the daemon then records the login (it is the only writer
//! of its database). Logout is the daemon's: it revokes the token at the
//! provider, deletes it from the keychain and forgets the login.

use std::io::Read;
use std::time::Duration;

use clap::{Args, Subcommand};

use valetkey_ipc::control::{
    LoginRecord, LoginRecordParams, Logout, LogoutParams, UpstreamRevocation,
};

use super::client::{connect, fail};
use super::{Cli, Failure};
use valetkey_core::keychain::{Item, SecretService};
use valetkey_core::oauth::device::login_device;
use valetkey_core::oauth::login::{login_loopback, LoginOptions};
use valetkey_core::oauth::HttpUpstream;
use valetkey_core::secret::Secret;
use valetkey_core::tokens::TokenService;

/// `valetkey login` options.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The provider name from config.toml.
    pub provider: String,
    /// Only print the URL; do not try to open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Passed to the provider as `login_hint`.
    #[arg(long)]
    pub login_hint: Option<String>,
    /// Use the device authorization grant (RFC 8628): print a code to
    /// approve from any other device. For SSH sessions and headless machines.
    #[arg(long, conflicts_with_all = ["no_browser", "login_hint"])]
    pub device: bool,
    /// How long to wait for the login to complete, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// `valetkey provider …`.
#[derive(Debug, Subcommand)]
pub enum ProviderCmd {
    /// Store a confidential client's secret in the keychain (read from stdin).
    SetSecret {
        /// The provider name.
        provider: String,
    },
    /// Your own GitHub App, so that GitHub narrows each token to the
    /// granted permissions and repositories.
    #[command(name = "github-app", subcommand)]
    GithubApp(GithubAppCmd),
}

/// `valetkey provider github-app …`.
#[derive(Debug, Subcommand)]
pub enum GithubAppCmd {
    /// Make the app with GitHub's app-manifest flow in your browser; its
    /// client secret goes to the keychain, and the config lines to use it
    /// are printed.
    Create {
        /// The provider (a `github` preset with proxy hosts).
        #[arg(default_value = "github")]
        provider: String,
        /// The app's name on GitHub (unique there).
        #[arg(long)]
        name: Option<String>,
        /// Make it for this organization instead of your account.
        #[arg(long)]
        org: Option<String>,
        /// Only print the URL to open.
        #[arg(long)]
        no_browser: bool,
        /// How long to wait for you to confirm on GitHub.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
        timeout: Duration,
    },
}

fn provider<'a>(
    cfg: &'a valetkey_core::config::Config,
    name: &str,
) -> Result<&'a valetkey_core::config::Provider, Failure> {
    cfg.provider(name).ok_or_else(|| Failure {
        code: 1,
        message: format!(
            "no provider named {name:?} in {}; configured: {}",
            cfg.path.display(),
            cfg.providers.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Runs the browser login and stores the refresh token.
pub async fn login(cli: &Cli, a: &LoginArgs) -> Result<(), Failure> {
    let cfg = cli.load_config()?;
    let mcp = match cfg.provider(&a.provider) {
        Some(_) => None,
        None => super::mcp::provider(cli, &a.provider).await?,
    };
    let p = match &mcp {
        Some(p) => p,
        None => provider(&cfg, &a.provider)?,
    };
    // The daemon records the login: make sure it answers before the user
    // goes through a browser for nothing.
    let mut daemon = connect(cli).await?;
    let keychain = SecretService::new();
    let secret = TokenService::client_secret(&keychain, p).await?;
    let upstream = HttpUpstream::new();
    let timeout = Duration::from_secs(a.timeout);
    let tokens = if a.device {
        login_device(&upstream, p, secret.as_ref(), timeout, |d| {
            eprintln!(
                "To log in to {}, visit\n\n  {}\n\nand enter the code\n\n  {}\n",
                p.display_name, d.verification_uri, d.user_code
            );
            if let Some(c) = &d.verification_uri_complete {
                eprintln!("(or open {c} directly)");
            }
            eprintln!(
                "The code expires in {}. Waiting for approval…",
                humantime::format_duration(d.expires_in)
            );
        })
        .await?
    } else {
        let opts = LoginOptions {
            open_browser: !a.no_browser,
            login_hint: a.login_hint.clone(),
            timeout,
        };
        login_loopback(&upstream, p, secret.as_ref(), &opts).await?
    };
    let rt = tokens
        .refresh_token
        .ok_or_else(|| Failure::from(no_refresh_token(p)))?;
    keychain
        .set(Item::RefreshToken(&p.keychain_key), &rt)
        .await?;
    let scopes = tokens.scopes.unwrap_or_else(|| p.login_scopes.clone());
    daemon
        .call::<LoginRecord>(&LoginRecordParams {
            provider: p.name.clone(),
            scopes: scopes.clone(),
        })
        .await
        .map_err(fail)?;
    println!(
        "Logged in to {}. The refresh token is in the OS keychain (service={}, username={}).\nGranted scopes: {}",
        p.display_name,
        valetkey_core::keychain::SERVICE,
        Item::RefreshToken(&p.keychain_key).user(),
        scopes.join(" ")
    );
    Ok(())
}

/// Has the daemon revoke at the provider, then delete locally.
pub async fn logout(cli: &Cli, name: &str) -> Result<(), Failure> {
    let cfg = cli.load_config()?;
    let mcp = match cfg.provider(name) {
        Some(_) => None,
        None => super::mcp::provider(cli, name).await?,
    };
    let p = match &mcp {
        Some(p) => p,
        None => provider(&cfg, name)?,
    };
    let r = connect(cli)
        .await?
        .call::<Logout>(&LogoutParams {
            provider: p.name.clone(),
        })
        .await
        .map_err(fail)?;
    match r.upstream {
        UpstreamRevocation::NoToken => println!("No refresh token for {} in the keychain.", p.name),
        UpstreamRevocation::Revoked => println!("Revoked the refresh token at {} (RFC 7009).", p.display_name),
        UpstreamRevocation::Unsupported => println!(
            "{} has no revocation endpoint: the token is deleted here but stays valid there until it expires; revoke the app in the provider's settings.",
            p.display_name
        ),
        UpstreamRevocation::Failed => {}
    }
    println!("Deleted the {} login from the keychain.", p.name);
    match (r.upstream, r.error) {
        (UpstreamRevocation::Failed, e) => Err(Failure::from(format!(
            "revocation at {} failed: {}. The token was deleted locally but may still be valid at the provider",
            p.display_name,
            e.unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

/// What to change when a login gave no refresh token: an OIDC provider
/// grants `offline_access` only with `prompt=consent` (OIDC Core §11).
fn no_refresh_token(p: &valetkey_core::config::Provider) -> String {
    let asks = p.login_scopes.iter().any(|s| s == "offline_access");
    let prompts = p
        .extra_auth_params
        .get("prompt")
        .is_some_and(|v| v == "consent");
    let fix = match (asks, prompts) {
        (true, false) => format!(
            "it was asked for offline_access, which an OpenID provider honours only with prompt=consent (OIDC Core §11): add extra_auth_params = {{ prompt = \"consent\" }} to [providers.{}]",
            p.name
        ),
        (false, _) => format!(
            "ask for offline access: add \"offline_access\" to login_scopes_extra and extra_auth_params = {{ prompt = \"consent\" }} to [providers.{}] (Google: extra_auth_params = {{ access_type = \"offline\", prompt = \"consent\" }})",
            p.name
        ),
        (true, true) => "the provider was asked for offline_access with prompt=consent and still gave none; check that the client may use refresh tokens (grant type refresh_token) at the provider".into(),
    };
    format!("{} returned no refresh token; {fix}", p.name)
}

/// `provider set-secret` and `provider github-app create`.
pub async fn provider_cmd(cli: &Cli, c: &ProviderCmd) -> Result<(), Failure> {
    let name = match c {
        ProviderCmd::SetSecret { provider } => provider,
        ProviderCmd::GithubApp(g) => return github_app(cli, g).await,
    };
    let cfg = cli.load_config()?;
    let p = provider(&cfg, name)?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let value = input.trim();
    if value.is_empty() {
        return Err(Failure::from(
            "no secret on stdin; pipe it in, e.g. `valetkey provider set-secret NAME < secret.txt`",
        ));
    }
    SecretService::new()
        .set(
            Item::ClientSecret(&p.keychain_key),
            &Secret::new(value.to_owned()),
        )
        .await?;
    println!(
        "Stored the client secret for {} in the OS keychain.",
        p.name
    );
    Ok(())
}

/// `provider github-app create`.
async fn github_app(cli: &Cli, c: &GithubAppCmd) -> Result<(), Failure> {
    let GithubAppCmd::Create {
        provider: name,
        name: app_name,
        org,
        no_browser,
        timeout,
    } = c;
    let cfg = cli.load_config()?;
    let p = provider(&cfg, name)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "me".into());
    let app_name = app_name
        .clone()
        .unwrap_or_else(|| format!("Valet Key ({user})"));
    let up = HttpUpstream::new();
    let app = valetkey_core::oauth::github::create_app(
        &up,
        p,
        &app_name,
        org.as_deref(),
        !no_browser,
        *timeout,
    )
    .await
    .map_err(|e| Failure::from(e.to_string()))?;
    SecretService::new()
        .set(Item::ClientSecret(&p.keychain_key), &app.client_secret)
        .await?;
    println!(
        "Created the GitHub App {} (id {}): {}\n\
         Its client secret is in the OS keychain (for provider {}); its private key and webhook secret were not kept.\n\n\
         Use it in {}:\n\n\
         [providers.{}]\n\
         preset = \"github\"\n\
         client_id = \"{}\"\n\
         confidential = true\n\
         allowed_scopes = [\"metadata:read\", \"contents:read\", \"contents:write\", \"issues:read\", \"issues:write\", \"pull_requests:read\", \"pull_requests:write\"]\n\n\
         Then install it on the repositories agents may reach ({}/installations/new),\n\
         restart valetkeyd, and log in: valetkey login {}",
        app.slug,
        app.id,
        app.html_url,
        p.name,
        cfg.path.display(),
        p.name,
        app.client_id,
        app.html_url,
        p.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(extra: &str) -> valetkey_core::config::Provider {
        let text = format!("[providers.corp]\nissuer = \"https://id.example\"\nclient_id = \"c\"\nallowed_scopes = [\"a\"]\n{extra}");
        let cfg = valetkey_core::config::Config::parse(std::path::Path::new("c.toml"), &text)
            .expect("config");
        (*cfg.providers["corp"]).clone()
    }

    #[test]
    fn no_refresh_token_names_the_missing_piece() {
        let m = no_refresh_token(&provider("login_scopes_extra = [\"offline_access\"]\n"));
        assert!(
            m.contains("prompt=consent")
                && m.contains("extra_auth_params = { prompt = \"consent\" }"),
            "{m}"
        );
        assert!(
            !m.contains("add \"offline_access\""),
            "it was there already: {m}"
        );
        let m = no_refresh_token(&provider(""));
        assert!(
            m.contains("add \"offline_access\" to login_scopes_extra"),
            "{m}"
        );
        let m = no_refresh_token(&provider("login_scopes_extra = [\"offline_access\"]\nextra_auth_params = { prompt = \"consent\" }\n"));
        assert!(
            m.contains("refresh_token") && m.contains("still gave none"),
            "{m}"
        );
    }
}

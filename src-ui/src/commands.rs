//! The webview's commands: one per control method, each a one-line
//! forward through the [`Link`]. No command takes a socket path, a program
//! or a file name from the webview, so a compromised page can do what the
//! user could click, and nothing else; the daemon still checks every request.
//!
//! Keep the list in `build.rs` (which generates the permissions) and in
//! `capabilities/main.json` in sync with [`handler`]; a test checks.

use tauri::State;
use valetkey_ipc::control::{
    ActivityList, ActivityListParams, ActivityListResult, AgentNameParams, AgentsList,
    AgentsListResult, AgentsReinstate, ConsentDecide, ConsentDecideParams, ConsentDecideResult,
    ConsentList, ConsentListResult, IssuingSet, IssuingSetParams, McpList, McpListResult, Revoke,
    RevokeParams, RevokeResult, Status, StatusResult,
};
use valetkey_ipc::methods::NoParams;

use valetkey_ui_link::error::UiError;
use valetkey_ui_link::link::{Connection, Link};

type Res<T> = Result<T, UiError>;

/// The link's state, for a page that just loaded (events sent before it
/// listened are gone).
#[tauri::command]
pub fn connection(link: State<'_, Link>) -> Connection {
    link.state()
}

/// Starts valetkeyd (installed next to this app) and reconnects.
#[tauri::command]
pub async fn start_daemon(link: State<'_, Link>) -> Res<()> {
    valetkey_ui_link::launch::start_daemon()?;
    link.retry_now();
    Ok(())
}

#[tauri::command]
pub async fn status(link: State<'_, Link>) -> Res<StatusResult> {
    link.call::<Status>(&NoParams {}).await
}

#[tauri::command]
pub async fn consent_list(link: State<'_, Link>) -> Res<ConsentListResult> {
    link.call::<ConsentList>(&NoParams {}).await
}

#[tauri::command]
pub async fn consent_decide(
    link: State<'_, Link>,
    params: ConsentDecideParams,
) -> Res<ConsentDecideResult> {
    link.call::<ConsentDecide>(&params).await
}

#[tauri::command]
pub async fn agents_list(link: State<'_, Link>) -> Res<AgentsListResult> {
    link.call::<AgentsList>(&NoParams {}).await
}

#[tauri::command]
pub async fn agents_reinstate(link: State<'_, Link>, name: String) -> Res<StatusResult> {
    link.call::<AgentsReinstate>(&AgentNameParams { name })
        .await
}

#[tauri::command]
pub async fn revoke(link: State<'_, Link>, params: RevokeParams) -> Res<RevokeResult> {
    link.call::<Revoke>(&params).await
}

#[tauri::command]
pub async fn set_paused(link: State<'_, Link>, paused: bool) -> Res<StatusResult> {
    link.call::<IssuingSet>(&IssuingSetParams { paused }).await
}

#[tauri::command]
pub async fn mcp_list(link: State<'_, Link>) -> Res<McpListResult> {
    link.call::<McpList>(&NoParams {}).await
}

#[tauri::command]
pub async fn activity_list(link: State<'_, Link>, limit: Option<u32>) -> Res<ActivityListResult> {
    link.call::<ActivityList>(&ActivityListParams { limit })
        .await
}

/// The invoke handler with every command above.
pub fn handler<R: tauri::Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static
{
    tauri::generate_handler![
        connection,
        start_daemon,
        status,
        consent_list,
        consent_decide,
        agents_list,
        agents_reinstate,
        revoke,
        set_paused,
        activity_list,
        mcp_list,
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn read(rel: &str) -> String {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        std::fs::read_to_string(std::path::Path::new(&dir).join(rel)).unwrap_or_default()
    }

    /// A command missing from build.rs is callable by no one; one missing
    /// from the capability is refused at run time; an extra permission is
    /// more than the window needs. All three lists must match.
    #[test]
    fn commands_build_manifest_and_capability_agree() {
        let src = read("src/commands.rs");
        let code = src.split("#[cfg(test)]").next().unwrap_or_default();
        let defined: BTreeSet<String> = code
            .split("#[tauri::command]")
            .skip(1)
            .filter_map(|rest| {
                let after = rest.split("fn ").nth(1)?;
                Some(after.split('(').next()?.trim().to_owned())
            })
            .collect();
        let build = read("build.rs");
        let listed: BTreeSet<String> = build
            .split("COMMANDS: &[&str] = &[")
            .nth(1)
            .and_then(|s| s.split("];").next())
            .unwrap_or_default()
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        let cap: serde_json::Value =
            serde_json::from_str(&read("capabilities/main.json")).unwrap_or_default();
        let allowed: BTreeSet<String> = cap["permissions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str()?.strip_prefix("allow-"))
            .map(|p| p.replace('-', "_"))
            .collect();
        assert_eq!(defined.len(), 11, "{defined:?}");
        assert_eq!(defined, listed, "build.rs COMMANDS");
        assert_eq!(defined, allowed, "capabilities/main.json");
        let core: Vec<&str> = cap["permissions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .filter(|p| p.starts_with("core:"))
            .collect();
        assert_eq!(
            core,
            ["core:event:allow-listen", "core:event:allow-unlisten"]
        );
    }
}

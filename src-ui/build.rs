//! Embeds the frontend and generates the permissions of the app's own
//! commands. Listing them here turns the default "every app command is
//! callable" off: the webview can call only what `capabilities/` allows.

/// Every `#[tauri::command]` of the app. Keep in sync with `commands.rs`
/// (a test checks).
const COMMANDS: &[&str] = &[
    "connection",
    "start_daemon",
    "status",
    "consent_list",
    "consent_decide",
    "agents_list",
    "agents_reinstate",
    "revoke",
    "set_paused",
    "activity_list",
    "mcp_list",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build step");
}

//! Opening the window: `valetkey-window`, installed next to this program,
//! as a child of the tray. It ends when the user closes it, and with it all
//! of WebKit; a second start while it is open focuses it (its own
//! single-instance handling), so Open never makes two.

use std::path::PathBuf;
use std::process::Stdio;

/// The window program beside this one.
pub fn program() -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("valetkey-window"))
}

/// Starts the window (or focuses the open one), and reaps it when it ends.
pub fn open() {
    let exe = match program() {
        Ok(p) => p,
        Err(e) => return tracing::error!(error = %e, "cannot find valetkey-window"),
    };
    let child = tokio::process::Command::new(&exe)
        .stdin(Stdio::null())
        .kill_on_drop(false)
        .spawn();
    match child {
        Ok(mut child) => {
            tokio::spawn(async move {
                let status = child.wait().await;
                tracing::debug!(?status, "valetkey-window ended");
            });
        }
        Err(e) => tracing::error!(program = %exe.display(), error = %e, "cannot open the window"),
    }
}

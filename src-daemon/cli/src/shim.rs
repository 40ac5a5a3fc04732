//! Version managers' shims as the CLI meets them: `grant add --binary`
//! binds to the program a shim runs, and `valetkey doctor` names the
//! shims on `PATH` and what each runs.
//!
//! Reading a shim is [`valetkey_core::shim`]'s; asking its manager
//! (`MANAGER which PROGRAM`, in this directory and environment, as the
//! agent will be started) is here, because only the user's own process
//! sees the environment the agent will have.

use std::path::{Path, PathBuf};

use valetkey_core::shim::Shim;

use super::Failure;

/// The shim at `abs` (absolute), if it is one, and the program its
/// manager runs here. An error when it is a shim whose manager names no
/// program.
pub fn target(abs: &Path) -> Result<Option<(Shim, PathBuf)>, Failure> {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(abs)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| Failure::from(format!("cannot read {}: {e}", abs.display())))?;
    let text = String::from_utf8_lossy(&head[..n]);
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let Some(shim) = valetkey_core::shim::shebang(&head[..n])
        .and_then(|_| valetkey_core::shim::parse_shim(&text, &name))
    else {
        return Ok(None);
    };
    let asked = format!("`{} which {}`", shim.manager, shim.program);
    let out = std::process::Command::new(&shim.manager)
        .args(["which", &shim.program])
        .envs(shim.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Failure::from(format!(
                "{} is a shim of {}, which did not run: {e}",
                abs.display(),
                shim.manager
            ))
        })?;
    let which = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || which.is_empty() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(Failure::from(format!(
            "{} is a shim; {asked} found no program here{}: pass the program itself",
            abs.display(),
            if said.is_empty() {
                String::new()
            } else {
                format!(" ({said})")
            }
        )));
    }
    let real = std::fs::canonicalize(&which)
        .map_err(|e| Failure::from(format!("{which} (from {asked}): {e}")))?;
    Ok(Some((shim, real)))
}

/// The program `--binary` names: the path made absolute, and a shim
/// (pyenv's `command -v python3`) resolved to what its manager runs here.
/// Any other script goes to the daemon as it is, which refuses it with
/// the reason ([`valetkey_core::shim`]).
pub fn resolve_binary(p: &Path) -> Result<PathBuf, Failure> {
    let abs = std::path::absolute(p).map_err(|e| Failure::from(format!("{}: {e}", p.display())))?;
    match target(&abs)? {
        None => Ok(abs),
        Some((_, real)) => {
            eprintln!(
                "valetkey: {} is a version manager's shim; binding to {}, the program it runs here",
                abs.display(),
                real.display()
            );
            Ok(real)
        }
    }
}

/// The first `name` on `PATH`, as `command -v` finds it.
pub fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

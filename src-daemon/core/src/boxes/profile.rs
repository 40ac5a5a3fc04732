//! What a profile means on this machine: the paths hidden in the box, the
//! ones kept writable, and the working directory it may write.
//!
//! Hidden always: the usual credential stores below, the keyrings, and
//! Valet Key's own config and state (wherever the daemon keeps them).
//! The launcher also gives every box an empty `/tmp` and an empty runtime
//! directory (session bus, Wayland, ssh-agent and gpg-agent sockets, the
//! daemon's `control.sock`), with only the box's own socket in it.

use std::path::{Path, PathBuf};

use crate::config::boxes::Profile;

/// Credential stores hidden in every box (`~/` is the home).
pub const HIDDEN: &[&str] = &[
    "~/.ssh",
    "~/.gnupg",
    "~/.aws",
    "~/.azure",
    "~/.config/gcloud",
    "~/.config/gh",
    "~/.config/hub",
    "~/.kube",
    "~/.docker",
    "~/.netrc",
    "~/.git-credentials",
    "~/.password-store",
    "~/.pki",
    "~/.mozilla",
    "~/.config/google-chrome",
    "~/.config/chromium",
    "~/.npmrc",
    "~/.pypirc",
    "~/.cargo/credentials",
    "~/.cargo/credentials.toml",
    "~/.vault-token",
    "/run/dbus",
];

/// Where things are for the launching user.
#[derive(Debug, Clone)]
pub struct Places {
    /// `$HOME`.
    pub home: PathBuf,
    /// `$XDG_DATA_HOME`, else `~/.local/share`.
    pub data_home: PathBuf,
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    pub config_home: PathBuf,
    /// The box's working directory.
    pub cwd: PathBuf,
    /// Valet Key's own directories as the daemon uses them (config,
    /// state), hidden too.
    pub own: Vec<PathBuf>,
}

/// A profile made concrete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Existing paths to hide, sorted.
    pub hide: Vec<PathBuf>,
    /// Existing paths kept writable, sorted.
    pub read_write: Vec<PathBuf>,
    /// Sockets outside the box it may connect to, as named (expanded).
    pub sockets: Vec<PathBuf>,
}

/// `~/x` under `home`; other paths as they are.
pub fn expand(path: &str, home: &Path) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(path),
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Resolves `profile` for `places`; refuses a working directory that
/// would open the home (or a hidden path) to writing.
pub fn resolve(profile: &Profile, places: &Places) -> Result<Resolved, String> {
    let home = &places.home;
    let mut hide: Vec<PathBuf> = HIDDEN
        .iter()
        .copied()
        .chain(profile.hide.iter().map(String::as_str))
        .map(|p| expand(p, home))
        .chain([
            places.data_home.join("keyrings"),
            places.data_home.join("valetkey"),
            places.config_home.join("valetkey"),
        ])
        .chain(places.own.iter().cloned())
        .filter(|p| exists(p))
        .collect();
    hide.sort();
    hide.dedup();
    let cwd = &places.cwd;
    if !cwd.is_absolute() || home.starts_with(cwd) {
        return Err(format!(
            "the box's working directory {} would make {} writable; run valetkey run from a project directory",
            cwd.display(),
            if cwd == home { "your whole home" } else { "your home and more" }
        ));
    }
    if let Some(h) = hide.iter().find(|h| cwd.starts_with(h)) {
        return Err(format!(
            "the working directory {} is inside {}, which every box hides; run from elsewhere",
            cwd.display(),
            h.display()
        ));
    }
    let mut read_write = Vec::new();
    for p in &profile.read_write {
        read_write.push(writable(&expand(p, home), home)?);
    }
    read_write.sort();
    read_write.dedup();
    let sockets = profile.sockets.iter().map(|p| expand(p, home)).collect();
    Ok(Resolved {
        hide,
        read_write,
        sockets,
    })
}

/// A `read_write` path, made (mode 0700, with its parents) when it is
/// missing and inside the home: a tool's cache (`~/.npm`) often does not
/// exist until the tool first runs, and a bind of a missing path would
/// leave the box without it. Missing and outside the home, it is refused
/// with the fix rather than dropped without a word.
fn writable(path: &Path, home: &Path) -> Result<PathBuf, String> {
    if exists(path) {
        return Ok(path.to_owned());
    }
    if !path.starts_with(home) || path == home {
        return Err(format!(
            "read_write path {} does not exist; create it, or remove it from the profile",
            path.display()
        ));
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| {
            format!(
                "read_write path {} is missing and cannot be made: {e}",
                path.display()
            )
        })?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(root: &Path, cwd: &str) -> Places {
        Places {
            home: root.join("home"),
            data_home: root.join("home/.local/share"),
            config_home: root.join("home/.config"),
            cwd: root.join(cwd),
            own: vec![root.join("state")],
        }
    }

    #[test]
    fn hides_what_exists_and_refuses_the_home_as_working_directory() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        for d in [
            "home/.ssh",
            "home/.local/share/keyrings",
            "state",
            "work",
            "home/.cache",
        ] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        let profile = Profile {
            hide: vec!["~/secret".into()],
            read_write: vec!["~/.cache".into(), "~/gone".into()],
            ..Profile::default()
        };
        let got = resolve(&profile, &places(r, "work")).expect("resolves");
        assert!(got.hide.contains(&r.join("home/.ssh")));
        assert!(got.hide.contains(&r.join("home/.local/share/keyrings")));
        assert!(got.hide.contains(&r.join("state")));
        // Absent paths are left out: there is nothing to hide.
        assert!(!got.hide.contains(&r.join("home/.aws")));
        assert!(!got.hide.contains(&r.join("home/secret")));
        // A missing one in the home is made; outside it, refused.
        assert_eq!(
            got.read_write,
            vec![r.join("home/.cache"), r.join("home/gone")]
        );
        assert!(r.join("home/gone").is_dir(), "made");
        let outside = Profile {
            read_write: vec![r.join("nowhere").display().to_string()],
            ..Profile::default()
        };
        let e = resolve(&outside, &places(r, "work")).expect_err("outside the home");
        assert!(e.contains("does not exist") && e.contains("nowhere"), "{e}");

        let e = resolve(&profile, &places(r, "home")).expect_err("home");
        assert!(e.contains("your whole home"), "{e}");
        let e = resolve(&profile, &places(r, "")).expect_err("ancestor");
        assert!(e.contains("your home and more"), "{e}");
        let e = resolve(&profile, &places(r, "home/.ssh")).expect_err("hidden");
        assert!(e.contains("every box hides"), "{e}");
    }
}

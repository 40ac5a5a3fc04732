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
    if !makeable(path, home) {
        return Err(format!(
            "read_write path {} does not exist; create it, or remove it from the profile",
            path.display()
        ));
    }
    mkdir(path).map_err(|e| {
        format!(
            "read_write path {} is missing and cannot be made: {e}",
            path.display()
        )
    })?;
    Ok(path.to_owned())
}

/// Whether a missing `read_write` path is made when a box starts (inside
/// the home, and not the home itself) rather than refused.
pub fn makeable(path: &Path, home: &Path) -> bool {
    path.starts_with(home) && path != home
}

/// The `read_write` paths of `profile` that do not exist, expanded, each
/// with whether a box's start makes it ([`makeable`]). Reads only: for
/// `valetkey doctor`, which must not change anything.
pub fn missing_read_write(profile: &Profile, home: &Path) -> Vec<(PathBuf, bool)> {
    profile
        .read_write
        .iter()
        .map(|p| expand(p, home))
        .filter(|p| !exists(p))
        .map(|p| {
            let make = makeable(&p, home);
            (p, make)
        })
        .collect()
}

/// Tools' caches a box writes in a directory of its profile's own:
/// where the box sees it, the directory's name, and whether the user's own
/// stays in place (read-only) for a box with no network, where an offline
/// build needs what is already downloaded. pip, Go and most others keep
/// theirs under `~/.cache`. The user's caches are never bound writable:
/// their unboxed tools trust them (cargo builds and runs the registry's
/// sources), so a box that wrote them would run code outside itself.
pub const CACHES: &[(&str, &str, bool)] = &[
    ("~/.cache", "cache", false),
    ("~/.npm", "npm", false),
    ("~/.cargo/registry", "cargo-registry", true),
    ("~/.cargo/git", "cargo-git", true),
];

/// The caches of a box with `profile`: (where the box sees it, the
/// profile's directory under `root`). One inside the working directory or
/// a `read_write` path is left to it, and so is one whose tool the user
/// does not have (`~/.cargo/registry` without `~/.cargo`: a box must not
/// leave a tool's directory behind in the home). With `make`, the
/// profile's directories and any missing place in the home are made
/// (mode 0700).
pub fn caches(
    profile: &Profile,
    places: &Places,
    rw: &[PathBuf],
    root: &Path,
    make: bool,
) -> Result<Vec<(PathBuf, PathBuf)>, String> {
    use crate::config::boxes::Network;
    if profile.caches == Some(false) {
        return Ok(vec![]);
    }
    let offline = profile.network == Network::None;
    let mut out = Vec::new();
    for (at, name, keep_offline) in CACHES {
        let path = expand(at, &places.home);
        let covered = std::iter::once(&places.cwd)
            .chain(rw)
            .any(|w| path.starts_with(w));
        let no_tool = path
            .parent()
            .is_some_and(|p| p != places.home && !p.is_dir());
        if covered || no_tool || (offline && *keep_offline) {
            continue;
        }
        let source = root.join(name);
        if make {
            for d in [&source, &path] {
                mkdir(d).map_err(|e| format!("the box's cache {}: {e}", d.display()))?;
            }
        }
        out.push((path, source));
    }
    Ok(out)
}

fn mkdir(d: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
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

    #[test]
    fn missing_read_write_paths_are_named_without_being_made() {
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home");
        std::fs::create_dir_all(home.join(".cache")).expect("mkdir");
        let profile = Profile {
            read_write: vec![
                "~/.cache".into(),
                "~/later".into(),
                t.path().join("nowhere").display().to_string(),
                home.display().to_string(),
            ],
            ..Profile::default()
        };
        let got = missing_read_write(&profile, &home);
        assert_eq!(
            got,
            vec![
                (home.join("later"), true),
                (t.path().join("nowhere"), false)
            ]
        );
        assert!(!home.join("later").exists(), "only read");
        assert!(!makeable(&home, &home), "the home itself is never made");
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::config::boxes::Network;

    #[test]
    fn a_box_gets_caches_of_its_own_and_an_offline_box_keeps_cargos() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        let places = Places {
            home: r.join("home"),
            data_home: r.join("home/.local/share"),
            config_home: r.join("home/.config"),
            cwd: r.join("home/work"),
            own: vec![],
        };
        let root = r.join("state/box-caches/default");
        let got = caches(&Profile::default(), &places, &[], &root, true).expect("caches");
        let at: Vec<PathBuf> = got.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(at, ["home/.cache", "home/.npm"].map(|p| r.join(p)));
        assert!(!r.join("home/.cargo").exists(), "no ~/.cargo is made");
        std::fs::create_dir(r.join("home/.cargo")).expect("cargo");
        let got = caches(&Profile::default(), &places, &[], &root, true).expect("caches");
        let at: Vec<PathBuf> = got.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            at,
            [
                "home/.cache",
                "home/.npm",
                "home/.cargo/registry",
                "home/.cargo/git"
            ]
            .map(|p| r.join(p))
        );
        assert_eq!(got[1].1, root.join("npm"));
        for (p, s) in &got {
            assert!(
                p.is_dir() && s.is_dir(),
                "made {} and {}",
                p.display(),
                s.display()
            );
        }
        let offline = Profile {
            network: Network::None,
            ..Profile::default()
        };
        let got = caches(&offline, &places, &[r.join("home/.npm")], &root, false).expect("caches");
        assert_eq!(
            got,
            [(r.join("home/.cache"), root.join("cache"))],
            "npm is read_write, cargo's stays the user's"
        );
        let off = Profile {
            caches: Some(false),
            ..Profile::default()
        };
        assert!(caches(&off, &places, &[], &root, true)
            .expect("none")
            .is_empty());
    }
}

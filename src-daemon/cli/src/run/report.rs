//! What `valetkey run` says when the box ends: what its supervisor
//! reported to the daemon (which wrote each event to the audit trail), in
//! words, on stderr.
//!
//! Locked files the box tried to change were refused; sockets outside it
//! were refused. What it made that git or an editor would read is still
//! there: for a repository the box made, the launcher reads its config
//! and hooks now and names every command they would run, so the user can
//! look before running git there.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use valetkey_ipc::control::BoxEvent;

use super::Failure;

/// A new report key: 32 random bytes, hex.
pub fn new_key() -> Result<String, Failure> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| {
            Failure::from(format!(
                "cannot read /dev/urandom for the box's report key: {e}"
            ))
        })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Moves aside each watched path that exists now (it did not when the
/// box was opened: a `.git/commondir` the box made would point the user's
/// git at a configuration of its choosing). Returns what was moved.
pub fn quarantine(watched: &[String], id: &str) -> Vec<BoxEvent> {
    let mut moved = vec![];
    for w in watched {
        let p = Path::new(w);
        if std::fs::symlink_metadata(p).is_err() {
            continue;
        }
        let mut to = format!("{w}.quarantined-by-valetkey");
        if Path::new(&to).exists() {
            to = format!("{to}-{id}");
        }
        if std::fs::rename(p, &to).is_ok() {
            moved.push(BoxEvent {
                kind: "quarantined".into(),
                path: w.clone(),
                op: to,
            });
        }
    }
    moved
}

/// Says what the box's supervisor reported.
pub fn say(events: &[BoxEvent]) {
    for line in lines(events) {
        eprintln!("{line}");
    }
}

/// The report, line by line.
pub fn lines(events: &[BoxEvent]) -> Vec<String> {
    let mut by_kind: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for e in events {
        let ops = by_kind
            .entry(&e.kind)
            .or_default()
            .entry(&e.path)
            .or_default();
        if !ops.contains(&e.op.as_str()) {
            ops.push(&e.op);
        }
    }
    let mut out = vec![];
    if let Some(paths) = by_kind.get("locked") {
        out.push("valetkey run: the box tried to change what your own tools run outside it; it was refused (read-only in the box):".into());
        for (p, ops) in paths {
            out.push(format!("  {p} ({})", ops.join(", ")));
        }
    }
    if let Some(paths) = by_kind.get("socket") {
        out.push(
            "valetkey run: the box tried to reach Unix sockets outside it; refused (EACCES):"
                .into(),
        );
        for p in paths.keys() {
            out.push(format!("  {p}"));
        }
        out.push("  (a socket the box should reach goes in its profile: [box.profiles.NAME] sockets = [\"PATH\"])".into());
    }
    if let Some(paths) = by_kind.get("quarantined") {
        out.push("valetkey run: the box made what git would read as its configuration; it was moved aside (look at it, then delete it):".into());
        for (p, to) in paths {
            out.push(format!("  {p} -> {}", to.join(", ")));
        }
    }
    let moved = by_kind.get("quarantined").cloned().unwrap_or_default();
    if let Some(paths) = by_kind
        .get("created")
        .filter(|p| p.keys().any(|k| !moved.contains_key(k)))
    {
        out.push("valetkey run: the box made what your own tools would read or run; look at it before you use them there:".into());
        for p in paths.keys().filter(|k| !moved.contains_key(*k)) {
            out.extend(made(Path::new(p)));
        }
    }
    out
}

/// What a made path is, and what in it would run.
fn made(p: &Path) -> Vec<String> {
    let shown = p.display();
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !p.exists() {
        return vec![format!("  {shown} (tried; it is not there now)")];
    }
    match name {
        "commondir" => vec![format!("  {shown}: it points git at another directory's configuration; remove it unless you made it")],
        ".vscode" | ".idea" => vec![format!("  {shown}: editor settings, applied when the folder is opened")],
        ".git" if p.is_file() => vec![format!("  {shown}: a .git file pointing git elsewhere: {}", std::fs::read_to_string(p).unwrap_or_default().trim())],
        ".git" => {
            let mut v = vec![format!("  {shown}: a repository")];
            let runs = commands(p);
            if runs.is_empty() {
                v.push("    its config and hooks run nothing".into());
            }
            v.extend(runs.into_iter().map(|r| format!("    runs: {r}")));
            v
        }
        _ => vec![format!("  {shown}")],
    }
}

/// Config keys that make git run a command (the section, or the section
/// and key, lower case), and aliases that start with `!`.
const RUNS: &[&str] = &[
    "core.fsmonitor",
    "core.pager",
    "core.sshcommand",
    "core.editor",
    "core.askpass",
    "core.gitproxy",
    "core.hookspath",
    "sequence.editor",
    "diff.external",
    "credential.helper",
    "gpg.program",
    "uploadpack.packobjectshook",
    "include.path",
    "includeif.path",
    "filter.",
    "merge.",
    "diff.",
    "pager.",
    "browser.",
];

/// The commands gitdir `g`'s config and hooks would run.
fn commands(g: &Path) -> Vec<String> {
    let mut out = vec![];
    let text = std::fs::read_to_string(g.join("config")).unwrap_or_default();
    for e in valetkey_core::boxes::protect::config_entries(&text) {
        let key = format!("{}.{}", e.section, e.key);
        let alias = e.section == "alias" && e.value.trim_matches('"').starts_with('!');
        let runs = RUNS.iter().any(|r| match r.strip_suffix('.') {
            Some(section) => e.section == section && !key.ends_with(".binary"),
            None => key == *r,
        });
        if alias || runs {
            out.push(format!("{key} = {}", e.value));
        }
    }
    if let Ok(hooks) = std::fs::read_dir(g.join("hooks")) {
        use std::os::unix::fs::PermissionsExt;
        for h in hooks.flatten() {
            let name = h.file_name().to_string_lossy().into_owned();
            let exec = h
                .metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            if exec && !name.ends_with(".sample") {
                out.push(format!("hooks/{name}"));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, path: &str, op: &str) -> BoxEvent {
        BoxEvent {
            kind: kind.into(),
            path: path.into(),
            op: op.into(),
        }
    }

    #[test]
    fn a_made_repository_is_read_for_what_it_would_run() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let g = t.path().join("sub/.git");
        std::fs::create_dir_all(g.join("hooks")).expect("mkdir");
        std::fs::write(
            g.join("config"),
            "[core]\n\tbare = false\n\tfsmonitor = \"sh -c 'evil' #\"\n[alias]\n\tst = status\n\tx = !sh -c evil\n[user]\n\tname = a\n",
        )
        .expect("config");
        let hook = g.join("hooks/post-checkout");
        std::fs::write(&hook, "#!/bin/sh\n").expect("hook");
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(g.join("hooks/pre-commit.sample"), "").expect("sample");
        let events = vec![
            ev("created", &g.display().to_string(), "mkdir"),
            ev("locked", "/w/.git/config", "openat"),
            ev("locked", "/w/.git/config", "rename"),
            ev("socket", "/var/tmp/x.sock", "connect"),
        ];
        let text = lines(&events).join("\n");
        assert!(text.contains("/w/.git/config (openat, rename)"), "{text}");
        assert!(text.contains("/var/tmp/x.sock"), "{text}");
        assert!(text.contains("runs: core.fsmonitor"), "{text}");
        assert!(text.contains("runs: alias.x = !sh -c evil"), "{text}");
        assert!(text.contains("runs: hooks/post-checkout"), "{text}");
        assert!(
            !text.contains("alias.st") && !text.contains("pre-commit.sample"),
            "{text}"
        );
        assert!(!text.contains("core.bare"), "{text}");
        assert!(lines(&[]).is_empty());
    }
}

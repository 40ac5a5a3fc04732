//! What a box may not change in the places it writes: the files that make
//! the user's own tools run commands later, outside the box, without the
//! user looking at them first.
//!
//! A box writes its working directory, and the user goes on working
//! there. A plain `git status` runs `core.fsmonitor`; a checkout runs
//! `post-checkout`; a commit runs `pre-commit`; an editor that opens the
//! folder applies its workspace settings (which name programs to run) and
//! may start its tasks. Whatever the box wrote there would then run
//! unboxed, as the user, able to read the keychain. So in every
//! repository the box can write, [`plan`] finds:
//!
//! - **anchored**: the `.git` directory itself is bound onto itself, so it
//!   cannot be moved away and replaced by a crafted one;
//! - **locked** (read-only in the box): `config` (every command key:
//!   `core.fsmonitor`, `core.pager`, `core.sshCommand`, filter and diff
//!   drivers, aliases, `include.path`), `hooks/` (made, empty, when
//!   missing, so none can be added), `modules/` (the submodules' own
//!   configs and hooks, which `git status` visits), `worktrees/` (each
//!   worktree's `commondir` and `config.worktree`), `commondir` and
//!   `config.worktree` where they exist, a `.git` file (a worktree's or
//!   submodule's pointer), the directory `core.hooksPath` names and the
//!   files `include.path` names when they are in a writable place, and the
//!   editors' workspace settings (`.vscode/`, `.idea/`);
//! - **watched**: names that git would read if they appeared
//!   (`.git/commondir` redirects the whole configuration) and that no
//!   mount can keep from being created in a directory git must write. The
//!   box's supervisor reports an attempt to create one, and `valetkey run`
//!   says so when the box ends.
//!
//! Left writable, because nothing in them runs without a person choosing
//! to run it: `.git/objects`, `refs`, `logs`, the index and `HEAD` (commits,
//! branches and fetches work in the box), `.git/info` (excludes,
//! attributes: drivers are named in config, which is locked), and the
//! working tree itself, `Makefile`, `package.json` and `.envrc` included
//! (direnv runs an `.envrc` only after `direnv allow` of its exact
//! content). SECURITY.md has the table.

use std::path::{Path, PathBuf};

use valetkey_ipc::control::{Locked, Protection};

/// How deep below the working directory repositories are looked for.
const MAX_DEPTH: usize = 4;

/// How many directory entries the search reads at most (a huge tree is
/// searched near its top only; `valetkey run --explain` shows what was
/// found).
const MAX_ENTRIES: usize = 20_000;

/// Directories not searched for repositories: built or downloaded trees,
/// never a place a person keeps a repository of their own.
const SKIPPED: &[&str] = &[
    "node_modules",
    "target",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    ".cache",
    "dist",
    "build",
];

/// Editor settings that name programs to run, locked where they exist.
const EDITORS: &[(&str, &str)] = &[
    (
        ".vscode",
        "VS Code applies its settings (which name programs to run) and may start its tasks when the folder opens",
    ),
    (
        ".idea",
        "JetBrains IDEs run its startup tasks and apply its settings when the project opens",
    ),
];

/// The protection of a box writing `writable` (the working directory
/// first, then the profile's `read_write` paths). With `make`, creates an
/// empty `hooks/` where a repository has none, so that it can be locked
/// (without, as for `--explain`, it is listed as it would be).
pub fn plan(writable: &[PathBuf], make: bool) -> Protection {
    let mut p = Protection::default();
    let mut budget = MAX_ENTRIES;
    for root in writable {
        for (dot_git, is_dir) in repositories(root, &mut budget) {
            if is_dir {
                gitdir(&dot_git, writable, make, &mut p);
            } else {
                lock(
                    &mut p,
                    &dot_git,
                    "it points git at the repository (a worktree's or submodule's .git file)",
                );
            }
        }
        for (name, why) in EDITORS {
            let path = root.join(name);
            if path.exists() {
                lock(&mut p, &path, why);
            }
        }
    }
    p.locked.sort_by(|a, b| a.path.cmp(&b.path));
    p.locked.dedup_by(|a, b| a.path == b.path);
    p
}

fn lock(p: &mut Protection, path: &Path, why: &str) {
    p.locked.push(Locked {
        path: path.display().to_string(),
        why: why.into(),
    });
}

/// The protection of one `.git` directory.
fn gitdir(g: &Path, writable: &[PathBuf], make: bool, p: &mut Protection) {
    p.anchored.push(g.display().to_string());
    let hooks = g.join("hooks");
    if make && !hooks.exists() {
        // Git makes it itself at `git init`; an empty one changes nothing.
        let _ = std::fs::create_dir(&hooks);
    }
    for (name, why) in [
        ("config", "git runs the commands it names (core.fsmonitor, core.pager, core.sshCommand, drivers, aliases)"),
        ("hooks", "git runs its hooks on checkout, commit, merge and push"),
        ("modules", "the submodules' configs and hooks, which git status visits"),
        ("worktrees", "each worktree's commondir and config.worktree"),
        ("commondir", "it redirects the whole configuration to another directory"),
        ("config.worktree", "git reads it as configuration"),
    ] {
        let path = g.join(name);
        if path.exists() || (name == "hooks" && !make) {
            lock(p, &path, why);
        }
    }
    if !g.join("commondir").exists() {
        p.watched.push(g.join("commondir").display().to_string());
    }
    for t in config_targets(g) {
        let Ok(t) = std::fs::canonicalize(&t) else {
            continue;
        };
        if writable.iter().any(|w| t.starts_with(w)) {
            lock(
                p,
                &t,
                "the repository's config names it (core.hooksPath or include.path)",
            );
        }
    }
}

/// The paths the config of gitdir `g` names that git reads or runs
/// from: `core.hooksPath` (relative to the working tree's top, where hooks
/// run) and `include`/`includeIf` `path`s (relative to `g`), a plain
/// reading of `key = value` lines. `~/` paths are in the home, which no
/// box writes, and are left out.
fn config_targets(g: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(g.join("config")).unwrap_or_default();
    let top = g.parent().unwrap_or(g);
    let mut out = vec![];
    for e in config_entries(&text) {
        let base = match (e.section.as_str(), e.key.as_str()) {
            ("core", "hookspath") => top,
            ("include" | "includeif", "path") => g,
            _ => continue,
        };
        let v = e.value.trim_matches('"');
        if !v.is_empty() && !v.starts_with('~') {
            out.push(base.join(v));
        }
    }
    out
}

/// One `key = value` line of a git config file, under its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The section's name, lower case (`core`, `alias`, `filter` for
    /// `[filter "lfs"]`).
    pub section: String,
    /// The key, lower case.
    pub key: String,
    /// The value as written (trimmed; quotes kept).
    pub value: String,
}

/// A plain reading of a git config file's `key = value` lines: enough to
/// find the keys that run commands (git's own syntax puts each on a line).
pub fn config_entries(text: &str) -> Vec<ConfigEntry> {
    let mut section = String::new();
    let mut out = vec![];
    for line in text.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix('[') {
            section = s
                .split([']', ' ', '"'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push(ConfigEntry {
                section: section.clone(),
                key: k.trim().to_ascii_lowercase(),
                value: v.trim().to_owned(),
            });
        }
    }
    out
}

/// The `.git` entries at most [`MAX_DEPTH`] below `root`, with whether
/// each is a directory (else a `.git` file).
fn repositories(root: &Path, budget: &mut usize) -> Vec<(PathBuf, bool)> {
    let mut found = vec![];
    let mut level = vec![root.to_owned()];
    for _ in 0..=MAX_DEPTH {
        let mut next = vec![];
        for dir in level {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if *budget == 0 {
                    return found;
                }
                *budget -= 1;
                let Ok(t) = e.file_type() else { continue };
                let name = e.file_name();
                if name == ".git" {
                    found.push((e.path(), t.is_dir()));
                } else if t.is_dir() && !SKIPPED.iter().any(|s| name == *s) {
                    next.push(e.path());
                }
            }
        }
        level = next;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "git {args:?}");
    }

    fn paths(v: &[Locked]) -> Vec<String> {
        v.iter().map(|l| l.path.clone()).collect()
    }

    #[test]
    fn a_repository_its_nested_ones_and_editor_settings_are_found() {
        let t = tempfile::tempdir().expect("tempdir");
        let w = t.path().join("work");
        std::fs::create_dir_all(w.join("vendor/lib")).expect("mkdir");
        std::fs::create_dir_all(w.join("node_modules/pkg")).expect("mkdir");
        std::fs::create_dir_all(w.join(".vscode")).expect("mkdir");
        std::fs::create_dir_all(w.join("hooks-dir")).expect("mkdir");
        git(&w, &["init", "-q"]);
        git(&w, &["config", "core.hooksPath", "hooks-dir"]);
        git(&w.join("vendor/lib"), &["init", "-q"]);
        git(&w.join("node_modules/pkg"), &["init", "-q"]);
        std::fs::remove_dir_all(w.join("vendor/lib/.git/hooks")).expect("no hooks");
        std::fs::create_dir_all(w.join("sub")).expect("mkdir");
        std::fs::write(w.join("sub/.git"), "gitdir: ../.git/worktrees/sub\n").expect("gitfile");
        let dry = plan(std::slice::from_ref(&w), false);
        assert!(
            !w.join("vendor/lib/.git/hooks").exists(),
            "a dry run makes nothing"
        );
        let p = plan(std::slice::from_ref(&w), true);
        assert_eq!(dry, p, "and finds the same");
        let locked = paths(&p.locked);
        let has = |s: &str| locked.contains(&w.join(s).display().to_string());
        assert!(has(".git/config") && has(".git/hooks"), "{locked:?}");
        assert!(
            has("vendor/lib/.git/config") && has("vendor/lib/.git/hooks"),
            "{locked:?}"
        );
        assert!(
            w.join("vendor/lib/.git/hooks").is_dir(),
            "an empty hooks dir was made to lock"
        );
        assert!(has("sub/.git") && has(".vscode"), "{locked:?}");
        // core.hooksPath, relative to the working tree's top.
        assert!(has("hooks-dir"), "{locked:?}");
        assert!(
            !has("node_modules/pkg/.git/config"),
            "downloaded trees are not searched: {locked:?}"
        );
        assert_eq!(
            p.anchored,
            vec![
                w.join(".git").display().to_string(),
                w.join("vendor/lib/.git").display().to_string()
            ]
        );
        assert!(p
            .watched
            .contains(&w.join(".git/commondir").display().to_string()));
    }

    #[test]
    fn config_targets_are_read_from_their_sections() {
        let t = tempfile::tempdir().expect("tempdir");
        let g = t.path().join(".git");
        std::fs::create_dir(&g).expect("mkdir");
        std::fs::write(
            g.join("config"),
            "[core]\n\thooksPath = .husky\n[include]\n\tpath = ../shared.cfg\n[includeIf \"gitdir:~/x\"]\n\tpath = \"/abs/x.cfg\"\n[user]\n\tpath = not-this\n",
        )
        .expect("write");
        assert_eq!(
            config_targets(&g),
            vec![
                t.path().join(".husky"),
                g.join("../shared.cfg"),
                PathBuf::from("/abs/x.cfg")
            ]
        );
    }
}

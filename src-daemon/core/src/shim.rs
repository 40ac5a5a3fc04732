//! Scripts given as an agent's binary, and the version managers' shims
//! that are scripts standing in for a program.
//!
//! A grant binds to the hash of the program the agent's process runs
//! (`/proc/PID/exe`). For a script that is its interpreter, never the
//! script, so a grant "for" a script matches nothing, and the agent gets
//! `consent_required` with no hint why. Under pyenv, `command -v python3`
//! is such a script: a shim that hands over to `pyenv exec`. So the CLI
//! resolves a shim to the program its manager would run (`MANAGER which
//! PROGRAM`, the command pyenv, rbenv, nodenv and asdf all have), and the
//! daemon refuses any other script with the reason.

/// The interpreter line of a file that starts with `#!`, without the
/// `#!` and trimmed; `None` for anything else (an ELF program).
pub fn shebang(head: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    Some(String::from_utf8_lossy(line).trim().to_owned())
}

/// A version manager's shim: the manager it hands over to, and the
/// program it asks that manager to run.
#[derive(Debug, PartialEq, Eq)]
pub struct Shim {
    /// The manager's executable (`…/libexec/pyenv`, `…/bin/asdf`).
    pub manager: String,
    /// The program's name (the shim's own file name where the shim says
    /// `"$program"`).
    pub program: String,
    /// What the shim exports for its manager with a plain value
    /// (pyenv's `PYENV_ROOT`): the manager must see it to answer as it
    /// would for the shim.
    pub env: Vec<(String, String)>,
}

/// Reads a shim: its last `exec MANAGER exec PROGRAM "$@"` line, the form
/// pyenv's, rbenv's, nodenv's and asdf's shims share. `file_name` is the
/// shim's own name, which `"$program"` (`${0##*/}`) stands for.
pub fn parse_shim(text: &str, file_name: &str) -> Option<Shim> {
    text.lines().rev().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["exec", manager, "exec", program, "\"$@\"", ..] => {
                let program = unquote(program);
                let program = if program.starts_with('$') {
                    file_name.to_owned()
                } else {
                    program.to_owned()
                };
                Some(Shim {
                    manager: unquote(manager).to_owned(),
                    program,
                    env: exports(text),
                })
            }
            _ => None,
        }
    })
}

/// `export NAME="VALUE"` lines whose value names no variable.
fn exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), unquote(v.trim()).to_owned()))
        .filter(|(k, v)| !k.is_empty() && !v.contains('$') && !v.contains('`'))
        .collect()
}

fn unquote(w: &str) -> &str {
    w.trim_matches(|c| c == '"' || c == '\'')
}

/// Why a script cannot be an agent's binary, and what to pass instead.
pub fn script_refusal(path: &str, interpreter: &str) -> String {
    format!(
        "{path} is a script (#!{interpreter}), not a program: an agent that runs it is \
         its interpreter, so a grant bound to the script would never match. Pass the \
         program the agent's process runs (for a script agent, its interpreter, with \
         `valetkey run` to pin the script; for a version manager's shim, what \
         `pyenv which NAME` or `asdf which NAME` prints)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elf_program_has_no_interpreter_line() {
        assert_eq!(shebang(b"\x7fELF\x02\x01"), None);
        assert_eq!(
            shebang(b"#!/usr/bin/env bash\nset -e\n").as_deref(),
            Some("/usr/bin/env bash")
        );
        assert_eq!(shebang(b"#! /bin/sh").as_deref(), Some("/bin/sh"));
    }

    #[test]
    fn pyenvs_shim_names_its_manager_and_program() {
        let pyenv = "#!/usr/bin/env bash\nset -e\n[ -n \"$PYENV_DEBUG\" ] && set -x\n\n\
            program=\"${0##*/}\"\n\nexport PYENV_ROOT=\"/home/u/.pyenv\"\n\
            exec \"/home/u/.pyenv/libexec/pyenv\" exec \"$program\" \"$@\"\n";
        assert_eq!(
            parse_shim(pyenv, "python3"),
            Some(Shim {
                manager: "/home/u/.pyenv/libexec/pyenv".into(),
                program: "python3".into(),
                env: vec![("PYENV_ROOT".into(), "/home/u/.pyenv".into())],
            })
        );
    }

    #[test]
    fn asdfs_shim_names_the_program_itself() {
        let asdf = "#!/usr/bin/env bash\n# asdf-plugin: nodejs 20.1.0\n\
            exec /home/u/.asdf/bin/asdf exec \"node\" \"$@\" # asdf_allow: ' asdf '\n";
        assert_eq!(
            parse_shim(asdf, "node"),
            Some(Shim {
                manager: "/home/u/.asdf/bin/asdf".into(),
                program: "node".into(),
                env: vec![],
            })
        );
    }

    #[test]
    fn an_ordinary_script_is_no_shim() {
        assert_eq!(
            parse_shim("#!/bin/sh\nexec python3 agent.py \"$@\"\n", "run"),
            None
        );
        let m = script_refusal("/x/run", "/bin/sh");
        assert!(m.contains("/x/run") && m.contains("pyenv which"), "{m}");
    }
}

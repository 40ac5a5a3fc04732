//! The entry point of a box: which program runs and, for an interpreter,
//! which script, so that two Python agents are two agents.
//!
//! The attested executable of every Python agent is `python3`; what tells
//! them apart is the script. [`locate`] reads the command line the way the
//! interpreter will (`python3 -u x.py`, `node --require h.js y.js`,
//! `bash -e z.sh`, or a `#!` script run directly) and [`entry_hash`] binds
//! the program's hash, every option before the script (an option can load
//! code: `-r`, `-c`, `-m`) and the script's hash into one value. A command
//! with no script file (`python3 -c CODE`, `node -e CODE`, `python3 -m
//! mod`) binds to its whole command line instead. Programs that are not
//! known interpreters bind to their own hash only: their arguments are
//! data.
//!
//! What the hash does not cover: files the script imports or reads later.
//! Keep an agent's code where the box cannot write it (outside its working
//! directory) if that matters.

use std::path::{Path, PathBuf};

/// Which interpreter family parses the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Python,
    Node,
    Shell,
    Ruby,
    Perl,
}

fn family(program: &Path) -> Option<Family> {
    let name = program.file_name()?.to_str()?;
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c == '.');
    match name {
        "node" | "nodejs" => Some(Family::Node),
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" => Some(Family::Shell),
        "ruby" => Some(Family::Ruby),
        "perl" => Some(Family::Perl),
        n if n.strip_prefix("python").is_some_and(digits) => Some(Family::Python),
        _ => None,
    }
}

/// Where the script is in `args` (`argv[1..]`), if the interpreter runs one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// `args[i]` is the script file.
    Script(usize),
    /// Code from the command line, a module or stdin: no script file.
    Inline,
}

/// Long options that take the next argument as their value.
fn long_takes_value(f: Family, opt: &str) -> bool {
    if opt.contains('=') {
        return false;
    }
    let list: &[&str] = match f {
        Family::Python => &["--check-hash-based-pycs"],
        Family::Node => &[
            "--require",
            "--import",
            "--loader",
            "--experimental-loader",
            "--conditions",
            "--input-type",
            "--title",
            "--env-file",
            "--inspect-port",
            "--stack-size",
        ],
        Family::Shell => &["--rcfile", "--init-file"],
        Family::Ruby | Family::Perl => &[],
    };
    list.contains(&opt)
}

/// For a cluster of short options (`-uc`): whether it ends the options
/// with inline code (`Some(true)`), takes the next argument as a value
/// (`Some(false)`), or neither (`None`).
fn short_cluster(f: Family, cluster: &str) -> Option<bool> {
    let (inline, valued): (&str, &str) = match f {
        Family::Python => ("cm", "WX"),
        Family::Node => ("ep", "rC"),
        Family::Shell => ("cs", "oO"),
        Family::Ruby => ("e", "IrCEx"),
        Family::Perl => ("eE", "IMmx"),
    };
    for (i, c) in cluster.char_indices() {
        if inline.contains(c) {
            return Some(true);
        }
        if valued.contains(c) {
            // The value is the rest of the cluster, or the next argument.
            return (i + c.len_utf8() == cluster.len()).then_some(false);
        }
    }
    None
}

fn find_script(f: Family, args: &[String]) -> Found {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            return if i + 1 < args.len() {
                Found::Script(i + 1)
            } else {
                Found::Inline
            };
        }
        if a == "-" {
            return Found::Inline;
        }
        if let Some(long) = a.strip_prefix("--") {
            if matches!(f, Family::Node) && matches!(long, "eval" | "print") {
                return Found::Inline;
            }
            i += if long_takes_value(f, a) { 2 } else { 1 };
            continue;
        }
        let cluster = a.strip_prefix('-').or_else(|| {
            // `+o opt` for shells.
            (f == Family::Shell).then(|| a.strip_prefix('+')).flatten()
        });
        match cluster {
            None => return Found::Script(i),
            Some(c) => match short_cluster(f, c) {
                Some(true) => return Found::Inline,
                Some(false) => i += 2,
                None => i += 1,
            },
        }
    }
    Found::Inline
}

/// What a box's command line runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The executable (for a `#!` script, its interpreter).
    pub program: PathBuf,
    /// The script, when there is one.
    pub script: Option<PathBuf>,
    /// What besides the files decides the code that runs: the options
    /// before the script, the whole command line when there is no script,
    /// or a `#!` line.
    pub options: Vec<String>,
}

/// Reads `argv` as the program at `program` (absolute, after `PATH`
/// lookup) will, in `cwd`. `first_line` gives a file's first line when it
/// starts with `#!` (None otherwise, or when unreadable).
pub fn locate(
    program: &Path,
    argv: &[String],
    cwd: &Path,
    first_line: impl Fn(&Path) -> Option<String>,
) -> Entry {
    let args = argv.get(1..).unwrap_or(&[]);
    if let Some(f) = family(program) {
        return match find_script(f, args) {
            Found::Script(i) => {
                let path = cwd.join(&args[i]);
                if path.is_file() {
                    Entry {
                        program: program.to_owned(),
                        script: Some(path),
                        options: args[..i].to_vec(),
                    }
                } else {
                    inline(program, args)
                }
            }
            Found::Inline => inline(program, args),
        };
    }
    match first_line(program) {
        Some(line) => Entry {
            program: shebang_interpreter(&line).unwrap_or_else(|| program.to_owned()),
            script: Some(program.to_owned()),
            options: vec![line],
        },
        None => Entry {
            program: program.to_owned(),
            script: None,
            options: vec![],
        },
    }
}

fn inline(program: &Path, args: &[String]) -> Entry {
    Entry {
        program: program.to_owned(),
        script: None,
        options: args.to_vec(),
    }
}

/// The interpreter a `#!` line names (its first word).
fn shebang_interpreter(line: &str) -> Option<PathBuf> {
    let rest = line.strip_prefix("#!")?.trim();
    rest.split_whitespace().next().map(PathBuf::from)
}

/// The first line of `path` when it starts with `#!` (at most 256 bytes).
pub fn shebang_of(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    if !head.starts_with(b"#!") {
        return None;
    }
    let end = head.iter().position(|b| *b == b'\n').unwrap_or(n);
    Some(String::from_utf8_lossy(&head[..end]).trim_end().to_owned())
}

/// The value grants bind to, from the program's hash, the options and the
/// script's hash. Domain-separated, so it never equals a file's own hash.
pub fn entry_hash(program_sha: &str, options: &[String], script_sha: Option<&str>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"valetkey-box-entry/1\n");
    ctx.update(program_sha.as_bytes());
    ctx.update(b"\n");
    for o in options {
        ctx.update(&(o.len() as u64).to_be_bytes());
        ctx.update(o.as_bytes());
    }
    ctx.update(b"\n");
    ctx.update(script_sha.unwrap_or("").as_bytes());
    crate::attest::hex(ctx.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn args_of(f: Family, a: &[&str]) -> Found {
        find_script(f, &v(a))
    }

    #[test]
    fn finds_the_script_after_the_interpreters_options() {
        use Family::*;
        assert_eq!(args_of(Python, &["x.py", "-c", "y"]), Found::Script(0));
        assert_eq!(
            args_of(Python, &["-u", "-W", "ignore", "x.py"]),
            Found::Script(3)
        );
        assert_eq!(args_of(Python, &["-Wignore", "x.py"]), Found::Script(1));
        assert_eq!(args_of(Python, &["-c", "print(1)", "x.py"]), Found::Inline);
        assert_eq!(args_of(Python, &["-uc", "print(1)", "x.py"]), Found::Inline);
        assert_eq!(args_of(Python, &["-m", "http.server"]), Found::Inline);
        assert_eq!(args_of(Python, &["-"]), Found::Inline);
        assert_eq!(
            args_of(Node, &["--require", "h.js", "y.js"]),
            Found::Script(2)
        );
        assert_eq!(args_of(Node, &["--require=h.js", "y.js"]), Found::Script(1));
        assert_eq!(args_of(Node, &["-e", "1", "y.js"]), Found::Inline);
        assert_eq!(args_of(Node, &["--eval", "1"]), Found::Inline);
        assert_eq!(
            args_of(Shell, &["-e", "-o", "pipefail", "z.sh"]),
            Found::Script(3)
        );
        assert_eq!(args_of(Shell, &["-c", "evil", "z.sh"]), Found::Inline);
        assert_eq!(args_of(Shell, &["-xc", "evil", "z.sh"]), Found::Inline);
        assert_eq!(args_of(Shell, &["--", "z.sh"]), Found::Script(1));
        assert_eq!(args_of(Ruby, &["-e", "1", "r.rb"]), Found::Inline);
        assert_eq!(args_of(Perl, &["-Ilib", "p.pl"]), Found::Script(1));
    }

    #[test]
    fn knows_interpreters_by_name() {
        assert_eq!(
            family(Path::new("/usr/bin/python3.11")),
            Some(Family::Python)
        );
        assert_eq!(family(Path::new("/usr/bin/python")), Some(Family::Python));
        assert_eq!(family(Path::new("/usr/bin/pythonista")), None);
        assert_eq!(family(Path::new("/usr/bin/bash")), Some(Family::Shell));
        assert_eq!(family(Path::new("/usr/bin/git")), None);
    }

    #[test]
    fn locates_scripts_shebangs_and_plain_programs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.py"), "print(1)\n").expect("write");
        let py = Path::new("/usr/bin/python3");
        let none = |_: &Path| None;
        let e = locate(
            py,
            &v(&["python3", "-u", "a.py", "--flag"]),
            dir.path(),
            none,
        );
        assert_eq!(e.script, Some(dir.path().join("a.py")));
        assert_eq!(e.options, v(&["-u"]));
        // A missing script: the whole command line is the entry.
        let e = locate(py, &v(&["python3", "gone.py", "x"]), dir.path(), none);
        assert_eq!((e.script, e.options), (None, v(&["gone.py", "x"])));
        // A #! script run directly: its interpreter is the program.
        let tool = dir.path().join("tool");
        let e = locate(&tool, &v(&["tool", "arg"]), dir.path(), |_| {
            Some("#!/usr/bin/env python3".into())
        });
        assert_eq!(e.program, PathBuf::from("/usr/bin/env"));
        assert_eq!(e.script, Some(tool.clone()));
        assert_eq!(e.options, v(&["#!/usr/bin/env python3"]));
        // Anything else: the program alone; its arguments are data.
        let e = locate(
            Path::new("/usr/bin/gh"),
            &v(&["gh", "pr", "list"]),
            dir.path(),
            none,
        );
        assert_eq!((e.script, e.options), (None, vec![]));
    }

    #[test]
    fn reads_only_a_leading_shebang() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = dir.path().join("s");
        std::fs::write(&s, "#!/bin/sh -e\necho hi\n").expect("write");
        assert_eq!(shebang_of(&s).as_deref(), Some("#!/bin/sh -e"));
        std::fs::write(&s, "echo #!/bin/sh\n").expect("write");
        assert_eq!(shebang_of(&s), None);
    }

    #[test]
    fn the_entry_hash_separates_scripts_options_and_plain_hashes() {
        let a = entry_hash("p", &[], Some("s1"));
        assert_ne!(a, entry_hash("p", &[], Some("s2")));
        assert_ne!(a, entry_hash("p", &v(&["-u"]), Some("s1")));
        assert_ne!(a, entry_hash("q", &[], Some("s1")));
        // Options are length-prefixed: ["ab"] is not ["a", "b"].
        assert_ne!(
            entry_hash("p", &v(&["ab"]), None),
            entry_hash("p", &v(&["a", "b"]), None)
        );
        assert_ne!(entry_hash("p", &[], None), "p");
        assert_eq!(a.len(), 64);
    }
}

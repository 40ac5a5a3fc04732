//! A closed stdout ends the CLI quietly, as it ends other Unix tools
//! (`valetkey audit | head -1`).
//!
//! Rust starts programs with SIGPIPE ignored, so a write to a pipe nobody
//! reads fails with EPIPE, and `println!` turns that into a panic.
//! Restoring SIGPIPE's default would fix the pipe but also let a daemon
//! that closed its socket kill the CLI without a word (the socket writes
//! are plain `write`s), so the CLI keeps ignoring it, and instead the
//! panic `print!` raises for a broken stdout ends the process with the
//! status a shell shows for SIGPIPE (128 + 13), printing nothing. Every
//! other panic is reported as before.

/// The exit status for a reader that went away: what a shell reports for
/// a process SIGPIPE ended.
pub const BROKEN_PIPE_EXIT: i32 = 128 + 13;

/// Installs the hook. Call once, first thing in `main`.
pub fn quiet_on_broken_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_broken_stdout(info.payload_as_str().unwrap_or("")) {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        report(info);
    }));
}

/// `print!`'s own message for EPIPE on stdout (std's `print_to`).
fn is_broken_stdout(text: &str) -> bool {
    text.starts_with("failed printing to stdout") && text.contains("Broken pipe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broken_stdout_is_quiet() {
        assert!(is_broken_stdout(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_broken_stdout(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!is_broken_stdout("index out of bounds"));
    }
}

//! The README's own examples, as a new user copies them.

use crate::harness::{certs, repo, TestEnv};

/// The `[providers.corp]` block of the README's "Day to day" example, with
/// only what names the user's own IdP changed: its issuer, its client id
/// and resource, and the test CA (the commented `ca_file` line).
fn readme_generic_provider(env: &TestEnv) -> String {
    let readme = std::fs::read_to_string(repo().join("../README.md")).expect("README.md");
    let start = readme
        .find("[providers.corp]")
        .expect("the generic provider example");
    let block = &readme[start..];
    let block = &block[..block.find("```").expect("end of the example")];
    let block = block
        .replace("https://id.example.com", &env.issuer())
        .replace("client_id = \"valetkey\"", "client_id = \"valetkey-cli\"")
        .replace("https://api.example.com", "https://api.valetkey.test")
        .replace(
            "# ca_file = \"/path/extra-ca.pem\"",
            &format!("ca_file = \"{}\"", certs().join("ca.pem").display()),
        );
    assert!(
        block.contains("offline_access") && block.contains("prompt"),
        "{block}"
    );
    block
}

#[test]
fn the_readme_generic_provider_example_logs_in_to_an_ordinary_oidc_provider() {
    let mut env = TestEnv::new().expect("env");
    let corp = readme_generic_provider(&env);
    env.write_config(&corp).expect("config");
    env.start_daemon().expect("daemon");
    let out = env.cli(&["login", "corp", "--login-hint", "alice", "--timeout", "30"]);
    assert!(
        out.status.success(),
        "the README's example does not log in:\n{corp}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let providers = env.cli_ok(&["providers"]);
    let line = providers
        .lines()
        .find(|l| l.starts_with("corp"))
        .unwrap_or_else(|| panic!("{providers}"));
    assert!(line.contains("logged in"), "{providers}");
}

//! End-to-end tests: the real `valetkeyd` and `valetkey` binaries against a
//! real Secret Service (gnome-keyring on a private bus) and a real OIDC
//! provider (`oidc-provider`) over TLS. Set up the machine first with
//! `scripts/setup.sh`; build with `cargo build --workspace --bins`.

mod harness;
mod notifications;
mod raw;
mod readme;

mod audit;
mod bench_smoke;
mod box_escape;
mod boxes;
mod consent;
mod core_flow;
mod crash;
mod device_login;
mod faults;
mod first_hour;
mod governance;
mod hardening;
mod mcp;
mod proxy;
mod sdk;
mod service;
mod session_lock;
mod socket;
mod tray_ui;
mod webdriver;

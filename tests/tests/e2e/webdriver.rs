//! Just enough of the W3C WebDriver protocol to drive the tray app through
//! `tauri-driver` (which hands the session to Debian's WebKitWebDriver):
//! sessions, finding elements, clicks, text, scripts and screenshots.
//!
//! Also starts the pieces: Xvfb (asking it for a free display with
//! `-displayfd`) and tauri-driver on free ports.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::harness::{Proc, TestEnv};

/// How long to wait for the page to show something.
const WAIT: Duration = Duration::from_secs(20);

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An X server of our own.
pub struct Xvfb {
    /// `:N`.
    pub display: String,
    _proc: Proc,
}

impl Xvfb {
    /// Starts Xvfb on the first free display.
    pub fn start(env: &TestEnv) -> Result<Xvfb> {
        let mut child = env
            .command("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x1000x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("Xvfb (apt-get install xvfb; scripts/setup.sh installs it)")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let n: u32 = line.trim().parse().context("Xvfb display number")?;
        Ok(Xvfb {
            display: format!(":{n}"),
            _proc: Proc(child),
        })
    }
}

/// tauri-driver, found on PATH or in cargo's bin dir.
pub fn tauri_driver() -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(Path::new(&home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("tauri-driver"))
        .find(|p| p.is_file())
        .context(
            "tauri-driver not found: run scripts/setup.sh (cargo install tauri-driver --locked)",
        )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A WebDriver session on one app.
pub struct Session {
    http: reqwest::Client,
    base: String,
    id: String,
    _driver: Proc,
}

impl Session {
    /// Starts tauri-driver in `env` on `display` and opens `app` with `args`.
    pub async fn start(env: &TestEnv, display: &str, app: &Path, args: &[&str]) -> Result<Session> {
        let port = free_port();
        let native = free_port();
        let log = std::fs::File::create(env.path("logs/tauri-driver.log"))?;
        let child = env
            .command(tauri_driver()?)
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", display)
            .env("VALETKEY_LOG", "debug")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start tauri-driver")?;
        let driver = Proc(child);
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                break;
            }
            if start.elapsed() > WAIT {
                bail!("tauri-driver did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "tauri:options": {"application": app, "args": args}
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let id = resp["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session: {resp}"))?
            .to_owned();
        Ok(Session {
            http,
            base,
            id,
            _driver: driver,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.id);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await?.json().await?;
        if let Some(err) = v["value"].get("error") {
            bail!("webdriver {path}: {err}: {}", v["value"]["message"]);
        }
        Ok(v["value"].clone())
    }

    /// Runs `script` in the page and returns its value.
    pub async fn js(&self, script: &str) -> Result<Value> {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Result<Option<String>> {
        let r = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(r.as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT].as_str())
            .map(str::to_owned))
    }

    /// Polls `probe` every 50 ms until it yields a value, for up to
    /// [`WAIT`]; on timeout says what was awaited and what the page shows.
    async fn poll<T>(
        &self,
        what: &str,
        mut probe: impl AsyncFnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        loop {
            if let Some(v) = probe().await? {
                return Ok(v);
            }
            if start.elapsed() > WAIT {
                let body = self
                    .js("return document.body.innerText")
                    .await
                    .unwrap_or_default();
                bail!("{what} after {WAIT:?}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> Result<String> {
        self.poll(&format!("no {css}"), async || self.find(css).await)
            .await
    }

    /// The rendered text of the first element matching `css`, read in one
    /// step in the page (a re-render between find and read cannot make it
    /// stale).
    pub async fn text_of(&self, css: &str) -> Result<Option<String>> {
        let css = serde_json::to_string(css)?;
        let v = self
            .js(&format!(
                "const e = document.querySelector({css}); return e ? e.innerText : null;"
            ))
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Waits until the text of `css` contains `text`; returns that text.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> Result<String> {
        self.poll(&format!("{css} never said {text:?}"), async || {
            Ok(self.text_of(css).await?.filter(|t| t.contains(text)))
        })
        .await
    }

    /// Clicks an element as a user would.
    pub async fn click(&self, element: &str) -> Result<()> {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Waits for `css` and clicks it; if the view re-rendered between the
    /// two (a stale element), finds it again.
    pub async fn click_css(&self, css: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            let e = self.wait_for(css).await?;
            match self.click(&e).await {
                Err(err) if err.to_string().contains("stale element") && start.elapsed() < WAIT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        let b64 = v.as_str().context("screenshot is not a string")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
    }

    /// Ends the session (the app is closed).
    pub async fn close(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.id))
            .send()
            .await;
    }
}

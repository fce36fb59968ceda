//! A real headless Chromium driven over WebDriver: chromedriver started on a free port by the
//! test, fantoccini as the client. `CHROMEDRIVER` and `CHROMIUM` override the Debian paths
//! (`/usr/bin/chromedriver`, `/usr/bin/chromium`, installed by `scripts/install-deps.sh`).
//!
//! chromedriver runs in a process group of its own; Chromium is its child, so dropping a
//! [`Browser`] (also when a test panics) kills the group and leaves no browser behind.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::ports::free_port;

/// No single WebDriver command may hang a test: each is bounded by this.
const COMMAND_BOUND: Duration = Duration::from_secs(30);

/// `command`'s result, or a failure naming `what` if it takes longer than [`COMMAND_BOUND`].
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    command: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(COMMAND_BOUND, command).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: no answer within {COMMAND_BOUND:?}")),
    }
}

/// Chromium flags: headless, no sandbox (containers run as root), no GPU, a fixed window.
const CHROMIUM_ARGS: [&str; 7] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    "--lang=en-US",
    "--hide-scrollbars",
];

#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Child,
}

/// The target directory this test binary was built into (`<target>/<profile>/deps/<test>`),
/// where artifacts such as screenshots go.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("test binary in <target>/<profile>/deps")
}

impl Browser {
    /// Starts chromedriver and opens a Chromium session.
    pub async fn start() -> Self {
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let port = free_port();
        let log = target_dir().join("chromedriver.log");
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {driver_bin}: {e} (run scripts/install-deps.sh)"));
        let url = format!("http://127.0.0.1:{port}");
        let mut builder = ClientBuilder::new(HttpConnector::new());
        let capabilities = json!({
            "goog:chromeOptions": { "binary": chromium, "args": CHROMIUM_ARGS },
        });
        if let Value::Object(map) = capabilities {
            builder.capabilities(map);
        }
        // chromedriver takes a moment to listen: retry the session until a bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match builder.connect(&url).await {
                Ok(client) => break client,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("no WebDriver session from {driver_bin} on {url}: {error}"),
            }
        };
        Self { client, driver }
    }

    pub async fn goto(&self, url: &str) {
        bounded(&format!("opening {url}"), self.client.goto(url))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub async fn eval(&self, script: &str) -> Result<Value, String> {
        bounded("running a script", self.client.execute(script, Vec::new())).await
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        bounded(
            &format!("finding {css}"),
            self.client.find(Locator::Css(css)),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        bounded(&format!("clicking {css}"), element.click())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Focuses `css` and presses Enter: what a keyboard user does.
    pub async fn press_enter_on(&self, css: &str) {
        let element = self.find(css).await;
        let enter = fantoccini::key::Key::Enter;
        bounded(
            &format!("pressing Enter on {css}"),
            element.send_keys(&enter),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    pub async fn set_window_size(&self, width: u32, height: u32) {
        let what = format!("resizing the window to {width}x{height}");
        bounded(&what, self.client.set_window_size(width, height))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Saves a PNG of the viewport to `path` and prints where it is.
    pub async fn screenshot(&self, path: &Path) {
        self.try_screenshot(path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn try_screenshot(&self, path: &Path) -> Result<(), String> {
        let png = bounded("taking a screenshot", self.client.screenshot()).await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("[browser] screenshot: {}", path.display());
        Ok(())
    }

    /// Polls `check` until it answers `Ok`, for at most `bound`; on timeout saves a screenshot
    /// (`dashboard-failure.png` in the target directory) and fails with the last reason.
    pub async fn within<T, F, Fut>(&self, what: &str, bound: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let started = Instant::now();
        loop {
            match check().await {
                Ok(value) => {
                    eprintln!("[browser] {what}: after {:.1?}", started.elapsed());
                    return value;
                }
                Err(reason) if started.elapsed() >= bound => {
                    let shot = target_dir().join("dashboard-failure.png");
                    if let Err(error) = self.try_screenshot(&shot).await {
                        eprintln!("[browser] no failure screenshot: {error}");
                    }
                    panic!("not within {bound:?}: {what}\nlast answer: {reason}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(self) {
        let _ = bounded("closing the session", self.client.clone().close()).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started. `--` matters:
        // procps-ng 4.0's kill reads `-KILL -12345` as kill(-1, ..), every process there is.
        let group = self.driver.id();
        if group > 1 {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{group}")])
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

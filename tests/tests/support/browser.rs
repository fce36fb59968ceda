//! A real headless Chromium driven over WebDriver: chromedriver started on a free port by the
//! test, fantoccini as the client. `CHROMEDRIVER` and `CHROMIUM` override the Debian paths
//! (`/usr/bin/chromedriver`, `/usr/bin/chromium`, installed by `scripts/install-deps.sh`).
//!
//! chromedriver runs in a process group of its own; Chromium is its child, so dropping a
//! [`Browser`] (also when a test panics) kills the group and leaves no browser behind.

use std::future::Future;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::time::Instant;

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
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
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
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
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub async fn eval(&self, script: &str) -> Result<Value, String> {
        self.client
            .execute(script, Vec::new())
            .await
            .map_err(|e| format!("script failed: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Focuses `css` and presses Enter: what a keyboard user does.
    pub async fn press_enter_on(&self, css: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"));
        element
            .send_keys(&fantoccini::key::Key::Enter)
            .await
            .unwrap_or_else(|e| panic!("pressing Enter on {css}: {e}"));
    }

    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resizing the window to {width}x{height}: {e}"));
    }

    /// Saves a PNG of the viewport to `path` and prints where it is.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("taking a screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("writing the screenshot");
        eprintln!("[browser] screenshot: {}", path.display());
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
                    self.screenshot(&target_dir().join("dashboard-failure.png"))
                        .await;
                    panic!("not within {bound:?}: {what}\nlast answer: {reason}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let _ = Command::new("kill")
            .args(["-KILL", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

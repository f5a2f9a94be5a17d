//! A real browser for the admin page: Debian's headless Chromium driven over the W3C
//! WebDriver protocol (chromedriver), with plain HTTP calls so no client crate is needed.
//! <https://www.w3.org/TR/webdriver2/>

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::in_ci;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session; the driver process is killed when it is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

/// The W3C element id key (WebDriver §12.1 "web element identifier").
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (skipped) when they are not
    /// installed, except under CI, where that fails the test.
    pub async fn start() -> Option<Browser> {
        if !Path::new(CHROMEDRIVER).exists() {
            assert!(!in_ci(), "chromedriver missing and CI=true: apt-get install chromium-driver");
            eprintln!("SKIPPED: {CHROMEDRIVER} is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..100 {
            if browser.http.get(format!("{}/status", browser.base)).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"]
            }
        }}});
        let session = browser.call("POST", "/session", caps).await;
        let id = session["sessionId"].as_str().expect("a session id").to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        // A click that submits a form returns before the next page is there; finding an
        // element waits up to this long for it to appear (WebDriver §9 "implicit wait").
        browser.call("POST", "/timeouts", json!({ "implicit": 10_000 })).await;
        Some(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let response: Value =
            request.send().await.expect("webdriver answers").json().await.unwrap();
        let value = response["value"].clone();
        assert!(value.get("error").is_none(), "webdriver {method} {path}: {value}");
        value
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let el =
            self.call("POST", "/element", json!({"using": "css selector", "value": css})).await;
        el[ELEMENT].as_str().unwrap_or_else(|| panic!("no element id in {el}")).to_owned()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/value"), json!({ "text": text })).await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({})).await;
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Saves a PNG screenshot under `target/screenshots/` and prints its path, so a
    /// reviewer can look at the page the test saw.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let png = self.call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }
}

impl Browser {
    /// Ends the session, which closes Chromium.
    pub async fn quit(self) {
        self.call("DELETE", "", Value::Null).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

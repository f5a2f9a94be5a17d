//! `kitefix serve` as a child process, the way an operator runs it: its stderr (JSON log
//! lines) read on a thread, its port taken from the "kitefix listening" line, and a stop
//! by SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct ServeProcess {
    child: Child,
    lines: Receiver<String>,
    /// Every line logged so far (`Null` for a line that is not JSON).
    pub seen: Vec<Value>,
    pub port: u64,
}

impl ServeProcess {
    /// Starts `kitefix serve` in `dir` on a free port with `env` set (and `RUST_LOG`
    /// removed), and waits for it to listen.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> ServeProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kitefix"));
        command
            .arg("serve")
            .current_dir(dir)
            .env("KITEFIX_SERVER__BIND", "127.0.0.1:0")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("kitefix serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut process = ServeProcess { child, lines, seen: Vec::new(), port: 0 };
        process.port = loop {
            let line = process.next_line(Duration::from_secs(30)).expect("kitefix listens");
            if line["message"] == "kitefix listening" {
                break line["port"].as_u64().unwrap();
            }
        };
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn next_line(&mut self, within: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(within).ok()?;
        let json = serde_json::from_str(&line).unwrap_or(Value::Null);
        self.seen.push(json.clone());
        Some(json)
    }

    /// Reads log lines until one has `message`, for at most `within`.
    pub fn wait_for_message(&mut self, message: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.seen.iter().any(|l| l["message"] == message) {
            if Instant::now() >= deadline {
                return false;
            }
            self.next_line(Duration::from_millis(200));
        }
        true
    }

    /// SIGTERM, then waits for the exit and collects the last log lines.
    pub async fn stop(mut self) -> (ExitStatus, Vec<Value>) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let mut child = self.child;
        let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(serde_json::from_str(&line).unwrap_or(Value::Null));
        }
        (exit, self.seen)
    }
}

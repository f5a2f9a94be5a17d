//! The `kitefix serve` binary as an operator runs it: JSON logs carrying the build id,
//! and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{WEBHOOK_TOKEN, failed_build};
use crate::serve_process::ServeProcess;

#[tokio::test]
async fn serve_logs_json_with_the_build_id_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = ServeProcess::start(dir.path(), &[("KITEFIX_WEBHOOK__TOKEN", WEBHOOK_TOKEN)]);
    assert!(serve.seen.iter().all(|l| !l.is_null()), "every log line is JSON: {:?}", serve.seen);

    let payload = failed_build(77);
    let build_id = payload["build"]["id"].as_str().unwrap().to_owned();
    let body = payload.to_string();
    let header = kitefix::webhook::signature::sign(
        WEBHOOK_TOKEN,
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    );
    let response = reqwest::Client::new()
        .post(serve.url("/webhooks/buildkite"))
        .header("X-Buildkite-Event", "build.finished")
        .header("X-Buildkite-Signature", header)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // Wait for the worker's "build done" line, then stop the process.
    assert!(
        serve.wait_for_message("build done", Duration::from_secs(20)),
        "the worker never finished the build"
    );
    let (exit, seen) = serve.stop().await;
    assert!(seen.iter().all(|l| !l.is_null()), "every log line is JSON");

    assert!(exit.success(), "SIGTERM should stop kitefix cleanly: {exit:?}");
    // Every line logged inside the worker's `build` span carries the build id.
    let build_spans: Vec<_> = seen
        .iter()
        .filter_map(|l| l["spans"].as_array())
        .flatten()
        .filter(|span| span["name"] == "build")
        .collect();
    assert!(!build_spans.is_empty(), "no log line from inside a build");
    for span in build_spans {
        assert_eq!(span["build_id"].as_str(), Some(build_id.as_str()), "{span}");
    }
    assert!(seen.iter().any(|l| l["message"] == "stopped"), "no clean-stop log line");
    assert!(
        dir.path().join("kitefix.db").exists(),
        "the embedded default keeps its state in ./kitefix.db"
    );
}

/// `kitefix analyze` reads a log, prints the contract JSON, and never prints a secret
/// that was in the log.
#[test]
fn analyze_prints_the_contract_json_redacted() {
    use std::io::Write;
    let log = "\u{1b}_bk;t=1700000000000\u{7}--- :rust: cargo test\r\n\
               export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789\r\n\
               \u{1b}[31merror[E0425]\u{1b}[0m: cannot find value `x` in this scope\r\n\
               \x20 --> src/lib.rs:10:5\r\n\
               error: could not compile `demo` (lib) due to 1 previous error\r\n\
               \u{1b}[31m🚨 Error: The command exited with status 101\u{1b}[0m\r\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_kitefix"))
        .args(["analyze", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(log.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();

    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), "{text}");
    let analysis: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(analysis["category"], "compile");
    assert_eq!(analysis["key_line"], 3, "the compiler error, not the wrapper line");
    assert_eq!(analysis["locations"][0]["path"], "src/lib.rs");
    assert_eq!(analysis["locations"][0]["line"], 10);
    let excerpt = analysis["excerpt"]["text"].as_str().unwrap();
    assert!(!excerpt.contains('\u{1b}'), "excerpts are ANSI-free");
}

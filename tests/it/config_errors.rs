//! A configuration mistake stops start-up with a message naming the key and the fix.

use std::process::Command;

fn kitefix() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kitefix"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

#[test]
fn a_bad_value_names_the_key_and_how_to_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = kitefix()
        .current_dir(dir.path())
        .args(["serve"])
        .env("KITEFIX_SERVER__BIND", "not-an-address")
        .env("KITEFIX_QUEUE__KIND", "kafka")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(78), "EX_CONFIG");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("queue.kind") && stderr.contains("KITEFIX_QUEUE__KIND"), "{stderr}");
    assert!(
        stderr.contains("embedded") && stderr.contains("rabbitmq"),
        "lists the accepted values: {stderr}"
    );
    assert!(
        !dir.path().join("kitefix.db").exists(),
        "nothing may be created before the config is valid"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kitefix.toml");
    std::fs::write(&config, "[server]\nbind = \"0.0.0.0\"\n[github]\napp_id = 7\n").unwrap();

    let output = kitefix()
        .current_dir(dir.path())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.bind") && stderr.contains("github.private_key_path"),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let output =
        kitefix().args(["serve", "--config", "/nonexistent/kitefix.toml"]).output().unwrap();

    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/kitefix.toml"));
}

//! A stand-in for Buildkite's REST API (docs/buildkite.md#rest-api): a build with its jobs,
//! raw job logs and job env, in the documented shapes, on wiremock; and, for logs too big
//! for wiremock (which builds whole bodies in memory), a small server that generates the
//! log while streaming it.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const API_TOKEN: &str = "bkua_it0123456789abcdef0123456789abcdef0123";
pub const ORG: &str = "acme";
pub const PIPELINE: &str = "web-app";

/// One job of the stub build.
#[derive(Clone)]
pub struct JobSpec {
    pub id: String,
    pub name: &'static str,
    pub state: &'static str,
    pub exit_status: Option<i64>,
    pub soft_failed: bool,
    pub retried_in_job_id: Option<String>,
}

impl JobSpec {
    pub fn failed(name: &'static str, exit_status: i64) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            state: "failed",
            exit_status: Some(exit_status),
            soft_failed: false,
            retried_in_job_id: None,
        }
    }

    pub fn passed(name: &'static str) -> Self {
        Self { state: "passed", exit_status: Some(0), ..Self::failed(name, 0) }
    }
}

fn build_path(number: u64) -> String {
    format!("/v2/organizations/{ORG}/pipelines/{PIPELINE}/builds/{number}")
}

/// `GET …/builds/{n}` as the REST API answers it (build with embedded jobs).
pub fn build_json(payload: &Value, jobs: &[JobSpec]) -> Value {
    let build = &payload["build"];
    let number = build["number"].as_u64().unwrap();
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "graphql_id": "Sm9iLS0t",
                "type": "script",
                "name": j.name,
                "step_key": null,
                "state": j.state,
                "web_url": format!("https://buildkite.com/{ORG}/{PIPELINE}/builds/{number}#{}", j.id),
                "log_url": format!("https://api.buildkite.com/v2/organizations/{ORG}/pipelines/{PIPELINE}/builds/{number}/jobs/{}/log", j.id),
                "raw_log_url": format!("https://api.buildkite.com/v2/organizations/{ORG}/pipelines/{PIPELINE}/builds/{number}/jobs/{}/log.txt", j.id),
                "command": "make test",
                "soft_failed": j.soft_failed,
                "exit_status": j.exit_status,
                "signal": null,
                "signal_reason": null,
                "retried": j.retried_in_job_id.is_some(),
                "retried_in_job_id": j.retried_in_job_id,
                "retries_count": null,
                "agent": {"id": "agent-1", "name": "ci-agent-1", "hostname": "ci-agent-1"},
                "created_at": "2026-11-25T09:55:01.000Z",
                "started_at": "2026-11-25T09:55:10.000Z",
                "finished_at": "2026-11-25T09:59:50.000Z"
            })
        })
        .collect();
    json!({
        "id": build["id"],
        "graphql_id": "QnVpbGQtLS0",
        "url": build["url"],
        "web_url": build["web_url"],
        "number": number,
        "state": "failed",
        "blocked": false,
        "message": "Fix the login form",
        "commit": build["commit"],
        "branch": build["branch"],
        "source": "webhook",
        "pull_request": build["pull_request"],
        "created_at": "2026-11-25T09:55:00.000Z",
        "started_at": "2026-11-25T09:55:10.000Z",
        "finished_at": build["finished_at"],
        "jobs": jobs,
        "pipeline": payload["pipeline"],
    })
}

/// Mounts the build (and its jobs) that `payload` announces.
pub async fn mount_build(server: &MockServer, payload: &Value, jobs: &[JobSpec]) {
    let number = payload["build"]["number"].as_u64().unwrap();
    Mock::given(method("GET"))
        .and(path(build_path(number)))
        .and(header("authorization", format!("Bearer {API_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(build_json(payload, jobs)))
        .mount(server)
        .await;
}

/// Mounts a job's raw log (`Accept: text/plain`).
pub async fn mount_log(server: &MockServer, number: u64, job: &JobSpec, log: &str) {
    Mock::given(method("GET"))
        .and(path(format!("{}/jobs/{}/log", build_path(number), job.id)))
        .and(header("accept", "text/plain"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(log.as_bytes().to_vec(), "text/plain"),
        )
        .mount(server)
        .await;
}

/// Mounts a job's env: `{"env": {...}}`.
pub async fn mount_env(server: &MockServer, number: u64, job: &JobSpec, env: &[(&str, &str)]) {
    let env: serde_json::Map<String, Value> =
        env.iter().map(|(k, v)| ((*k).into(), json!(v))).collect();
    Mock::given(method("GET"))
        .and(path(format!("{}/jobs/{}/env", build_path(number), job.id)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "env": env })))
        .mount(server)
        .await;
}

/// The path of a job's log, for mounting faults.
pub fn log_path(number: u64, job: &JobSpec) -> String {
    format!("{}/jobs/{}/log", build_path(number), job.id)
}

/// A tiny Buildkite that serves one build and a job log of `log_len` generated bytes
/// (numbered filler lines, then `tail`), streamed as it is generated.
pub struct StreamingBuildkite {
    pub uri: String,
}

impl StreamingBuildkite {
    pub async fn start(build: Value, env: Value, log_len: u64, tail: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let build = Arc::new(build.to_string());
        let env = Arc::new(env.to_string());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, build.clone(), env.clone(), log_len, tail));
            }
        });
        Self { uri }
    }
}

async fn serve(
    mut socket: TcpStream,
    build: Arc<String>,
    env: Arc<String>,
    log_len: u64,
    tail: &'static str,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let json = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if target.ends_with("/env") {
        let _ = socket.write_all(json(&env).as_bytes()).await;
    } else if target.ends_with("/log") {
        let total = log_len + tail.len() as u64;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
        );
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // Filler: numbered lines of ordinary build output, 256 KiB per write.
        let line = b"    Compiling some-crate v1.0.0 (/var/lib/buildkite-agent/builds/src)\r\n";
        let mut chunk = Vec::with_capacity(256 << 10);
        while chunk.len() + line.len() <= 256 << 10 {
            chunk.extend_from_slice(line);
        }
        let mut sent = 0u64;
        while sent < log_len {
            let n = chunk.len().min((log_len - sent) as usize);
            // The last, cut chunk still ends its line, so the tail starts a line of its own.
            let written = if n < chunk.len() && n >= 2 {
                socket.write_all(&chunk[..n - 2]).await.and(socket.write_all(b"\r\n").await)
            } else {
                socket.write_all(&chunk[..n]).await
            };
            if written.is_err() {
                return;
            }
            sent += n as u64;
        }
        let _ = socket.write_all(tail.as_bytes()).await;
    } else if target.contains("/builds/") {
        let _ = socket.write_all(json(&build).as_bytes()).await;
    } else {
        let _ = socket
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
    }
}

//! Streaming job logs: a multi-hundred-MiB log generated on the fly by a tiny HTTP server
//! arrives completely, chunk by chunk, without the client ever holding much of it; and a
//! stalled or endless stream ends with a timeout instead of hanging a worker.
//!
//! wiremock builds whole bodies in memory, so these tests use a raw TCP server.

use std::time::Duration;

use futures::StreamExt;
use kitefix::buildkite::{BuildkiteClient, BuildkiteError, ClientOptions, JobLog, TimeoutKind};
use kitefix::domain::{BuildNumber, BuildPath, JobId, OrgSlug, PipelineSlug};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

const TOKEN: &str = "bkua_0123456789abcdef0123456789abcdef01234567";
const JOB: &str = "0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a01";

/// How the fake server sends the body.
#[derive(Clone, Copy)]
enum Body {
    /// `len` bytes of generated log lines, as fast as the client reads.
    Generated { len: u64 },
    /// A few bytes, then silence with the connection open.
    Stall,
    /// One byte every 50 ms, forever.
    Trickle,
}

/// One 64-byte line of the generated log, numbered so a lost or repeated chunk shows.
fn line_bytes(line: u64) -> [u8; 64] {
    let mut bytes = *b"00000000 kitefix fake log line streamed in chunks by the server\n";
    let mut n = line;
    for digit in bytes[..8].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    bytes
}

/// Fills `buf` with the generated log's bytes starting at `offset`.
fn generated_chunk(offset: u64, buf: &mut [u8]) {
    let mut written = 0;
    while written < buf.len() {
        let at = offset + written as u64;
        let col = (at % 64) as usize;
        let n = (64 - col).min(buf.len() - written);
        buf[written..written + n].copy_from_slice(&line_bytes(at / 64)[col..col + n]);
        written += n;
    }
}

/// Reads one request head and answers it according to `body`; returns the request head.
async fn serve_one(mut socket: TcpStream, body: Body) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let length = match body {
        Body::Generated { len } => len,
        Body::Stall | Body::Trickle => 1 << 30,
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {length}\r\n\r\n"
    );
    if socket.write_all(response.as_bytes()).await.is_err() {
        return String::from_utf8_lossy(&head).into_owned();
    }
    match body {
        Body::Generated { len } => {
            let mut buf = vec![0u8; 256 << 10];
            let mut sent = 0u64;
            while sent < len {
                let n = buf.len().min((len - sent) as usize);
                generated_chunk(sent, &mut buf[..n]);
                if socket.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                sent += n as u64;
            }
        }
        Body::Stall => {
            let _ = socket.write_all(b"~~~ Running commands\n").await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Body::Trickle => loop {
            if socket.write_all(b".").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        },
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Starts the server; the handle yields the request head it saw.
async fn server(body: Body) -> (Url, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = Url::parse(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
    let handle = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        serve_one(socket, body).await
    });
    (url, handle)
}

async fn open_log(url: Url, options: ClientOptions) -> Result<JobLog, BuildkiteError> {
    let client = BuildkiteClient::new(url, options).expect("client");
    client
        .job_log(
            &SecretString::from(TOKEN),
            &BuildPath {
                org: OrgSlug::parse("acme").expect("org"),
                pipeline: PipelineSlug::parse("web").expect("pipeline"),
                number: BuildNumber::new(42),
            },
            &JobId::parse(JOB).expect("job"),
        )
        .await
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test]
async fn a_256_mib_log_arrives_whole_in_bounded_chunks() {
    const LEN: u64 = 256 << 20;
    let (url, server) = server(Body::Generated { len: LEN }).await;
    let rss_before = peak_rss();
    let log = open_log(url, ClientOptions::default()).await.expect("log");
    let JobLog::Available(mut stream) = log else { panic!("{log:?}") };
    assert_eq!(stream.content_length(), Some(LEN));

    let mut offset = 0u64;
    let mut largest_chunk = 0usize;
    let mut expected = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        expected.resize(chunk.len(), 0);
        generated_chunk(offset, &mut expected);
        assert!(chunk[..] == expected[..], "chunk at offset {offset} differs");
        largest_chunk = largest_chunk.max(chunk.len());
        offset += chunk.len() as u64;
    }
    assert_eq!(offset, LEN, "all bytes arrive");
    assert_eq!(stream.bytes_received(), LEN);
    assert!(largest_chunk <= 1 << 20, "chunks stay small: largest was {largest_chunk} bytes");

    let head = server.await.expect("server");
    let head = head.to_ascii_lowercase();
    assert!(
        head.starts_with(&format!(
            "get /v2/organizations/acme/pipelines/web/builds/42/jobs/{JOB}/log "
        )),
        "{head}"
    );
    assert!(head.contains("accept: text/plain"), "{head}");
    assert!(head.contains(&format!("authorization: bearer {TOKEN}")), "{head}");

    if let (Some(before), Some(after)) = (rss_before, peak_rss()) {
        let grown = after.saturating_sub(before);
        eprintln!("peak RSS grew by {} MiB while streaming {} MiB", grown >> 20, LEN >> 20);
        assert!(grown < 64 << 20, "the log was buffered: peak RSS grew by {} MiB", grown >> 20);
    }
}

#[tokio::test]
async fn a_stalled_log_fails_with_an_idle_timeout() {
    let (url, _server) = server(Body::Stall).await;
    let options =
        ClientOptions { log_idle_timeout: Duration::from_millis(300), ..ClientOptions::default() };
    let JobLog::Available(mut stream) = open_log(url, options).await.expect("log") else {
        panic!("unavailable")
    };
    let first = stream.next().await.expect("first chunk").expect("data");
    assert_eq!(&first[..], b"~~~ Running commands\n");
    let err = stream.next().await.expect("an error, not the end").expect_err("stalled");
    assert!(matches!(err, BuildkiteError::Timeout { kind: TimeoutKind::LogIdle, .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(stream.next().await.is_none(), "the stream ends after its error");
}

#[tokio::test]
async fn an_endless_log_stops_at_the_deadline() {
    let (url, _server) = server(Body::Trickle).await;
    let options = ClientOptions {
        log_idle_timeout: Duration::from_secs(5),
        log_deadline: Duration::from_millis(600),
        ..ClientOptions::default()
    };
    let started = std::time::Instant::now();
    let JobLog::Available(mut stream) = open_log(url, options).await.expect("log") else {
        panic!("unavailable")
    };
    let mut result = Ok(());
    while let Some(chunk) = stream.next().await {
        if let Err(err) = chunk {
            result = Err(err);
            break;
        }
    }
    let err = result.expect_err("deadline");
    assert!(
        matches!(err, BuildkiteError::Timeout { kind: TimeoutKind::LogDeadline, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

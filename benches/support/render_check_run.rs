//! Prints the check run kitefix would post for a realistic failed build, to look at the
//! Markdown as GitHub renders it:
//!
//! ```sh
//! cargo run --example render_check_run > /tmp/check-run.md
//! npx marked --gfm -i /tmp/check-run.md -o /tmp/check-run.html
//! ```

use kitefix::classify::{Analysis, Category, Excerpt, Location, Secondary};
use kitefix::domain::{
    BuildId, BuildNumber, BuildRef, BuildReport, CommitSha, JobId, JobRef, JobReport, OrgSlug,
    PipelineSlug, RepoFullName,
};
use kitefix::render::CheckRunContent;

fn job_ref(name: &str, anchor: &str) -> JobRef {
    JobRef {
        id: JobId::parse(&format!("0190c0de-2222-7000-8000-{anchor:0>12}")).expect("a UUID"),
        name: name.to_owned(),
        web_url: Some(format!("https://buildkite.com/acme/web/builds/1234#{anchor:0>12}")),
    }
}

fn report() -> BuildReport {
    let unit = JobReport {
        job: job_ref(":rust: Unit tests (1/3)", "a1"),
        state: "failed".into(),
        exit_status: Some(101),
        signal_reason: None,
        failing_step: Some(":rust: cargo test --workspace".into()),
        checkout_path: Some("/var/lib/buildkite-agent/builds/ci-agent-3/acme/web".into()),
        log_bytes: 1_482_113,
        log_unavailable: None,
        analysis: Analysis {
            category: Category::Test,
            confidence: 0.94,
            rule: "rust.test.failed".into(),
            title: "3 tests failed in `web::session`".into(),
            key_line: Some(1841),
            excerpt: Some(Excerpt {
                start: 1829,
                end: 1846,
                text: [
                    "running 57 tests",
                    "test session::tests::expiry_is_honoured ... ok",
                    "test session::tests::refresh_rotates_token ... FAILED",
                    "test session::tests::cookie_is_http_only ... FAILED",
                    "test session::tests::logout_clears_store ... FAILED",
                    "",
                    "failures:",
                    "",
                    "---- session::tests::refresh_rotates_token stdout ----",
                    "using SESSION_SECRET=[REDACTED]",
                    "thread 'session::tests::refresh_rotates_token' panicked at src/session.rs:212:9:",
                    "assertion `left != right` failed: token was not rotated",
                    "  left: \"tok_`abc`\"",
                    " right: \"tok_`abc`\"",
                    "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
                    "",
                    "test result: FAILED. 54 passed; 3 failed; 0 ignored; 0 measured",
                    "error: test failed, to rerun pass `-p web --lib`",
                ]
                .join("\n"),
            }),
            failing_tests: vec![
                "session::tests::refresh_rotates_token".into(),
                "session::tests::cookie_is_http_only".into(),
                "session::tests::logout_clears_store".into(),
            ],
            locations: vec![Location {
                path: "/var/lib/buildkite-agent/builds/ci-agent-3/acme/web/src/session.rs".into(),
                line: 212,
                column: Some(9),
                message: "assertion `left != right` failed: token was not rotated".into(),
            }],
            secondary: vec![Secondary {
                category: Category::Lint,
                rule: "rust.clippy.warning".into(),
                key_line: Some(402),
            }],
        },
        also_failed: vec![job_ref(":rust: Unit tests (2/3)", "a2")],
    };
    let npm = JobReport {
        job: job_ref(":npm: Frontend build", "b1"),
        state: "failed".into(),
        exit_status: Some(1),
        signal_reason: None,
        failing_step: Some("npm ci".into()),
        checkout_path: None,
        log_bytes: 20_480,
        log_unavailable: None,
        analysis: Analysis {
            category: Category::Network,
            confidence: 0.88,
            rule: "npm.network.etimedout".into(),
            title: "npm could not reach registry.npmjs.org (ETIMEDOUT)".into(),
            key_line: Some(77),
            excerpt: Some(Excerpt {
                start: 74,
                end: 79,
                text: [
                    "npm http fetch GET https://registry.npmjs.org/react attempt 3 failed with ETIMEDOUT",
                    "npm ERR! code ETIMEDOUT",
                    "npm ERR! errno ETIMEDOUT",
                    "npm ERR! network request to https://registry.npmjs.org/react failed, reason: connect ETIMEDOUT 104.16.0.35:443",
                    "npm ERR! network This is a problem related to network connectivity.",
                    "npm ERR! A complete log of this run can be found in: /root/.npm/_logs/debug-0.log",
                ]
                .join("\n"),
            }),
            failing_tests: vec![],
            locations: vec![],
            secondary: vec![],
        },
        also_failed: vec![],
    };
    let gone = JobReport {
        job: job_ref(":docker: Integration <postgres>", "c1"),
        state: "timed_out".into(),
        exit_status: None,
        signal_reason: Some("agent_stop".into()),
        failing_step: None,
        checkout_path: None,
        log_bytes: 0,
        log_unavailable: Some("Buildkite answered 404: the job log was deleted".into()),
        analysis: Analysis {
            category: Category::Timeout,
            confidence: 0.6,
            rule: "buildkite.job.timed_out".into(),
            title: "The job hit its 30 minute timeout".into(),
            key_line: None,
            excerpt: None,
            failing_tests: vec![],
            locations: vec![],
            secondary: vec![],
        },
        also_failed: vec![],
    };
    BuildReport {
        build: BuildRef {
            org: OrgSlug::parse("acme").expect("a slug"),
            pipeline: PipelineSlug::parse("web").expect("a slug"),
            number: BuildNumber::new(1234),
            id: BuildId::parse("0190c0de-1111-7000-8000-000000001234").expect("a UUID"),
            web_url: "https://buildkite.com/acme/web/builds/1234".into(),
            commit: CommitSha::parse("3dca65fa3e8d4b3da3f3d056c59aee1c50f41390").expect("a SHA"),
            branch: "feature/session-rotation".into(),
            pull_request: Some(981),
            repository: Some(RepoFullName::parse("acme/web").expect("a name")),
        },
        jobs: vec![unit, npm, gone],
        flaky: vec![job_ref(":rust: Unit tests (3/3)", "a3")],
    }
}

fn main() {
    let content = CheckRunContent::render(&report());
    println!("<!-- conclusion: {} -->", content.conclusion);
    println!("# {}\n", content.title);
    println!("{}", content.summary);
    println!("\n<!-- ===== text (details) ===== -->\n");
    println!("{}", content.text);
    eprintln!(
        "title {} chars, summary {} bytes, text {} bytes, {} annotations",
        content.title.chars().count(),
        content.summary.len(),
        content.text.len(),
        content.annotations.len()
    );
}

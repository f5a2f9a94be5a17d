//! The classifier against the project's own fixture logs, `tests/fixtures/logs/<family>/`.
//!
//! Each fixture is a log modelled on a tool's real output (captured from rustc, cargo,
//! python3, node, npm, javac, gcc, g++, make and the shells where this machine has them),
//! wrapped in a CI system's framing (Buildkite timestamps, GitHub Actions prefixes, Travis
//! markers). The expectation is in-band, PyTorch style (docs/classification.md#in-band-fixtures):
//! a first line `#=EXPECT=# {"category", "rule", "failing_tests"}` and the key line
//! prefixed with `#=KEY=#`; both markers are removed before classification. The whole
//! analysis is also snapshot-tested against `<name>.snap.json`; after a deliberate change,
//! re-bless with `UPDATE_SNAPSHOTS=1 cargo test --test classify_fixtures` and review the diff.

use std::path::{Path, PathBuf};

use kitefix::classify::rules::EMBEDDED_RULES;
use kitefix::classify::{Analysis, Category, Classifier, JobMeta, LogClassifier, classify_bytes};
use serde::Deserialize;

const EXPECT: &str = "#=EXPECT=# ";
const KEY: &[u8] = b"#=KEY=#";

#[derive(Debug, Deserialize)]
struct Expect {
    category: Category,
    rule: String,
    failing_tests: Vec<String>,
}

struct Fixture {
    path: PathBuf,
    expect: Expect,
    log: Vec<u8>,
    key_line: Option<u64>,
}

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs")
}

fn fixtures() -> Vec<Fixture> {
    let mut paths = Vec::new();
    let mut dirs = vec![fixture_root()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixture dir readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "log") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths.into_iter().map(load).collect()
}

fn load(path: PathBuf) -> Fixture {
    let bytes = std::fs::read(&path).expect("fixture readable");
    let newline = bytes.iter().position(|&b| b == b'\n').expect("fixture has an expectation line");
    let header = std::str::from_utf8(&bytes[..newline]).expect("expectation is UTF-8");
    let json =
        header.strip_prefix(EXPECT).unwrap_or_else(|| panic!("{}: no {EXPECT}", path.display()));
    let expect: Expect = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("{}: bad expectation: {e}", path.display()));
    let mut log = bytes[newline + 1..].to_vec();
    let key_line = log.windows(KEY.len()).position(|w| w == KEY).map(|at| {
        let line = log[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        log.drain(at..at + KEY.len());
        line
    });
    Fixture { path, expect, log, key_line }
}

fn classifier() -> Classifier {
    Classifier::embedded().expect("embedded rules are valid")
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[test]
fn every_fixture_is_classified_as_expected() {
    let classifier = classifier();
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut problems = Vec::new();
    let all = fixtures();
    assert!(all.len() >= 30, "only {} fixtures found", all.len());
    for f in &all {
        let name = f.path.strip_prefix(fixture_root()).unwrap_or(&f.path).display().to_string();
        let a = classify_bytes(&classifier, &f.log, JobMeta::default());
        if a.category != f.expect.category || a.rule != f.expect.rule {
            problems.push(format!(
                "{name}: got {} by {}, expected {} by {} (title: {})",
                a.category, a.rule, f.expect.category, f.expect.rule, a.title
            ));
        }
        if f.key_line.is_some() && a.key_line != f.key_line {
            problems.push(format!("{name}: key line {:?}, expected {:?}", a.key_line, f.key_line));
        }
        if sorted(&a.failing_tests) != sorted(&f.expect.failing_tests) {
            problems.push(format!(
                "{name}: failing tests {:?}, expected {:?}",
                a.failing_tests, f.expect.failing_tests
            ));
        }
        if let Some(ex) = &a.excerpt {
            let lines = ex.text.split('\n').count() as u64;
            if lines > 40 || ex.end + 1 - ex.start != lines {
                problems
                    .push(format!("{name}: excerpt {}..={} has {lines} lines", ex.start, ex.end));
            }
            if ex.text.contains('\x1b') {
                problems.push(format!("{name}: excerpt holds an escape sequence"));
            }
        }
        let snap_path = f.path.with_extension("snap.json");
        let json = serde_json::to_string_pretty(&a).expect("analysis serialises") + "\n";
        if update {
            std::fs::write(&snap_path, &json).expect("snapshot writable");
        } else {
            match std::fs::read_to_string(&snap_path) {
                Ok(want) if want == json => {}
                Ok(_) => problems.push(format!(
                    "{name}: analysis differs from {} (re-bless with UPDATE_SNAPSHOTS=1 if intended)",
                    snap_path.display()
                )),
                Err(_) => problems.push(format!("{name}: no snapshot; run with UPDATE_SNAPSHOTS=1")),
            }
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn passing_logs_trigger_no_failure_rule() {
    let classifier = classifier();
    let passing: Vec<Fixture> = fixtures()
        .into_iter()
        .filter(|f| f.path.parent().is_some_and(|p| p.ends_with("passing")))
        .collect();
    assert!(passing.len() >= 3);
    for f in passing {
        let a = classify_bytes(&classifier, &f.log, JobMeta::default());
        assert_eq!(
            (a.category, a.rule.as_str()),
            (Category::Unknown, "none"),
            "{}: {}",
            f.path.display(),
            a.title
        );
        assert!(a.failing_tests.is_empty() && a.secondary.is_empty(), "{}", f.path.display());
    }
}

#[test]
fn every_rule_family_has_a_fixture() {
    for (file, _) in EMBEDDED_RULES {
        let family = file.trim_end_matches(".toml");
        let dir = fixture_root().join(family);
        let count = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(count > 0, "no fixture for rule family {family} in {}", dir.display());
    }
}

#[test]
fn chunked_input_gives_the_same_analysis() {
    let classifier = classifier();
    for f in fixtures() {
        let whole: Analysis = classify_bytes(&classifier, &f.log, JobMeta::default());
        for size in [1, 7, 4096] {
            let mut c = LogClassifier::new(&classifier, JobMeta::default());
            for chunk in f.log.chunks(size) {
                c.push(chunk);
            }
            assert_eq!(c.finish(), whole, "{} fed in {size}-byte chunks", f.path.display());
        }
    }
}

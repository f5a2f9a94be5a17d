//! Failure classification: a rule engine over normalised log lines.
//!
//! Rules are data (`config/rules/*.toml`, embedded; a user's folder can replace and add
//! rules, see [`rules`]). A [`Classifier`] compiles them once; a [`Session`] takes one
//! job's lines in order and returns the [`Analysis`] (contract in
//! docs/design.md#analysis). [`LogClassifier`] puts the byte-level [`LineNormaliser`] in front of a
//! session, for callers that hold raw log bytes (the worker's HTTP stream, a file, stdin),
//! with an optional per-line transform where the service plugs its redactor in.

mod analysis;
mod engine;
mod literals;
pub mod rules;

use std::io::Read;

pub use analysis::{Analysis, Category, Excerpt, JobMeta, Location, Secondary};
pub use engine::{Classifier, NO_RULE, Session};
pub use rules::{Rule, RuleError, RuleSet};

use crate::logs::normalise::{LineNormaliser, LogLine};

/// The contract's cap on excerpt length (docs/design.md#analysis).
pub(crate) const MAX_EXCERPT_LINES: u32 = 40;

pub(crate) use crate::logs::LineTransform;

impl Classifier {
    /// The embedded rules, extended by `classifier.rules_dir` when it is set: what
    /// `serve` runs and what `kitefix analyze --rules DIR` / `eval --rules DIR` run.
    pub fn from_settings(settings: &crate::config::ClassifierSettings) -> Result<Self, RuleError> {
        match &settings.rules_dir {
            Some(dir) => Self::with_user_rules(dir),
            None => Self::embedded(),
        }
    }
}

/// Raw bytes in, [`Analysis`] out: normaliser, optional transform, then a session.
/// Push chunks as they arrive; memory stays bounded whatever the log's size.
pub struct LogClassifier<'c, 't> {
    normaliser: LineNormaliser,
    session: Session<'c>,
    transform: Option<LineTransform<'t>>,
}

impl<'c, 't> LogClassifier<'c, 't> {
    /// Starts on a new log.
    pub fn new(classifier: &'c Classifier, meta: JobMeta) -> Self {
        LogClassifier {
            normaliser: LineNormaliser::new(),
            session: classifier.session(meta),
            transform: None,
        }
    }

    /// Applies `transform` to every normalised line before it is classified (the
    /// redactor, in the service).
    pub(crate) fn with_transform(mut self, transform: LineTransform<'t>) -> Self {
        self.transform = Some(transform);
        self
    }

    /// Feeds the next chunk of raw log bytes, split anywhere.
    pub fn push(&mut self, chunk: &[u8]) {
        let LogClassifier { normaliser, session, transform } = self;
        normaliser.push(chunk, |line| feed(session, transform, line));
    }

    /// The section Buildkite expanded after the failure (`^^^ +++`), if any: the failing
    /// step's name as the log shows it.
    pub(crate) fn expanded_section(&self) -> Option<&str> {
        self.normaliser.expanded_section()
    }

    /// Ends the log and returns the verdict.
    pub fn finish(self) -> Analysis {
        let LogClassifier { normaliser, mut session, mut transform } = self;
        normaliser.finish(|line| feed(&mut session, &mut transform, line));
        session.finish()
    }
}

fn feed(session: &mut Session<'_>, transform: &mut Option<LineTransform<'_>>, line: LogLine<'_>) {
    match transform {
        Some(t) => {
            let text = t(line.text);
            session.push_line(line.number, &text);
        }
        None => session.push_line(line.number, line.text),
    }
}

/// Classifies a whole log held in memory.
pub fn classify_bytes(classifier: &Classifier, bytes: &[u8], meta: JobMeta) -> Analysis {
    let mut c = LogClassifier::new(classifier, meta);
    c.push(bytes);
    c.finish()
}

/// Classifies a log read to its end from `reader` in 64 KiB chunks, applying `transform`
/// (if any) to each line first.
pub(crate) fn classify_reader(
    classifier: &Classifier,
    mut reader: impl Read,
    meta: JobMeta,
    transform: Option<LineTransform<'_>>,
) -> std::io::Result<Analysis> {
    let mut c = LogClassifier::new(classifier, meta);
    if let Some(t) = transform {
        c = c.with_transform(t);
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        c.push(&buf[..n]);
    }
    Ok(c.finish())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    fn classifier() -> &'static Classifier {
        static C: OnceLock<Classifier> = OnceLock::new();
        C.get_or_init(|| match Classifier::embedded() {
            Ok(c) => c,
            Err(e) => panic!("embedded rules: {e}"),
        })
    }

    #[test]
    fn a_log_classifier_can_cross_await_points() {
        // The worker holds one across the awaits of an HTTP body stream.
        fn assert_send<T: Send>() {}
        assert_send::<LogClassifier<'static, 'static>>();
    }

    #[test]
    fn the_transform_sees_every_line_before_the_classifier() {
        let log = b"\x1b_bk;t=1\x07token=SECRET123\r\nerror[E0308]: mismatched types SECRET123\r\n";
        let redact: LineTransform<'_> = Box::new(|line: &str| {
            if line.contains("SECRET123") {
                Cow::Owned(line.replace("SECRET123", "[REDACTED]"))
            } else {
                Cow::Borrowed(line)
            }
        });
        let a = classify_reader(classifier(), &log[..], JobMeta::default(), Some(redact))
            .expect("reads");
        assert_eq!(a.rule, "rust.rustc-error-code");
        let json = serde_json::to_string(&a).expect("serialises");
        assert!(!json.contains("SECRET123"), "{json}");
        assert!(json.contains("[REDACTED]"), "{json}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_and_splits_never_panic_and_agree(
            parts in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40),
                    Just(b"error[E0308]: x\n".to_vec()),
                    Just(b"\x1b_bk;t=1\x07--- FAIL: TestX (0.01s)\r\n".to_vec()),
                    Just(b"The command \"make\" exited with 1.\n".to_vec()),
                    Just(b"##[error]Process completed with exit code 2.\n".to_vec()),
                    Just(b"  --> src/a.rs:1:1\n".to_vec()),
                ],
                0..30,
            ),
            cuts in proptest::collection::vec(0usize..2000, 0..10),
        ) {
            let log: Vec<u8> = parts.concat();
            let whole = classify_bytes(classifier(), &log, JobMeta::default());
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut c = LogClassifier::new(classifier(), JobMeta::default());
            let mut start = 0;
            for cut in cuts {
                let end = cut.clamp(start, log.len());
                c.push(&log[start..end]);
                start = end;
            }
            c.push(&log[start..]);
            let split = c.finish();
            prop_assert_eq!(&whole, &split);
            if let Some(ex) = &whole.excerpt {
                prop_assert!(ex.end >= ex.start && ex.end - ex.start < u64::from(MAX_EXCERPT_LINES));
            }
        }
    }
}

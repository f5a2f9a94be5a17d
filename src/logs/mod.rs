//! Job-log processing: everything between the raw bytes Buildkite serves and the lines
//! the classifier, the store and GitHub see.
//!
//! Everything here is streaming and bounded: the worker feeds chunks straight from the
//! HTTP body of a log that can reach 1 GiB (docs/buildkite.md#job-logs),
//! so nothing keeps more than one line (capped) in memory. `normalise` turns bytes into
//! numbered, ANSI-free lines; `redact` removes secrets from each line before anything
//! else sees it.

pub(crate) mod literal_scan;
pub mod normalise;
pub mod redact;

use std::borrow::Cow;

/// A per-line transform applied between normalisation and classification: the hook for
/// redaction, so that excerpts and titles never hold what it removes. It lives here, with
/// the redactor that makes one, so the log pipeline needs nothing from the classifier.
pub(crate) type LineTransform<'t> = Box<dyn FnMut(&str) -> Cow<'_, str> + Send + 't>;

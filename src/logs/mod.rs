//! Job-log processing: everything between the raw bytes Buildkite serves and the lines
//! the classifier, the store and GitHub see.
//!
//! Everything here is streaming and bounded: the worker feeds chunks straight from the
//! HTTP body of a log that can reach 1 GiB (`DESIGN.md`, "Facts that shape the design"),
//! so nothing keeps more than one line (capped) in memory. `normalise` turns bytes into
//! numbered, ANSI-free lines; `redact` removes secrets from each line before anything
//! else sees it.

pub(crate) mod literal_scan;
pub mod normalise;
pub mod redact;

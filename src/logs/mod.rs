//! Job-log processing: everything between the raw bytes Buildkite serves and the lines
//! the classifier, the store and GitHub see.

pub mod redact;

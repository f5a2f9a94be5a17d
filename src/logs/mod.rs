//! Raw CI job logs: turning the bytes a CI system serves into the numbered, plain-text
//! lines the classifier and the excerpts work on.
//!
//! Everything here is streaming and bounded: the worker feeds chunks straight from the
//! HTTP body of a log that can reach 1 GiB (`DESIGN.md`, "Facts that shape the design"),
//! so nothing keeps more than one line (capped) in memory.

pub mod normalise;

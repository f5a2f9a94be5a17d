//! Writes a synthetic Buildkite job log of the given size to standard output (default
//! 1 GiB): `cargo run --release --example synth-log -- 1073741824 > big.log`. Used by
//! `benches/classify-vs-grep.sh`; the generator is shared with `benches/classify.rs`.

use std::io::Write as _;

#[path = "synth.rs"]
mod synth;

fn main() -> std::io::Result<()> {
    let size: usize = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|e| std::io::Error::other(format!("bad size {s:?}: {e}")))?,
        None => 1 << 30,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Generate in 64 MiB pieces so the generator itself stays small in memory; only the
    // last piece carries the failure.
    let piece = 64 << 20;
    let mut written = 0;
    let mut buf = Vec::with_capacity(piece + 4096);
    while written < size {
        buf.clear();
        let want = piece.min(size - written);
        synth::synth_log(want, &mut buf);
        let keep = if written + buf.len() >= size {
            buf.len()
        } else {
            // Drop the failure tail of intermediate pieces: cut after the last benign line.
            buf.len() - tail_len(&buf)
        };
        out.write_all(&buf[..keep])?;
        written += keep;
    }
    out.flush()
}

/// Length of the failure tail `synth_log` appends (from its `error[E0308]` line on).
fn tail_len(buf: &[u8]) -> usize {
    let needle = b"error[E0308]";
    match buf.windows(needle.len()).rposition(|w| w == needle) {
        Some(pos) => {
            let start = buf[..pos].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            buf.len() - start
        }
        None => 0,
    }
}

//! A push-based, bounded-memory normaliser from raw log bytes to plain text lines.
//!
//! The input is whatever the CI system serves as the raw log, in chunks split anywhere
//! (inside an escape sequence or a UTF-8 character included). The output is one
//! [`LogLine`] per `\n`-terminated line, numbered from 1: that number is the analysis
//! contract's `key_line` (docs/design.md#analysis), so it counts every `\n` of the input,
//! blank lines included, and nothing else.
//!
//! What is removed, and why (sources in docs/buildkite.md#log-format):
//! - Buildkite's timestamp APC `ESC _ bk;t=… BEL` (or `ESC \` terminated), which agent v4
//!   writes at the start of every line and after `ESC [K` mid-line; every other APC, DCS,
//!   PM and SOS string too.
//! - CSI sequences (SGR colours, erase-in-line, cursor moves) and OSC sequences (Buildkite's
//!   1339 links keep their visible text, 1338 images vanish), BEL or ST terminated.
//! - `\r\n` and `\r\r\n` line ends (PTY output); a bare `\r` followed by more text is a
//!   progress-bar rewrite, so only the text after the last `\r` is kept, as a terminal
//!   would show it.
//! - GitHub Actions' ISO-8601 timestamp prefix and Buildkite's `--timestamp-lines`
//!   `[RFC3339] ` prefix, a UTF-8 byte-order mark on the first line, caret-notation
//!   colour codes (`^[[31m`) left by tools that print escapes visibly, and Travis
//!   `travis_fold:` / `travis_time:` markers.
//!
//! Invalid UTF-8 is replaced (lossy), and a line longer than [`MAX_LINE_BYTES`] is cut
//! there (the rest of it is dropped, the line keeps its number).
//!
//! Sections: Buildkite's `---`, `+++` and `~~~` headers, GitHub Actions' `##[group]` and
//! Travis folds each start a section; every line carries the name of the section it sits
//! in, so a caller can say which step failed. `^^^ +++` does not start a section: it is
//! Buildkite's "expand the group this sits in", which the agent prints right after an
//! error, so it is remembered as [`LineNormaliser::expanded_section`].

use std::borrow::Cow;

use memchr::{memchr, memchr3};

/// Longest line kept, in bytes of input text after escapes are removed. Longer lines are
/// truncated so that one pathological line (a minified bundle, a base64 blob) cannot
/// make memory grow with the log.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// OSC bodies are buffered only to recover the visible text of Buildkite links; image
/// payloads (OSC 1338) can be large and are dropped past this length.
const MAX_OSC_BYTES: usize = 4 * 1024;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// One normalised line of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// 1-based line number in the raw input (lines end at `\n`).
    pub number: u64,
    /// The visible text: no escapes, no line terminator, no CI timestamp prefix.
    pub text: &'a str,
    /// The section (Buildkite group, GitHub Actions group, Travis fold) the line sits in.
    pub section: Option<&'a str>,
    /// The line was longer than [`MAX_LINE_BYTES`] and has been cut.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// After `ESC`.
    Esc,
    /// After `ESC (` and friends: one charset byte follows (`tput sgr0` writes `ESC ( B`).
    EscCharset,
    /// Inside `ESC [ …`.
    Csi,
    /// Inside `ESC ] …`.
    Osc,
    /// `ESC` inside an OSC: `ESC \` ends it.
    OscEsc,
    /// Inside an APC, DCS, PM or SOS string (`ESC _`, `ESC P`, `ESC ^`, `ESC X`).
    Str,
    /// `ESC` inside such a string.
    StrEsc,
}

#[derive(Debug, Default)]
struct Sections {
    current: Option<String>,
    expanded: Option<String>,
}

/// Streaming normaliser. Feed it chunks with [`push`](Self::push), then call
/// [`finish`](Self::finish) to flush a last line that has no `\n`.
#[derive(Debug)]
pub struct LineNormaliser {
    state: State,
    line: Vec<u8>,
    truncated: bool,
    /// A `\r` was seen and nothing visible since: a `\n` next ends the line, visible text
    /// next rewrites it.
    pending_cr: bool,
    osc: Vec<u8>,
    number: u64,
    sections: Sections,
}

impl Default for LineNormaliser {
    fn default() -> Self {
        Self::new()
    }
}

impl LineNormaliser {
    /// A normaliser at the start of a log.
    pub fn new() -> Self {
        LineNormaliser {
            state: State::Text,
            line: Vec::with_capacity(256),
            truncated: false,
            pending_cr: false,
            osc: Vec::new(),
            number: 0,
            sections: Sections::default(),
        }
    }

    /// The section Buildkite was last told to expand (`^^^ +++`), which the agent does
    /// right after a command fails: the failing step's section.
    pub(crate) fn expanded_section(&self) -> Option<&str> {
        self.sections.expanded.as_deref()
    }

    /// Feeds the next chunk of raw bytes, calling `on_line` for every line it completes.
    pub fn push(&mut self, chunk: &[u8], mut on_line: impl FnMut(LogLine<'_>)) {
        let mut i = 0;
        while i < chunk.len() {
            if self.state == State::Str {
                // The body of an APC/DCS string (Buildkite's `bk;t=…` timestamp on every
                // line): skip to its terminator in one search instead of byte by byte.
                match memchr3(BEL, ESC, b'\n', &chunk[i..]) {
                    None => {
                        i = chunk.len();
                        continue;
                    }
                    Some(k) => i += k,
                }
            }
            if self.state != State::Text {
                let b = chunk[i];
                i += 1;
                self.escape_byte(b, &mut on_line);
                continue;
            }
            let rest = &chunk[i..];
            // Fast path: a whole plain line inside the chunk is emitted without copying. It
            // also takes the commonest decorations: a BEL-terminated APC at the start (the
            // Buildkite timestamp) and `\r` before the `\n` (PTY line ends).
            // One search finds the line's end and any escape or `\r` before it.
            if self.line.is_empty()
                && !self.pending_cr
                && let Some(from) = skip_timestamp_apc(rest)
                && let Some(k) = memchr3(b'\n', b'\r', ESC, &rest[from..])
            {
                let end = from + k;
                // Only `\r`s between the text and its `\n` (`\r\n`, `\r\r\n`) keep it plain.
                let nl = end + rest[end..].iter().take_while(|&&b| b == b'\r').count();
                let text = &rest[from..end];
                if rest.get(nl) == Some(&b'\n') && text.len() <= MAX_LINE_BYTES {
                    self.emit(text, false, &mut on_line);
                    i += nl + 1;
                    continue;
                }
            }
            match memchr3(b'\n', b'\r', ESC, rest) {
                None => {
                    self.push_text(rest);
                    i = chunk.len();
                }
                Some(k) => {
                    self.push_text(&rest[..k]);
                    i += k + 1;
                    self.control(rest[k], &mut on_line);
                }
            }
        }
    }

    /// Ends the input: emits the last line if the log does not end with `\n`.
    pub fn finish(mut self, mut on_line: impl FnMut(LogLine<'_>)) {
        if self.state == State::Osc || self.state == State::OscEsc {
            self.finish_osc();
        }
        if !self.line.is_empty() {
            self.end_line(&mut on_line);
        }
    }

    /// Appends visible text to the current line, applying a pending `\r` rewrite first.
    fn push_text(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.pending_cr {
            self.pending_cr = false;
            self.rewrite();
        }
        let room = MAX_LINE_BYTES.saturating_sub(self.line.len());
        if bytes.len() > room {
            self.line.extend_from_slice(&bytes[..room]);
            self.truncated = true;
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// A bare `\r` followed by text: the terminal would overwrite the line. Travis writes
    /// its fold and timing markers this way (`travis_fold:start:x\r ESC[0K`), so the
    /// overwritten text is checked for them before it is dropped.
    fn rewrite(&mut self) {
        if self.line.starts_with(b"travis_") {
            let old = std::mem::take(&mut self.line);
            let text = String::from_utf8_lossy(&old);
            let _rest = self.sections.travis_markers(&text);
            self.line = old;
        }
        self.line.clear();
        self.truncated = false;
    }

    fn control(&mut self, b: u8, on_line: &mut impl FnMut(LogLine<'_>)) {
        match b {
            b'\n' => {
                self.pending_cr = false;
                self.end_line(on_line);
            }
            b'\r' => self.pending_cr = true,
            _ => self.state = State::Esc,
        }
    }

    /// Handles one byte of an escape sequence. Control bytes that cannot be part of the
    /// sequence abort it and are handled as text would be, so one stray `ESC` can never
    /// swallow the rest of the log.
    fn escape_byte(&mut self, b: u8, on_line: &mut impl FnMut(LogLine<'_>)) {
        match self.state {
            State::Text => self.text_byte(b, on_line),
            State::Esc => {
                self.state = match b {
                    b'[' => State::Csi,
                    b']' => {
                        self.osc.clear();
                        State::Osc
                    }
                    b'_' | b'P' | b'^' | b'X' => State::Str,
                    b'(' | b')' | b'*' | b'+' => State::EscCharset,
                    ESC => State::Esc,
                    b'\n' | b'\r' => {
                        self.state = State::Text;
                        self.control(b, on_line);
                        return;
                    }
                    // Any other byte completes a two-byte escape (`ESC =`, `ESC 7`, …).
                    _ => State::Text,
                };
            }
            State::EscCharset => {
                self.state = State::Text;
                if b == b'\n' || b == b'\r' {
                    self.control(b, on_line);
                }
            }
            State::Csi => match b {
                0x20..=0x3f => {}
                0x40..=0x7e => self.state = State::Text,
                _ => {
                    self.state = State::Text;
                    self.text_byte(b, on_line);
                }
            },
            State::Osc => match b {
                BEL => {
                    self.state = State::Text;
                    self.finish_osc();
                }
                ESC => self.state = State::OscEsc,
                b'\n' => {
                    self.state = State::Text;
                    self.osc.clear();
                    self.control(b, on_line);
                }
                _ => {
                    if self.osc.len() < MAX_OSC_BYTES {
                        self.osc.push(b);
                    }
                }
            },
            State::OscEsc => {
                self.state = State::Text;
                self.finish_osc();
                if b != b'\\' {
                    self.state = State::Esc;
                    self.escape_byte(b, on_line);
                }
            }
            State::Str => match b {
                BEL => self.state = State::Text,
                ESC => self.state = State::StrEsc,
                b'\n' => {
                    self.state = State::Text;
                    self.control(b, on_line);
                }
                _ => {}
            },
            State::StrEsc => {
                if b == b'\\' {
                    self.state = State::Text;
                } else {
                    self.state = State::Esc;
                    self.escape_byte(b, on_line);
                }
            }
        }
    }

    fn text_byte(&mut self, b: u8, on_line: &mut impl FnMut(LogLine<'_>)) {
        match b {
            b'\n' | b'\r' | ESC => self.control(b, on_line),
            _ => self.push_text(&[b]),
        }
    }

    /// Buildkite's OSC 1339 link (`ESC ]1339;url='…';content='…' BEL`) shows its
    /// `content` (or its `url`) as text; any other OSC shows nothing.
    fn finish_osc(&mut self) {
        let body = std::mem::take(&mut self.osc);
        if let Some(params) = body.strip_prefix(b"1339;") {
            let text = String::from_utf8_lossy(params);
            let mut url = None;
            let mut content = None;
            for field in text.split(';') {
                if let Some((key, value)) = field.split_once('=') {
                    let value = value.trim_matches(|c| c == '\'' || c == '"');
                    match key {
                        "content" => content = Some(value.to_owned()),
                        "url" => url = Some(value.to_owned()),
                        _ => {}
                    }
                }
            }
            if let Some(shown) = content.or(url) {
                self.push_text(shown.as_bytes());
            }
        }
        self.osc = body;
        self.osc.clear();
    }

    fn end_line(&mut self, on_line: &mut impl FnMut(LogLine<'_>)) {
        let line = std::mem::take(&mut self.line);
        let truncated = std::mem::replace(&mut self.truncated, false);
        self.emit(&line, truncated, on_line);
        self.line = line;
        self.line.clear();
    }

    fn emit(&mut self, bytes: &[u8], truncated: bool, on_line: &mut impl FnMut(LogLine<'_>)) {
        self.number += 1;
        // `from_utf8` first: it is much faster than the lossy decoder on valid text,
        // which is nearly every line.
        let raw: Cow<'_, str> = match std::str::from_utf8(bytes) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let mut text: &str = &raw;
        if self.number == 1 {
            text = text.strip_prefix('\u{feff}').unwrap_or(text);
        }
        text = strip_timestamp(text);
        if text.starts_with("travis_") {
            text = self.sections.travis_markers(text);
        }
        let text: Cow<'_, str> = if memchr(b'^', text.as_bytes()).is_some() {
            strip_caret_sgr(text)
        } else {
            text.into()
        };
        self.sections.observe(&text);
        on_line(LogLine {
            number: self.number,
            text: &text,
            section: self.sections.current.as_deref(),
            truncated,
        });
    }
}

impl Sections {
    /// Notes a section header if `text` is one.
    fn observe(&mut self, text: &str) {
        let b = text.as_bytes();
        if b.len() < 4 {
            return;
        }
        match b[0] {
            b'-' | b'+' | b'~' if b[1] == b[0] && b[2] == b[0] && b[3].is_ascii_whitespace() => {
                let name = text[4..].trim();
                if b[0] != b'~' && looks_like_diff_or_test_output(name) {
                    return;
                }
                if !name.is_empty() {
                    self.current = Some(name.to_owned());
                }
            }
            b'^' if text.starts_with("^^^ +++") => self.expanded.clone_from(&self.current),
            b'#' => {
                if let Some(name) = text.strip_prefix("##[group]") {
                    self.current = Some(name.trim().to_owned());
                }
            }
            _ => {}
        }
    }

    /// Consumes Travis `travis_fold:` / `travis_time:` markers at the start of `text`,
    /// tracking folds as sections, and returns what follows them.
    fn travis_markers<'t>(&mut self, mut text: &'t str) -> &'t str {
        while text.starts_with("travis_fold:") || text.starts_with("travis_time:") {
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            let marker = &text[..end];
            if let Some(name) = marker.strip_prefix("travis_fold:start:") {
                self.current = Some(name.to_owned());
            } else if let Some(name) = marker.strip_prefix("travis_fold:end:")
                && self.current.as_deref() == Some(name)
            {
                self.current = None;
            }
            text = text[end..].trim_start();
        }
        text
    }
}

/// Program output that happens to match Buildkite's header syntax: unified diff file
/// headers (`--- a/x`, `+++ b/x`) and `go test` results (`--- FAIL: TestX`). Buildkite's
/// own UI is fooled by these (docs/buildkite.md#section-headers, "Gotcha"); section attribution
/// should not be.
fn looks_like_diff_or_test_output(name: &str) -> bool {
    name.starts_with("a/")
        || name.starts_with("b/")
        || name.starts_with('/')
        || name.starts_with("FAIL")
        || name.starts_with("PASS")
        || name.starts_with("SKIP")
        || name.starts_with("BENCH")
        || name.contains('\t')
        || name.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// Where the text of a line starting at `rest[0]` begins: after a BEL-terminated APC
/// (Buildkite's `ESC _bk;t=… BEL` timestamp) if it opens the line, else at 0; `None` when
/// the line opens with an APC that another escape or the line's end interrupts.
fn skip_timestamp_apc(rest: &[u8]) -> Option<usize> {
    if !rest.starts_with(b"\x1b_") {
        return Some(0);
    }
    let end = 2 + memchr3(BEL, ESC, b'\n', &rest[2..])?;
    (rest[end] == BEL).then_some(end + 1)
}

/// Strips `2024-01-02T03:04:05.1234567Z ` (GitHub Actions) or
/// `[2024-01-02T03:04:05Z] ` (Buildkite `--timestamp-lines`) from the start of a line.
fn strip_timestamp(text: &str) -> &str {
    let b = text.as_bytes();
    let bracket = b.first() == Some(&b'[');
    let mut p = usize::from(bracket);
    let digits = |from: usize, n: usize| {
        b.get(from..from + n).is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(digits(p, 4)
        && at(p + 4, b'-')
        && digits(p + 5, 2)
        && at(p + 7, b'-')
        && digits(p + 8, 2)
        && at(p + 10, b'T')
        && digits(p + 11, 2)
        && at(p + 13, b':')
        && digits(p + 14, 2)
        && at(p + 16, b':')
        && digits(p + 17, 2))
    {
        return text;
    }
    p += 19;
    if at(p, b'.') {
        p += 1;
        while b.get(p).is_some_and(u8::is_ascii_digit) {
            p += 1;
        }
    }
    if at(p, b'Z') {
        p += 1;
    } else if (at(p, b'+') || at(p, b'-'))
        && digits(p + 1, 2)
        && at(p + 3, b':')
        && digits(p + 4, 2)
    {
        p += 6;
    } else {
        return text;
    }
    if bracket {
        if !at(p, b']') {
            return text;
        }
        p += 1;
    }
    if at(p, b' ') {
        &text[p + 1..]
    } else if p == b.len() {
        ""
    } else {
        text
    }
}

/// Removes colour codes written in caret notation (`^[[31m`), which some tools and log
/// copies contain instead of the escape byte itself.
fn strip_caret_sgr(text: &str) -> Cow<'_, str> {
    if !text.contains("^[[") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("^[[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let params = after.bytes().take_while(|b| b.is_ascii_digit() || *b == b';').count();
        match after.as_bytes().get(params) {
            Some(final_byte) if final_byte.is_ascii_alphabetic() => {
                rest = &after[params + 1..];
            }
            _ => {
                out.push_str("^[[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (number, text, section) for every line of `input` fed in one chunk.
    fn lines(input: &[u8]) -> Vec<(u64, String, Option<String>)> {
        lines_chunked(input, &[input.len()])
    }

    fn lines_chunked(input: &[u8], cuts: &[usize]) -> Vec<(u64, String, Option<String>)> {
        let mut out = Vec::new();
        let mut n = LineNormaliser::new();
        let mut collect = |l: LogLine<'_>| {
            out.push((l.number, l.text.to_owned(), l.section.map(str::to_owned)));
        };
        let mut start = 0;
        for &cut in cuts {
            let end = cut.clamp(start, input.len());
            n.push(&input[start..end], &mut collect);
            start = end;
        }
        n.push(&input[start..], &mut collect);
        n.finish(&mut collect);
        out
    }

    fn texts(input: &[u8]) -> Vec<String> {
        lines(input).into_iter().map(|(_, t, _)| t).collect()
    }

    #[test]
    fn buildkite_timestamps_are_removed_at_line_start_and_mid_line() {
        let input = b"\x1b_bk;t=1738747164589\x07Cloning into '.'...\r\n\
            \x1b_bk;t=1738747164590\x07Receiving objects: 10%\x1b[K\x1b_bk;t=1738747165590\x07 done\r\n\
            \x1b_bk;t=1738747164591;dt=3\x1b\\tail\n";
        assert_eq!(texts(input), ["Cloning into '.'...", "Receiving objects: 10% done", "tail"]);
    }

    #[test]
    fn colours_osc_links_and_images_are_stripped() {
        let input = b"\x1b[31;1merror\x1b[0m: \x1b[38;5;48mboom\x1b(B\x1b[m\n\
            see \x1b]1339;url='https://example.com/x';content='the docs'\x07 now\n\
            \x1b]1338;url=\"artifact://a.png\";alt=\"chart\"\x1b\\done\n\
            \x1b]8;;https://example.com\x07link\x1b]8;;\x07\n";
        assert_eq!(texts(input), ["error: boom", "see the docs now", "done", "link"]);
    }

    #[test]
    fn line_ends_and_progress_rewrites() {
        let input = b"one\r\ntwo\r\r\nDownloading 10%\rDownloading 100%\rfinished\nthree";
        assert_eq!(
            lines(input).into_iter().map(|(n, t, _)| (n, t)).collect::<Vec<_>>(),
            [(1, "one".to_owned()), (2, "two".into()), (3, "finished".into()), (4, "three".into())]
        );
    }

    #[test]
    fn blank_lines_keep_their_numbers() {
        let got = lines(b"a\n\n\x1b_bk;t=1\x07\nb\n");
        assert_eq!(got.iter().map(|l| l.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(got[3].1, "b");
    }

    #[test]
    fn ci_timestamp_prefixes_and_bom_are_removed() {
        let input = "\u{feff}2026-04-23T08:28:54.6985167Z Current runner version\n\
            2026-04-23T08:28:54.7009715Z ##[group]Run cargo test\n\
            [2026-02-17T07:52:40Z] error: x\n\
            [2026-02-17T07:52:40.123+02:00] ok\n\
            2026-04-23 not a timestamp\n";
        assert_eq!(
            texts(input.as_bytes()),
            [
                "Current runner version",
                "##[group]Run cargo test",
                "error: x",
                "ok",
                "2026-04-23 not a timestamp"
            ]
        );
    }

    #[test]
    fn travis_markers_become_sections_and_vanish() {
        let input = b"travis_fold:start:install\r\x1b[0K$ npm ci\r\nadded 10 packages\r\n\
            travis_fold:end:install\r\x1b[0Ktravis_time:start:abc\r\x1b[0K$ npm test\r\n\
            fail\n";
        let got = lines(input);
        assert_eq!(got[0], (1, "$ npm ci".into(), Some("install".into())));
        assert_eq!(got[1].2.as_deref(), Some("install"));
        assert_eq!(got[2], (3, "$ npm test".into(), None));
        assert_eq!(got[3].1, "fail");
    }

    #[test]
    fn buildkite_sections_follow_headers_but_not_diffs_or_go_test() {
        let input = b"~~~ Preparing working directory\n\
            --- :rust: Build\n\
            compiling\n\
            --- a/src/lib.rs\n\
            +++ b/src/lib.rs\n\
            --- FAIL: TestX (0.00s)\n\
            \x1b[31m\xf0\x9f\x9a\xa8 Error: The command exited with status 1\x1b[0m\n\
            ^^^ +++\n\
            ~~~ Running global pre-exit hook\n";
        let mut n = LineNormaliser::new();
        let mut sections = Vec::new();
        n.push(input, |l| sections.push(l.section.map(str::to_owned)));
        assert_eq!(n.expanded_section(), Some(":rust: Build"));
        let want = [
            "Preparing working directory",
            ":rust: Build",
            ":rust: Build",
            ":rust: Build",
            ":rust: Build",
            ":rust: Build",
            ":rust: Build",
            ":rust: Build",
            "Running global pre-exit hook",
        ];
        assert_eq!(sections, want.map(|s| Some(s.to_owned())));
    }

    #[test]
    fn github_groups_are_sections() {
        let got = lines(b"##[group]Run npm test\nnpm test\n##[endgroup]\nFAIL src/a.test.js\n");
        assert!(got.iter().all(|l| l.2.as_deref() == Some("Run npm test")));
    }

    #[test]
    fn caret_notation_colours_are_removed() {
        assert_eq!(
            texts(b"^[[31mFAIL^[[0m^[[1;31m: test_x^[[0m and ^[[ stays\n"),
            ["FAIL: test_x and ^[[ stays"]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(texts(b"caf\xc3\xa9 \xff\xfe ok\n"), ["caf\u{e9} \u{fffd}\u{fffd} ok"]);
    }

    #[test]
    fn long_lines_are_truncated_but_counted() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        input.extend_from_slice(b"\nnext\n");
        let mut seen = Vec::new();
        let mut n = LineNormaliser::new();
        // Fed in small pieces so the slow path is the one under test.
        for piece in input.chunks(1000) {
            n.push(piece, |l| seen.push((l.number, l.text.len(), l.truncated)));
        }
        n.finish(|l| seen.push((l.number, l.text.len(), l.truncated)));
        assert_eq!(seen, [(1, MAX_LINE_BYTES, true), (2, 4, false)]);
    }

    #[test]
    fn unterminated_escape_does_not_swallow_the_log() {
        assert_eq!(texts(b"a\x1b]8;;http://x\nb\x1b_bk;t=1\nc\x1b[12\nd\n"), ["a", "b", "c", "d"]);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_lines(
            input in proptest::collection::vec(
                prop_oneof![
                    4 => any::<u8>(),
                    2 => Just(b'\n'),
                    1 => Just(b'\r'),
                    2 => Just(ESC),
                    1 => Just(BEL),
                    1 => Just(b'['),
                    1 => Just(b'_'),
                    1 => Just(b']'),
                ],
                0..400,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let whole = lines(&input);
            let split = lines_chunked(&input, &cuts);
            prop_assert_eq!(&whole, &split);
            // Line numbers are 1..=N with N = number of '\n' (+1 for an unterminated tail).
            for (i, l) in whole.iter().enumerate() {
                prop_assert_eq!(l.0, i as u64 + 1);
            }
            let newlines = input.iter().filter(|b| **b == b'\n').count();
            prop_assert!(whole.len() == newlines || whole.len() == newlines + 1);
        }
    }
}

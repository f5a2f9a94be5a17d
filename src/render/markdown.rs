//! Small, safe building blocks for the GitHub-flavoured Markdown of a check run.
//!
//! Everything placed in a summary comes from a build log or from Buildkite, so it is
//! treated as hostile text: plain text is escaped (no accidental emphasis, links, HTML,
//! `@mentions` or `#123` references), inline code and code blocks use a backtick run
//! longer than any inside the text (CommonMark spec 0.31, "Code spans" and "Fenced code
//! blocks"), and links only ever point at http(s) URLs.

use url::Url;

/// Escapes text for use inline: every ASCII punctuation character that could start
/// Markdown syntax, HTML, an entity, a mention or a reference gets a backslash (CommonMark
/// allows a backslash before any ASCII punctuation; `$` would start GitHub's math), and
/// line breaks become spaces.
pub(crate) fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '!' | '@' | '&'
            | '{' | '}' | '(' | ')' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Like [`text`], but keeps the `` `code` `` spans a classifier or compiler wrote
/// (rustc, cargo and many test runners quote names that way): with an even number of
/// backticks, every other segment becomes inline code; otherwise everything is escaped.
pub(crate) fn text_with_code(s: &str) -> String {
    let segments: Vec<&str> = s.split('`').collect();
    if segments.len().is_multiple_of(2) {
        return text(s);
    }
    segments
        .iter()
        .enumerate()
        .map(|(i, segment)| match (i % 2, segment.is_empty()) {
            (0, _) => text(segment),
            (_, true) => "\\`\\`".to_owned(),
            (_, false) => code(segment),
        })
        .collect()
}

/// Inline code: the text in a backtick run one longer than the longest inside it, padded
/// with spaces when it starts or ends with a backtick (CommonMark strips one space on each
/// side). Line breaks become spaces, since a code span is one line here.
pub(crate) fn code(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect();
    if s.is_empty() {
        return "` `".to_owned();
    }
    let ticks = "`".repeat(longest_backtick_run(&s) + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{ticks}{pad}{s}{pad}{ticks}")
}

/// A fenced code block whose fence is longer than any backtick run in `body`, so nothing
/// in a log can close it early. `info` is the language tag (`text`).
pub(crate) fn code_block(info: &str, body: &str) -> String {
    let fence = "`".repeat((longest_backtick_run(body) + 1).max(3));
    let body = body.replace("\r\n", "\n").replace('\r', "\n");
    let body = body.trim_end_matches('\n');
    format!("{fence}{info}\n{body}\n{fence}\n")
}

/// `[label](url)` when `url` is an http(s) URL, else just the label: a payload must not be
/// able to plant a `javascript:` link. Parentheses are percent-encoded so the destination
/// cannot end early. `label` must already be Markdown (escaped text or inline code).
pub(crate) fn link(label: &str, url: Option<&str>) -> String {
    match url.and_then(|u| Url::parse(u).ok()).filter(|u| matches!(u.scheme(), "http" | "https")) {
        Some(u) => {
            let dest = u.as_str().replace('(', "%28").replace(')', "%29");
            format!("[{label}]({dest})")
        }
        None => label.to_owned(),
    }
}

fn longest_backtick_run(s: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for b in s.bytes() {
        run = if b == b'`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// The largest index `<= at` that is a char boundary of `s`.
pub(crate) fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// Cuts `s` to a prefix of at most `max_chars` characters, adding `…` when it cut.
pub(crate) fn shorten_chars(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_owned(),
        Some((cut, _)) => {
            let keep =
                s[..cut].char_indices().nth(max_chars.saturating_sub(1)).map_or(cut, |(i, _)| i);
            format!("{}…", &s[..keep])
        }
    }
}

/// Cuts `s` to a prefix of at most `max_bytes` bytes on a char boundary.
pub(crate) fn shorten_bytes(s: &str, max_bytes: usize) -> &str {
    &s[..floor_char_boundary(s, max_bytes)]
}

/// Fits Markdown into `limit` bytes (GitHub counts the check run's 65,535 limits in bytes
/// of UTF-8, github/docs#35252). When it is too long, it is cut on a char boundary,
/// preferably at the end of a line, any code block left open is closed, and `note` (a
/// visible "truncated" line) is appended. The result is never longer than `limit`.
pub(crate) fn fit(markdown: String, limit: usize, note: &str) -> String {
    if markdown.len() <= limit {
        return markdown;
    }
    let mut budget = limit.saturating_sub(note.len() + 2);
    loop {
        let mut cut = floor_char_boundary(&markdown, budget);
        // Prefer a whole line, unless that throws away more than a few hundred bytes.
        if let Some(nl) = markdown[..cut].rfind('\n')
            && cut - nl < 512
        {
            cut = nl + 1;
        }
        let kept = &markdown[..cut];
        let closing = match open_fence(kept) {
            Some(fence) => format!("{}{fence}\n", if kept.ends_with('\n') { "" } else { "\n" }),
            None => String::new(),
        };
        let body = format!("{kept}{closing}");
        // The note is a paragraph of its own: exactly one blank line before it.
        let sep = match () {
            _ if body.is_empty() || body.ends_with("\n\n") => "",
            _ if body.ends_with('\n') => "\n",
            _ => "\n\n",
        };
        let out = format!("{body}{sep}{note}");
        if out.len() <= limit || budget == 0 {
            return shorten_bytes(&out, limit).to_owned();
        }
        budget = budget.saturating_sub(out.len() - limit);
    }
}

/// The fence of a code block still open at the end of `markdown`, if any. Only fences at
/// the start of a line count, which is how [`code_block`] writes them.
pub(crate) fn open_fence(markdown: &str) -> Option<String> {
    let mut open: Option<usize> = None;
    for line in markdown.lines() {
        let run = line.bytes().take_while(|&b| b == b'`').count();
        match open {
            None if run >= 3 => open = Some(run),
            Some(n) if run >= n && line.trim_end().len() == run => open = None,
            _ => {}
        }
    }
    open.map(|n| "`".repeat(n))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn text_cannot_start_markup_or_mention() {
        let escaped = text("see <b>x</b> *now* @octocat #12 [a](javascript:x)\nnext");
        assert_eq!(
            escaped,
            "see \\<b\\>x\\</b\\> \\*now\\* \\@octocat \\#12 \\[a\\]\\(javascript:x\\) next"
        );
    }

    #[test]
    fn quoted_code_stays_code_and_the_rest_is_escaped() {
        assert_eq!(
            text_with_code("3 tests failed in `web::session` <b>"),
            "3 tests failed in `web::session` \\<b\\>"
        );
        assert_eq!(
            text_with_code("expected `Vec<u8>`, found `&str`"),
            "expected `Vec<u8>`, found `&str`"
        );
        assert_eq!(text_with_code("odd ` count"), "odd \\` count");
    }

    #[test]
    fn code_spans_outlast_backticks_inside() {
        assert_eq!(code("unit"), "`unit`");
        assert_eq!(code("a `b` c"), "``a `b` c``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("line\nbreak"), "`line break`");
    }

    #[test]
    fn code_blocks_cannot_be_closed_by_the_log() {
        let block = code_block("text", "before\n```\nescaped?\n`````\nafter\n");
        assert!(block.starts_with("``````text\n"), "{block}");
        assert!(block.ends_with("\nafter\n``````\n"), "{block}");
        assert_eq!(open_fence(&block), None);
        assert_eq!(open_fence(&block[..block.len() - 8]).as_deref(), Some("``````"));
    }

    #[test]
    fn links_only_point_at_web_urls() {
        assert_eq!(
            link("job", Some("https://bk.example/a_(b)")),
            "[job](https://bk.example/a_%28b%29)"
        );
        assert_eq!(link("job", Some("javascript:alert(1)")), "job");
        assert_eq!(link("job", None), "job");
    }

    #[test]
    fn shorten_keeps_whole_chars() {
        assert_eq!(shorten_chars("héllo", 3), "hé…");
        assert_eq!(shorten_chars("hé", 3), "hé");
        assert_eq!(shorten_bytes("héllo", 2), "h");
    }

    #[test]
    fn fit_closes_an_open_code_block_and_says_so() {
        let md = format!("intro\n\n{}", code_block("text", &"ééé line\n".repeat(500)));
        let out = fit(md.clone(), 1000, "_truncated_");
        assert!(out.len() <= 1000);
        assert!(out.ends_with("\n_truncated_"), "{out}");
        assert_eq!(open_fence(&out), None, "{out}");
        assert!(md.starts_with(out.split("```\n\n_truncated_").next().unwrap()));
    }

    proptest! {
        #[test]
        fn fit_respects_the_byte_limit(s in "(\\PC|\n|`){0,400}", limit in 40usize..300) {
            let out = fit(s.clone(), limit, "**truncated**");
            prop_assert!(out.len() <= limit, "{} > {}", out.len(), limit);
            if s.len() <= limit {
                prop_assert_eq!(out, s);
            } else {
                prop_assert!(out.ends_with("**truncated**"));
            }
        }

        #[test]
        fn code_spans_hold_any_text(s in "(\\PC|`){1,40}") {
            let span = code(&s);
            let ticks = span.bytes().take_while(|&b| b == b'`').count();
            prop_assert!(ticks > longest_backtick_run(&s));
            prop_assert!(span.ends_with(&"`".repeat(ticks)));
        }
    }
}

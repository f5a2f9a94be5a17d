//! Required literals of a regular expression, for the multi-pattern prefilter.
//!
//! For each rule the engine needs a set of strings such that every line the rule can match
//! contains at least one of them. One Aho-Corasick automaton over all rules' literals then
//! tells, in one scan of a line, which few rules can possibly match it; only those run
//! their regexes. The `regex` crate's own literal optimisations work per regex, and
//! `regex_syntax`'s extractor only finds prefixes and suffixes, which most log patterns
//! (`^\s*(?P<path>\S+):\d+: error: …`) do not have, hence this small analysis of inner
//! literals.
//!
//! Literals are ASCII-lowercased: the automaton is ASCII case-insensitive, so a set found
//! here may let through a few lines the regex then rejects, never the reverse.

use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// Cap on the number of alternatives tracked for one node, so that classes and
/// alternations cannot blow up into huge cross products.
const MAX_ALTERNATIVES: usize = 32;
/// Cap on the length of a final literal; longer ones add nothing to selectivity.
const MAX_LITERAL: usize = 10;
/// Cap on the number of line starts checked before an anchored pattern's regex.
const MAX_LINE_STARTS: usize = 8;

/// What one node of the pattern guarantees.
#[derive(Debug, Clone, Default)]
struct Info {
    /// Every string this node can match, when that set is small and finite.
    exact: Option<Vec<Vec<u8>>>,
    /// A set of strings of which every match contains one.
    required: Option<Vec<Vec<u8>>>,
    /// Every match starts with one of these.
    prefix: Option<Vec<Vec<u8>>>,
    /// Every match ends with one of these.
    suffix: Option<Vec<Vec<u8>>>,
}

impl Info {
    fn exact(set: Vec<Vec<u8>>) -> Self {
        Info {
            exact: Some(set.clone()),
            required: None,
            prefix: Some(set.clone()),
            suffix: Some(set),
        }
    }

    fn starts(&self) -> Option<Vec<Vec<u8>>> {
        self.exact.clone().or_else(|| self.prefix.clone())
    }

    fn ends(&self) -> Option<Vec<Vec<u8>>> {
        self.exact.clone().or_else(|| self.suffix.clone())
    }
}

/// A set of lowercase literals, one of which occurs in every match of `pattern`, or
/// `None` when the pattern guarantees nothing useful (every line must then be tried).
pub(crate) fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?;
    let info = analyse(&hir);
    let mut best = best_of([info.required, info.exact].into_iter().flatten())?;
    // A prefix of a required string is required too; long literals add no selectivity.
    for lit in &mut best {
        lit.truncate(MAX_LITERAL);
    }
    let best = dedup(best);
    (min_len(&best) >= 2).then_some(best)
}

/// The strings one of which starts every line `pattern` matches, when the pattern is
/// anchored at the start (`^…`) and has a finite set of literal prefixes (exact bytes, case
/// variants included), or `None`. A `starts_with` check then spares the regex call on the
/// many lines that contain a rule's literal but do not start like its pattern.
pub(crate) fn line_starts(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?;
    // Every match begins where `^` holds: at the start of the line (no `(?m)` in rules,
    // and the engine matches one line at a time anyway).
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let seq = Extractor::new().extract(&hir);
    let mut literals: Vec<&[u8]> = seq.literals()?.iter().map(|l| l.as_bytes()).collect();
    // A line that starts with `FAILED [` starts with `FAILED ` too: keep the shortest.
    literals.sort_by_key(|l| l.len());
    let mut starts: Vec<Vec<u8>> = Vec::new();
    for lit in literals {
        if !starts.iter().any(|s| lit.starts_with(s)) {
            starts.push(lit.to_vec());
        }
    }
    // An empty prefix (`^\s*…`) holds for every line; no literal at all means the
    // extractor gave up on something, so check nothing rather than too much. Many
    // prefixes (the case variants of `(?i)^error`) cost more to compare than the regex.
    if starts.is_empty() || starts.len() > MAX_LINE_STARTS || starts.iter().any(Vec::is_empty) {
        return None;
    }
    Some(starts)
}

fn analyse(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {
            Info { exact: Some(vec![Vec::new()]), ..Info::default() }
        }
        HirKind::Literal(lit) => {
            let bytes = lower(&lit.0);
            let mut info = Info::exact(vec![bytes.clone()]);
            info.required = Some(vec![bytes]);
            info
        }
        HirKind::Class(class) => match class_literals(class) {
            Some(set) => Info::exact(set),
            None => Info::default(),
        },
        HirKind::Capture(cap) => analyse(&cap.sub),
        HirKind::Repetition(rep) => {
            let sub = analyse(&rep.sub);
            if rep.min == 0 {
                // `x?` with a small `x`: the empty string or one of x's strings.
                if rep.max == Some(1)
                    && let Some(mut set) = sub.exact
                    && set.len() < MAX_ALTERNATIVES
                {
                    set.push(Vec::new());
                    return Info { exact: Some(dedup(set)), ..Info::default() };
                }
                return Info::default();
            }
            let exact = if rep.min == 1 && rep.max == Some(1) { sub.exact.clone() } else { None };
            // `_{3,}` starts and ends with `___`: repeat a single short string `min` times.
            let repeated = match sub.exact.as_deref() {
                Some([one]) if !one.is_empty() && rep.min > 1 => {
                    let times = (rep.min as usize).min(MAX_LITERAL / one.len()).max(1);
                    Some(vec![one.repeat(times)])
                }
                _ => None,
            };
            Info {
                exact,
                required: best_of(
                    [repeated.clone(), sub.required.clone(), sub.exact.clone()]
                        .into_iter()
                        .flatten(),
                ),
                prefix: repeated.clone().or_else(|| sub.starts()),
                suffix: repeated.or_else(|| sub.ends()),
            }
        }
        HirKind::Concat(children) => concat(children),
        HirKind::Alternation(children) => {
            let infos: Vec<Info> = children.iter().map(analyse).collect();
            let union = |f: &dyn Fn(&Info) -> Option<Vec<Vec<u8>>>| {
                infos
                    .iter()
                    .map(f)
                    .collect::<Option<Vec<_>>>()
                    .map(|sets| dedup(sets.into_iter().flatten().collect::<Vec<_>>()))
                    .filter(|set| set.len() <= MAX_ALTERNATIVES)
            };
            let exact = union(&|i| i.exact.clone());
            let prefix = union(&|i| i.starts()).filter(|s| min_len(s) > 0);
            let suffix = union(&|i| i.ends()).filter(|s| min_len(s) > 0);
            let required =
                union(&|i| best_of([i.required.clone(), i.exact.clone()].into_iter().flatten()))
                    .filter(|set| min_len(set) > 0);
            Info { exact, required, prefix, suffix }
        }
    }
}

fn concat(children: &[Hir]) -> Info {
    let infos: Vec<Info> = children.iter().map(analyse).collect();
    let mut candidates: Vec<Vec<Vec<u8>>> = Vec::new();
    // The cross product of the current run of exact children, seeded by the suffix set
    // of the non-exact child before it.
    let mut run: Option<Vec<Vec<u8>>> = Some(vec![Vec::new()]);
    for info in &infos {
        if let Some(req) = info.required.clone() {
            candidates.push(req);
        }
        match &info.exact {
            Some(exact) => {
                run = match run.take() {
                    Some(prefix) => match product(&prefix, exact) {
                        Some(joined) => Some(joined),
                        None => {
                            candidates.push(prefix);
                            Some(exact.clone())
                        }
                    },
                    None => Some(exact.clone()),
                };
            }
            None => {
                if let Some(prefix) = run.take() {
                    match info.prefix.as_ref().and_then(|p| product(&prefix, p)) {
                        Some(joined) => candidates.push(joined),
                        None => candidates.push(prefix),
                    }
                }
                run = info.suffix.clone();
            }
        }
    }
    let all_exact = infos.iter().all(|i| i.exact.is_some());
    let exact = if all_exact { run.clone() } else { None };
    candidates.extend(run);

    // Leading exact children, then the first non-exact one's prefix, start every match.
    let mut prefix = Some(vec![Vec::new()]);
    for info in &infos {
        match &info.exact {
            Some(e) => match prefix.as_ref().and_then(|p| product(p, e)) {
                Some(p) => prefix = Some(p),
                None => break,
            },
            None => {
                if let Some(joined) =
                    info.prefix.as_ref().and_then(|q| prefix.as_ref().and_then(|p| product(p, q)))
                {
                    prefix = Some(joined);
                }
                break;
            }
        }
    }
    let mut suffix = Some(vec![Vec::new()]);
    for info in infos.iter().rev() {
        match &info.exact {
            Some(e) => match suffix.as_ref().and_then(|s| product(e, s)) {
                Some(s) => suffix = Some(s),
                None => break,
            },
            None => {
                if let Some(joined) =
                    info.suffix.as_ref().and_then(|q| suffix.as_ref().and_then(|s| product(q, s)))
                {
                    suffix = Some(joined);
                }
                break;
            }
        }
    }
    Info {
        exact,
        required: best_of(candidates),
        prefix: prefix.filter(|p| min_len(p) > 0),
        suffix: suffix.filter(|s| min_len(s) > 0),
    }
}

fn product(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len() * b.len() > MAX_ALTERNATIVES {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    Some(dedup(out))
}

/// A class matching one ASCII letter in either case (what `(?i)` makes of a letter), or a
/// handful of characters, as literals.
fn class_literals(class: &Class) -> Option<Vec<Vec<u8>>> {
    match class {
        Class::Unicode(u) => {
            let mut chars = Vec::new();
            for range in u.ranges() {
                let (start, end) = (range.start() as u32, range.end() as u32);
                if end - start > MAX_ALTERNATIVES as u32 {
                    return None;
                }
                for c in start..=end {
                    chars.push(char::from_u32(c)?);
                }
                if chars.len() > 10 {
                    return None;
                }
            }
            let mut out: Vec<Vec<u8>> = chars
                .into_iter()
                // The Kelvin sign and the long s fold to ASCII `k` and `s` under `(?i)`.
                .map(|c| match c {
                    '\u{212a}' => 'k',
                    '\u{17f}' => 's',
                    c => c.to_ascii_lowercase(),
                })
                .map(|c| c.to_string().into_bytes())
                .collect();
            out = dedup(out);
            Some(out)
        }
        Class::Bytes(b) => {
            let mut out = Vec::new();
            for range in b.ranges() {
                for byte in range.start()..=range.end() {
                    out.push(vec![byte.to_ascii_lowercase()]);
                }
                if out.len() > 10 {
                    return None;
                }
            }
            Some(dedup(out))
        }
    }
}

fn lower(bytes: &[u8]) -> Vec<u8> {
    bytes.to_ascii_lowercase()
}

fn dedup(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v.dedup();
    v
}

fn min_len(set: &[Vec<u8>]) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

/// Words so frequent in CI logs that a literal made of one says little about a line.
const COMMON_WORDS: &[&str] = &[
    "error",
    "errors",
    "fail",
    "failed",
    "failure",
    "test",
    "tests",
    "http",
    "https",
    "exit",
    "warning",
    "info",
    "debug",
    "status",
    "returned",
    "checkout",
    "repository",
    "generated",
    "exception",
    "file",
    "line",
    "build",
    "run",
    "running",
    "code",
    "lint",
    "info",
    "passed",
    "https",
    "tests",
    "with",
    "from",
    "this",
    "that",
    "into",
    "using",
    "done",
    "finished",
];

/// How selective a literal is, roughly: its length, less for bare punctuation (`: `,
/// unless a run like `___`), and less for a common word or a piece of one with nothing
/// but spaces around it (`fail`, ` error`, `est`).
fn weight(lit: &[u8]) -> usize {
    let text = String::from_utf8_lossy(lit);
    if !text.chars().any(char::is_alphanumeric) {
        let run =
            lit.windows(3).any(|w| w[0] == w[1] && w[1] == w[2] && !w[0].is_ascii_whitespace());
        return if run { lit.len() } else { lit.len() / 2 };
    }
    let core = text.trim();
    if COMMON_WORDS.iter().any(|w| w.contains(core)) {
        lit.len().saturating_sub(if COMMON_WORDS.contains(&core) { 2 } else { 3 })
    } else {
        lit.len()
    }
}

/// The most selective set: the best weakest member (up to 10 bytes), then fewest members.
fn best_of(sets: impl IntoIterator<Item = Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    // One-byte literals would let nearly every line through: not worth a place.
    sets.into_iter().filter(|s| !s.is_empty() && min_len(s) >= 2).max_by(|a, b| {
        // Each doubling of the number of members costs about as much as a quarter of a
        // byte of length: `0 failed`…`9 failed` is worse than ` failed`.
        let score = |s: &Vec<Vec<u8>>| {
            let weakest = s.iter().map(|l| weight(l)).min().unwrap_or(0);
            let members = usize::BITS - (s.len().max(1) - 1).leading_zeros();
            (
                (weakest.min(10) * 4).saturating_sub(members as usize),
                usize::MAX - s.len(),
                min_len(s),
            )
        };
        score(a).cmp(&score(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(p: &str) -> Option<Vec<String>> {
        required_literals(p)
            .map(|v| v.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect())
    }

    #[test]
    fn finds_inner_literals_not_only_prefixes() {
        assert_eq!(
            lits(r"^\s*(?P<path>\S+):(?P<line>\d+): error: (?P<m>.+)"),
            Some(vec![": error: ".into()])
        );
        assert_eq!(lits(r"^error(\[E\d+\])?: .+"), Some(vec!["error".into()]));
        // Repetitions of a fixed string keep their minimum: pytest's `____ name ____`.
        assert_eq!(lits(r"^_{3,} (?P<t>\w+) _{3,}$"), Some(vec![" ___".into()]));
    }

    #[test]
    fn case_insensitive_patterns_give_lowercase_literals() {
        // Literals are cut at 10 bytes: longer ones add little selectivity, and a small
        // automaton stays in cache.
        assert_eq!(lits(r"(?i)out of memory"), Some(vec!["out of mem".into()]));
    }

    #[test]
    fn alternations_need_a_literal_in_every_branch() {
        assert_eq!(
            lits(r"(Killed|OOMKilled) process"),
            Some(vec!["killed pro".into(), "oomkilled ".into()])
        );
        assert_eq!(lits(r"^(FAIL|ERROR): \w+"), Some(vec!["error: ".into(), "fail: ".into()]));
        assert_eq!(lits(r"^(FAIL|\d+)"), None);
    }

    #[test]
    fn common_words_lose_to_rarer_literals() {
        assert_eq!(
            lits(r"(?i)\b(?:HTTP|status)[ :=]*5(?:0[0234])\b"),
            Some(vec!["500".into(), "502".into(), "503".into(), "504".into()])
        );
    }

    #[test]
    fn anchored_patterns_give_their_line_starts() {
        let starts = |p: &str| {
            line_starts(p)
                .map(|v| v.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect())
        };
        assert_eq!(starts(r"^Tests:\s+(?P<failed>[1-9]\d*) failed"), Some(vec!["Tests:".into()]));
        assert_eq!(
            starts(r"^(?:FAIL|ERROR): \w+"),
            Some(vec!["FAIL: ".to_owned(), "ERROR: ".to_owned()])
        );
        // Optional parts multiply the prefixes; the longer ones add nothing.
        assert_eq!(
            starts(r"^(?:FAILED|ERROR|FAILED TWICE:?) (?:\[[\d.]+s\] )?(?P<t>\S+)"),
            Some(vec!["ERROR ".to_owned(), "FAILED ".to_owned()])
        );
        // Not anchored, anchored in one branch only, starting with an optional part, or
        // with more case variants than are worth comparing.
        assert_eq!(starts(r"Tests: \d+"), None);
        assert_eq!(starts(r"^FAIL|ERROR"), None);
        assert_eq!(starts(r"^\s*error: (?P<message>.+)$"), None);
        assert_eq!(starts(r"(?i)^error: x"), None);
        // Every line the regex matches starts with one of the strings.
        for (pattern, line) in [
            (r"^(?i:e)rror: x", "Error: x"),
            (r"^E {3,}(?P<m>\w+Error\b.*)$", "E       ValueError: x"),
            (r"^(?:FAILED|ERROR) (?P<t>\S+\.py::\S+)", "ERROR tests/a.py::t"),
        ] {
            let set = line_starts(pattern).expect("anchored with a prefix");
            assert!(set.iter().any(|s| line.as_bytes().starts_with(s)), "{pattern} / {line}");
        }
    }

    #[test]
    fn patterns_without_literals_are_unfiltered() {
        assert_eq!(lits(r"^\w+$"), None);
    }

    #[test]
    fn literals_really_are_required() {
        // Every line a pattern matches contains one of its literals (case-insensitively).
        let cases = [
            (r"(?i)connection (refused|reset)", ["Connection refused", "CONNECTION RESET by peer"]),
            (r"^\[(ERROR|FATAL)\] .*", ["[ERROR] x", "[FATAL] y"]),
            (r"npm ERR! code E[A-Z]+", ["npm ERR! code E404", "npm ERR! code EINTEGRITY"]),
        ];
        for (pattern, lines) in cases {
            let set = required_literals(pattern).expect("has literals");
            for line in lines {
                let low = line.to_ascii_lowercase();
                assert!(
                    set.iter().any(|l| low.contains(&*String::from_utf8_lossy(l))),
                    "{pattern} / {line} / {set:?}"
                );
            }
        }
    }
}

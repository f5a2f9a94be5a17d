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

use regex_syntax::hir::{Class, Hir, HirKind};

/// Cap on the number of alternatives tracked for one node, so that classes and
/// alternations cannot blow up into huge cross products.
const MAX_ALTERNATIVES: usize = 32;
/// Cap on the length of a final literal; longer ones add nothing to selectivity.
const MAX_LITERAL: usize = 24;

/// What one node of the pattern guarantees.
#[derive(Debug, Clone, Default)]
struct Info {
    /// Every string this node can match, when that set is small and finite.
    exact: Option<Vec<Vec<u8>>>,
    /// A set of strings of which every match contains one.
    required: Option<Vec<Vec<u8>>>,
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

fn analyse(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Info { exact: Some(vec![Vec::new()]), required: None },
        HirKind::Literal(lit) => {
            let bytes = lower(&lit.0);
            Info { exact: Some(vec![bytes.clone()]), required: Some(vec![bytes]) }
        }
        HirKind::Class(class) => Info { exact: class_literals(class), required: None },
        HirKind::Capture(cap) => analyse(&cap.sub),
        HirKind::Repetition(rep) => {
            if rep.min == 0 {
                return Info::default();
            }
            let sub = analyse(&rep.sub);
            let exact = if rep.min == 1 && rep.max == Some(1) { sub.exact.clone() } else { None };
            let required = best_of([sub.required, sub.exact].into_iter().flatten());
            Info { exact, required }
        }
        HirKind::Concat(children) => concat(children),
        HirKind::Alternation(children) => {
            let infos: Vec<Info> = children.iter().map(analyse).collect();
            let exact = infos
                .iter()
                .map(|i| i.exact.clone())
                .collect::<Option<Vec<_>>>()
                .map(|sets| sets.into_iter().flatten().collect::<Vec<_>>())
                .filter(|set| set.len() <= MAX_ALTERNATIVES);
            let required = infos
                .into_iter()
                .map(|i| best_of([i.required, i.exact].into_iter().flatten()))
                .collect::<Option<Vec<_>>>()
                .map(|sets| dedup(sets.into_iter().flatten().collect()))
                .filter(|set| set.len() <= MAX_ALTERNATIVES && min_len(set) > 0);
            Info { exact, required }
        }
    }
}

fn concat(children: &[Hir]) -> Info {
    let mut candidates: Vec<Vec<Vec<u8>>> = Vec::new();
    // The cross product of the current run of exact children.
    let mut run: Option<Vec<Vec<u8>>> = Some(vec![Vec::new()]);
    let mut all_exact = true;
    for child in children {
        let info = analyse(child);
        if let Some(req) = info.required.clone() {
            candidates.push(req);
        }
        match info.exact {
            Some(exact) => match run.take() {
                Some(prefix) => match product(&prefix, &exact) {
                    Some(joined) => run = Some(joined),
                    None => {
                        all_exact = false;
                        candidates.push(prefix);
                        run = Some(exact);
                    }
                },
                None => run = Some(exact),
            },
            None => {
                all_exact = false;
                candidates.extend(run.take());
            }
        }
    }
    let exact = if all_exact { run.clone() } else { None };
    candidates.extend(run);
    Info { exact, required: best_of(candidates) }
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
                if chars.len() > 8 {
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
                if out.len() > 8 {
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

/// The most selective set: longest shortest member, then fewest members.
fn best_of(sets: impl IntoIterator<Item = Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    sets.into_iter()
        .filter(|s| !s.is_empty() && min_len(s) > 0)
        .max_by(|a, b| {
            let score = |s: &Vec<Vec<u8>>| (min_len(s).min(8), usize::MAX - s.len(), min_len(s));
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
        assert_eq!(lits(r"^\s*(?P<path>\S+):(?P<line>\d+): error: (?P<m>.+)"), Some(vec![
            ": error: ".into()
        ]));
        assert_eq!(lits(r"^error(\[E\d+\])?: .+"), Some(vec!["error".into()]));
    }

    #[test]
    fn case_insensitive_patterns_give_lowercase_literals() {
        assert_eq!(lits(r"(?i)out of memory"), Some(vec!["out of memory".into()]));
    }

    #[test]
    fn alternations_need_a_literal_in_every_branch() {
        assert_eq!(lits(r"(Killed|OOMKilled) process"), Some(vec![" process".into()]));
        assert_eq!(lits(r"^(FAIL|ERROR): \w+"), Some(vec!["error: ".into(), "fail: ".into()]));
        assert_eq!(lits(r"^(FAIL|\d+)"), None);
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

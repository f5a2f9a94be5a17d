//! Prints every built-in classifier pattern as a POSIX extended regex (GNU grep's
//! dialect), one per line, for comparing the classifier with `grep -E -f` on the same
//! patterns (`benches/classify-vs-grep.sh`). Patterns with no ERE equivalent
//! (look-around, lazy repetition…) are left out and counted on standard error.
//!
//! ```sh
//! cargo run --release --example ere-patterns > /tmp/patterns.ere
//! ```

use std::io::Write;
use std::process::ExitCode;

use kitefix::classify::Classifier;

fn main() -> ExitCode {
    let classifier = match Classifier::embedded() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("the built-in rules do not load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (patterns, skipped) = ere_patterns(&classifier);
    let mut out = std::io::stdout().lock();
    for p in patterns {
        if writeln!(out, "{p}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    if skipped > 0 {
        eprintln!("{skipped} patterns have no POSIX ERE equivalent and were left out");
    }
    ExitCode::SUCCESS
}

/// Every rule pattern translated to POSIX ERE (GNU grep dialect), and how many could not
/// be translated.
fn ere_patterns(classifier: &Classifier) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for rule in classifier.rules() {
        for p in rule.patterns() {
            match to_ere(p) {
                Some(e) => out.push(e),
                None => skipped += 1,
            }
        }
    }
    (out, skipped)
}

/// Translates the subset of Rust regex syntax the rules use into GNU ERE: named and
/// non-capturing groups become plain groups, Perl classes become POSIX ones, a leading
/// `(?i)` is dropped (GNU grep has no inline flags; the timing is what is compared).
fn to_ere(pattern: &str) -> Option<String> {
    let pattern = pattern.strip_prefix("(?i)").unwrap_or(pattern);
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let n = chars.next()?;
                let (outside, inside) = match n {
                    'd' => ("[0-9]", "0-9"),
                    'D' => ("[^0-9]", ""),
                    's' => ("[[:space:]]", "[:space:]"),
                    'S' => ("[^[:space:]]", ""),
                    'w' => ("[[:alnum:]_]", "[:alnum:]_"),
                    'W' => ("[^[:alnum:]_]", ""),
                    'b' => ("\\b", ""),
                    't' => ("\t", "\t"),
                    _ => ("", ""),
                };
                if in_class {
                    if !inside.is_empty() {
                        out.push_str(inside);
                    } else if "dDsSwWb".contains(n) {
                        return None;
                    } else {
                        // Escaped punctuation inside a bracket expression is literal.
                        if n == ']' || n == '[' || n == '\\' || n == '^' || n == '-' {
                            return None;
                        }
                        out.push(n);
                    }
                } else if !outside.is_empty() {
                    out.push_str(outside);
                } else if n.is_ascii_alphanumeric() {
                    return None;
                } else {
                    out.push('\\');
                    out.push(n);
                }
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                chars.next();
                match chars.next()? {
                    ':' => out.push('('),
                    'P' => {
                        if chars.next()? != '<' {
                            return None;
                        }
                        for c in chars.by_ref() {
                            if c == '>' {
                                break;
                            }
                        }
                        out.push('(');
                    }
                    _ => return None,
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next()?);
                }
                if chars.peek() == Some(&']') {
                    out.push(chars.next()?);
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_rust_syntax_to_ere() {
        assert_eq!(
            to_ere(r"^(?P<path>[^:\s]+):(?P<line>\d+): (?:error|fatal)\b").as_deref(),
            Some(r"^([^:[:space:]]+):([0-9]+): (error|fatal)\b")
        );
        assert_eq!(to_ere(r"(?i)out of memory").as_deref(), Some("out of memory"));
        assert_eq!(to_ere(r"a(?=b)"), None);
    }
}

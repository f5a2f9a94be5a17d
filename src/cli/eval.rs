//! `kitefix eval MANIFEST [--root DIR]`: scores the classifier on a labelled manifest in
//! the format of `ci-eval/manifest.jsonl` (docs/classification.md#eval-manifest).
//!
//! Figures (docs/classification.md#evaluation-figures):
//! - strict accuracy (predicted category = `category`) and acceptable accuracy (= it or
//!   one of `alt_categories`);
//! - macro-F1 over the labelled categories;
//! - key-line hit rate: the labelled `failure_chunk_or_key_line` (normalised like the
//!   log, first line if it has several, first 500 characters since excerpt lines are
//!   cut at 1000 bytes) appears inside the excerpt;
//! - failing-test recall: labelled test names found among `failing_tests` (equal after
//!   normalising case and space, or one containing the other, since frameworks print
//!   names with or without their module or file);
//! - a confusion matrix and the list of misses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::{Format, load_classifier};
use crate::classify::{Analysis, Category, Classifier, JobMeta, classify_reader};
use crate::logs::normalise::LineNormaliser;

/// Arguments of `kitefix eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Labelled manifest: one JSON object per line with `file`, `category`, and
    /// optionally `id`, `alt_categories`, `failure_chunk_or_key_line`, `failing_tests`.
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
    /// Folder the manifest's `file` paths are relative to (default: the manifest's folder).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// `text` for a report, `json` for the figures and every entry's outcome.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A folder of rule files (`*.toml`) replacing or adding to the built-in rules.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

/// One labelled log of the manifest.
#[derive(Debug, Clone, Deserialize)]
struct Entry {
    #[serde(default)]
    id: Option<String>,
    file: String,
    category: Category,
    #[serde(default)]
    alt_categories: Vec<Category>,
    #[serde(default)]
    failure_chunk_or_key_line: Option<String>,
    #[serde(default)]
    failing_tests: Vec<String>,
}

/// The outcome on one entry.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The entry's `id` (its `file` when it has none).
    pub id: String,
    /// The log, relative to the root.
    pub file: String,
    /// The labelled category.
    pub expected: Category,
    /// Other categories the label accepts.
    pub alt_categories: Vec<Category>,
    /// What the classifier said.
    pub predicted: Category,
    /// The rule that decided.
    pub rule: String,
    /// The analysis title.
    pub title: String,
    /// The analysis key line.
    pub key_line: Option<u64>,
    /// `predicted == expected`.
    pub strict: bool,
    /// `predicted` is `expected` or one of `alt_categories`.
    pub acceptable: bool,
    /// The labelled key line is in the excerpt; `None` when the entry has none.
    pub key_line_hit: Option<bool>,
    /// Labelled failing tests.
    pub tests_expected: usize,
    /// Labelled failing tests the analysis names.
    pub tests_found: usize,
    /// Labelled failing tests the analysis misses.
    pub missing_tests: Vec<String>,
}

/// The figures over the whole manifest (definitions in the module docs).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Entries scored.
    pub entries: usize,
    /// Share of entries whose category is the labelled one.
    pub strict_accuracy: f64,
    /// Share of entries whose category is the labelled one or an accepted alternative.
    pub acceptable_accuracy: f64,
    /// Mean F1 over the labelled categories.
    pub macro_f1: f64,
    /// Entries whose labelled key line is inside the excerpt.
    pub key_line_hits: usize,
    /// Entries with a labelled key line.
    pub key_line_labelled: usize,
    /// `key_line_hits / key_line_labelled`.
    pub key_line_hit_rate: f64,
    /// Labelled failing tests found.
    pub tests_found: usize,
    /// Labelled failing tests.
    pub tests_labelled: usize,
    /// `tests_found / tests_labelled`.
    pub test_recall: f64,
    /// Log bytes classified.
    pub bytes: u64,
    /// Time spent classifying.
    pub seconds: f64,
    /// expected → predicted → count.
    pub confusion: BTreeMap<Category, BTreeMap<Category, usize>>,
    /// Every entry's outcome, in manifest order.
    pub outcomes: Vec<Outcome>,
}

/// Runs `kitefix eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let classifier = load_classifier(args.rules.as_deref())?;
    let root = match &args.root {
        Some(r) => r.clone(),
        None => args.manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let report = evaluate(&classifier, &args.manifest, &root, std::io::stderr().is_terminal())?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        Format::Text => out.write_all(render_text(&report).as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Scores `classifier` on the manifest at `manifest`, whose `file` paths are relative to
/// `root`; `progress` shows a progress bar on standard error.
pub fn evaluate(
    classifier: &Classifier,
    manifest: &Path,
    root: &Path,
    progress: bool,
) -> anyhow::Result<Report> {
    let entries = read_manifest(manifest, root)?;
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(entries.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut outcomes = Vec::with_capacity(entries.len());
    for (entry, path) in &entries {
        bar.set_message(entry.file.clone());
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open log {}", path.display()))?;
        bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        let analysis = classify_reader(classifier, file, JobMeta::default(), None)
            .with_context(|| format!("cannot read log {}", path.display()))?;
        outcomes.push(score(entry, &analysis));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summarise(outcomes, bytes, started.elapsed().as_secs_f64()))
}

/// Parses every line of the manifest and checks that each log exists, before any work,
/// so that a bad manifest fails at once with `file:line: what is wrong`.
fn read_manifest(manifest: &Path, root: &Path) -> anyhow::Result<Vec<(Entry, PathBuf)>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read manifest {}", manifest.display()))?;
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", manifest.display(), i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => bail!("{at}: {e}"),
        };
        let path = root.join(&entry.file);
        if !path.is_file() {
            bail!("{at}: log file {} does not exist (is --root right?)", path.display());
        }
        entries.push((entry, path));
    }
    if entries.is_empty() {
        bail!("{}: the manifest has no entries", manifest.display());
    }
    Ok(entries)
}

fn score(entry: &Entry, a: &Analysis) -> Outcome {
    let strict = a.category == entry.category;
    let acceptable = strict || entry.alt_categories.contains(&a.category);
    let key_line_hit = entry
        .failure_chunk_or_key_line
        .as_deref()
        .and_then(label_line)
        .map(|label| a.excerpt.as_ref().is_some_and(|ex| ex.text.contains(&label)));
    let missing_tests: Vec<String> = entry
        .failing_tests
        .iter()
        .filter(|want| !a.failing_tests.iter().any(|got| same_test(want, got)))
        .cloned()
        .collect();
    Outcome {
        id: entry.id.clone().unwrap_or_else(|| entry.file.clone()),
        file: entry.file.clone(),
        expected: entry.category,
        alt_categories: entry.alt_categories.clone(),
        predicted: a.category,
        rule: a.rule.clone(),
        title: a.title.clone(),
        key_line: a.key_line,
        strict,
        acceptable,
        key_line_hit,
        tests_expected: entry.failing_tests.len(),
        tests_found: entry.failing_tests.len() - missing_tests.len(),
        missing_tests,
    }
}

/// The labelled key line as it reads after normalisation (the label is verbatim log text
/// with escapes and timestamps removed; caret-notation colours may remain in it).
fn label_line(label: &str) -> Option<String> {
    let first = label.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut out = String::new();
    let mut n = LineNormaliser::new();
    n.push(first.as_bytes(), |l| out.push_str(l.text));
    n.finish(|l| out.push_str(l.text));
    // Excerpt lines are cut at 1000 bytes; a label longer than that is compared by its
    // first 500 characters.
    let out: String = out.trim().chars().take(500).collect();
    (!out.is_empty()).then_some(out)
}

/// Test names match when equal after normalising case and whitespace, or when one
/// contains the other (`TestX/sub` vs `pkg::TestX/sub`, `Class.test` vs `file::Class::test`
/// after separators are unified).
fn same_test(want: &str, got: &str) -> bool {
    let norm = |s: &str| {
        s.to_lowercase()
            .replace('\\', "")
            .replace("::", ".")
            .replace(" > ", ".")
            .replace('#', ".")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (w, g) = (norm(want), norm(got));
    if w.is_empty() || g.is_empty() {
        return false;
    }
    if w == g || (g.len() >= 6 && w.contains(&g)) || (w.len() >= 6 && g.contains(&w)) {
        return true;
    }
    // Frameworks join suite and test titles differently (`Suite > test`, `Suite test`):
    // the labelled name's words, in order, within ours.
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (w, g) = (words(&w), words(&g));
    if w.len() < 2 {
        return false;
    }
    let mut it = g.iter();
    w.iter().all(|t| it.any(|x| x == t))
}

fn summarise(outcomes: Vec<Outcome>, bytes: u64, seconds: f64) -> Report {
    let n = outcomes.len();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let strict = outcomes.iter().filter(|o| o.strict).count();
    let acceptable = outcomes.iter().filter(|o| o.acceptable).count();
    let key_line_labelled = outcomes.iter().filter(|o| o.key_line_hit.is_some()).count();
    let key_line_hits = outcomes.iter().filter(|o| o.key_line_hit == Some(true)).count();
    let tests_labelled: usize = outcomes.iter().map(|o| o.tests_expected).sum();
    let tests_found: usize = outcomes.iter().map(|o| o.tests_found).sum();
    let mut confusion: BTreeMap<Category, BTreeMap<Category, usize>> = BTreeMap::new();
    for o in &outcomes {
        *confusion.entry(o.expected).or_default().entry(o.predicted).or_default() += 1;
    }
    // Macro-F1 over the categories that occur as labels.
    let mut f1s = Vec::new();
    for (&cat, row) in &confusion {
        let tp = row.get(&cat).copied().unwrap_or(0);
        let support: usize = row.values().sum();
        let predicted = outcomes.iter().filter(|o| o.predicted == cat).count();
        let p = ratio(tp, predicted);
        let r = ratio(tp, support);
        f1s.push(if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) });
    }
    Report {
        entries: n,
        strict_accuracy: ratio(strict, n),
        acceptable_accuracy: ratio(acceptable, n),
        macro_f1: if f1s.is_empty() { 0.0 } else { f1s.iter().sum::<f64>() / f1s.len() as f64 },
        key_line_hits,
        key_line_labelled,
        key_line_hit_rate: ratio(key_line_hits, key_line_labelled),
        tests_found,
        tests_labelled,
        test_recall: ratio(tests_found, tests_labelled),
        bytes,
        seconds,
        confusion,
        outcomes,
    }
}

fn render_text(r: &Report) -> String {
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let mut s = String::new();
    let _ = writeln!(s, "entries               {}", r.entries);
    let _ = writeln!(s, "strict accuracy       {}", pct(r.strict_accuracy));
    let _ = writeln!(s, "acceptable accuracy   {}", pct(r.acceptable_accuracy));
    let _ = writeln!(s, "macro-F1              {:.3}", r.macro_f1);
    let _ = writeln!(
        s,
        "key-line hits         {} ({}/{})",
        pct(r.key_line_hit_rate),
        r.key_line_hits,
        r.key_line_labelled
    );
    let _ = writeln!(
        s,
        "failing-test recall   {} ({}/{})",
        pct(r.test_recall),
        r.tests_found,
        r.tests_labelled
    );
    let mb = r.bytes as f64 / 1e6;
    let _ = writeln!(s, "input                 {mb:.1} MB in {:.2} s", r.seconds);

    let _ = writeln!(s, "\nconfusion (rows: labelled, columns: predicted)");
    let cols: Vec<Category> = Category::ALL
        .into_iter()
        .filter(|c| r.confusion.contains_key(c) || r.outcomes.iter().any(|o| o.predicted == *c))
        .collect();
    let _ = write!(s, "{:>11}", "");
    for c in &cols {
        let _ = write!(s, " {:>5}", &c.as_str()[..c.as_str().len().min(5)]);
    }
    let _ = writeln!(s);
    for (label, row) in &r.confusion {
        let _ = write!(s, "{:>11}", label.as_str());
        for c in &cols {
            match row.get(c) {
                Some(n) => {
                    let _ = write!(s, " {n:>5}");
                }
                None => {
                    let _ = write!(s, " {:>5}", ".");
                }
            }
        }
        let _ = writeln!(s);
    }

    let misses: Vec<&Outcome> = r
        .outcomes
        .iter()
        .filter(|o| !o.acceptable || o.key_line_hit == Some(false) || !o.missing_tests.is_empty())
        .collect();
    if !misses.is_empty() {
        let _ = writeln!(s, "\nmisses ({}):", misses.len());
    }
    for o in misses {
        let mut what = Vec::new();
        if !o.acceptable {
            what.push(format!("category {} (labelled {})", o.predicted, o.expected));
        } else if !o.strict {
            what.push(format!("category {} (acceptable; labelled {})", o.predicted, o.expected));
        }
        if o.key_line_hit == Some(false) {
            what.push("key line outside excerpt".to_owned());
        }
        if !o.missing_tests.is_empty() {
            what.push(format!("tests {}/{} found", o.tests_found, o.tests_expected));
        }
        let key = o.key_line.map(|k| k.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "  {} {}: {}", o.id, o.file, what.join("; "));
        let _ = writeln!(s, "      rule {} line {key}: {}", o.rule, o.title);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_match_across_framework_spellings() {
        assert!(same_test("pkg::TestX/sub_case", "TestX/sub_case"));
        assert!(same_test("a.py::T::test_x", "a.py::T::test_x"));
        assert!(same_test("io.Foo > bar", "io.Foo > bar"));
        assert!(!same_test("test_a", "test_b"));
        assert!(!same_test("test_alpha", "a"));
        assert!(same_test("Suite (en) > Use X", "Suite Suite (en) Use X Solution 1"));
        assert!(!same_test("Suite > Use X", "Suite Use Y"));
    }

    #[test]
    fn labels_are_normalised_like_the_log() {
        assert_eq!(label_line("^[[31mFAIL^[[0m: t").as_deref(), Some("FAIL: t"));
        assert_eq!(label_line("  \nsecond line\nthird").as_deref(), Some("second line"));
        assert_eq!(label_line("   "), None);
    }

    #[test]
    fn bad_manifest_lines_name_file_and_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = dir.path().join("m.jsonl");
        std::fs::write(dir.path().join("a.log"), "x\n").expect("write");
        std::fs::write(
            &manifest,
            "{\"file\": \"a.log\", \"category\": \"test\"}\n{\"file\": \"a.log\", \"category\": \"flaky\"}\n",
        )
        .expect("write");
        let e = read_manifest(&manifest, dir.path()).unwrap_err().to_string();
        assert!(e.contains("m.jsonl:2: unknown variant `flaky`"), "{e}");

        std::fs::write(&manifest, "{\"file\": \"b.log\", \"category\": \"test\"}\n")
            .expect("write");
        let e = read_manifest(&manifest, dir.path()).unwrap_err().to_string();
        assert!(e.contains("m.jsonl:1: log file") && e.contains("b.log does not exist"), "{e}");

        std::fs::write(&manifest, "{\"category\": \"test\"}\n").expect("write");
        let e = read_manifest(&manifest, dir.path()).unwrap_err().to_string();
        assert!(e.contains("m.jsonl:1: missing field `file`"), "{e}");
    }

    #[test]
    fn figures_follow_their_definitions() {
        let o = |expected, alt: Vec<Category>, predicted, hit| Outcome {
            id: String::new(),
            file: String::new(),
            expected,
            acceptable: expected == predicted || alt.contains(&predicted),
            alt_categories: alt,
            predicted,
            rule: String::new(),
            title: String::new(),
            key_line: None,
            strict: expected == predicted,
            key_line_hit: hit,
            tests_expected: 0,
            tests_found: 0,
            missing_tests: vec![],
        };
        use Category::*;
        let r = summarise(
            vec![
                o(Test, vec![], Test, Some(true)),
                o(Test, vec![Timeout], Timeout, Some(false)),
                o(Lint, vec![], Test, None),
                o(Lint, vec![], Lint, Some(true)),
            ],
            0,
            1.0,
        );
        assert_eq!(r.strict_accuracy, 0.5);
        assert_eq!(r.acceptable_accuracy, 0.75);
        assert_eq!((r.key_line_hits, r.key_line_labelled), (2, 3));
        // test: P = 1/2, R = 1/2 → 0.5; lint: P = 1, R = 1/2 → 2/3.
        assert!((r.macro_f1 - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-9);
    }
}

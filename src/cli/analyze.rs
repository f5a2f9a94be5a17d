//! `kitefix analyze [--format text|json] [--exit-status N] [--signal-reason R] FILE|-`:
//! classifies one log offline and prints the analysis.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Format, load_classifier};
use crate::classify::{Analysis, JobMeta, classify_reader};
use crate::logs::redact::Redactor;

/// Arguments of `kitefix analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// The raw log to classify; `-` reads standard input.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
    /// `text` for a readable report, `json` for the analysis contract.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The job's exit status, as the CI system reports it (137 = SIGKILL).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub exit_status: Option<i32>,
    /// Buildkite's `signal_reason` for the job (`agent_stop`, `cancel`, …).
    #[arg(long, value_name = "R")]
    pub signal_reason: Option<String>,
    /// Buildkite's job `state` when it says more than "failed" (`timed_out`).
    #[arg(long, value_name = "STATE")]
    pub job_state: Option<String>,
    /// A folder of rule files (`*.toml`) replacing or adding to the built-in rules.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Print the normalised lines (`number<TAB>section<TAB>text`) instead of classifying:
    /// what the rules see.
    #[arg(long, hide = true)]
    pub dump_lines: bool,
}

/// Runs `kitefix analyze`.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let classifier = load_classifier(args.rules.as_deref())?;
    if args.dump_lines {
        return dump_lines(&args.input);
    }
    let meta = JobMeta {
        exit_status: args.exit_status,
        signal_reason: args.signal_reason.clone(),
        state: args.job_state.clone(),
    };
    let analysis = if args.input.as_os_str() == "-" {
        classify_reader(&classifier, std::io::stdin().lock(), meta, Some(redactor()))
            .context("cannot read the log from standard input")?
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        classify_reader(&classifier, file, meta, Some(redactor()))
            .with_context(|| format!("cannot read {}", args.input.display()))?
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &analysis)?;
            writeln!(out)?;
        }
        Format::Text => out.write_all(render_text(&analysis).as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn dump_lines(input: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::Read as _;
    let mut reader: Box<dyn std::io::Read> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(input)
                .with_context(|| format!("cannot open {}", input.display()))?,
        )
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut normaliser = crate::logs::normalise::LineNormaliser::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut result = Ok(());
    let mut print = |l: crate::logs::normalise::LogLine<'_>| {
        if result.is_ok() {
            result = writeln!(out, "{}\t{}\t{}", l.number, l.section.unwrap_or(""), l.text);
        }
    };
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        normaliser.push(&buf[..n], &mut print);
    }
    normaliser.finish(&mut print);
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The human report: verdict, the key line in its context, tests, locations.
pub fn render_text(a: &Analysis) -> String {
    let mut s = String::new();
    let _ =
        writeln!(s, "category:   {} (confidence {:.2}, rule {})", a.category, a.confidence, a.rule);
    let _ = writeln!(s, "title:      {}", a.title);
    match a.key_line {
        Some(n) => {
            let _ = writeln!(s, "key line:   {n}");
        }
        None => {
            let _ = writeln!(s, "key line:   (none)");
        }
    }
    if let Some(ex) = &a.excerpt {
        let _ = writeln!(s, "\nlines {}-{}:", ex.start, ex.end);
        let width = ex.end.to_string().len();
        for (i, line) in ex.text.split('\n').enumerate() {
            let n = ex.start + i as u64;
            let mark = if Some(n) == a.key_line { '>' } else { ' ' };
            let _ = writeln!(s, "{mark} {n:>width$} | {line}");
        }
    }
    if !a.failing_tests.is_empty() {
        let _ = writeln!(s, "\nfailing tests ({}):", a.failing_tests.len());
        for t in &a.failing_tests {
            let _ = writeln!(s, "  - {t}");
        }
    }
    if !a.locations.is_empty() {
        let _ = writeln!(s, "\nlocations:");
        for l in &a.locations {
            let col = l.column.map(|c| format!(":{c}")).unwrap_or_default();
            let _ = writeln!(s, "  - {}:{}{col}  {}", l.path, l.line, l.message);
        }
    }
    if !a.secondary.is_empty() {
        let _ = writeln!(s, "\nalso seen:");
        for x in &a.secondary {
            let at = x.key_line.map(|n| format!(" at line {n}")).unwrap_or_default();
            let _ = writeln!(s, "  - {} ({}){at}", x.category, x.rule);
        }
    }
    s
}

/// Offline there is no job env to redact by value; secret-shaped strings still go.
fn redactor() -> crate::classify::LineTransform<'static> {
    Redactor::patterns_only().line_redactor().into_transform()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_report_marks_the_key_line() {
        let a = Analysis {
            category: crate::classify::Category::Test,
            confidence: 0.9,
            rule: "r".into(),
            title: "t".into(),
            key_line: Some(11),
            excerpt: Some(crate::classify::Excerpt { start: 10, end: 12, text: "a\nb\nc".into() }),
            failing_tests: vec!["x::y".into()],
            locations: vec![],
            secondary: vec![],
        };
        let text = render_text(&a);
        assert!(text.contains("> 11 | b"), "{text}");
        assert!(text.contains("  10 | a"), "{text}");
        assert!(text.contains("  - x::y"), "{text}");
    }
}

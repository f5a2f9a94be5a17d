//! Rules as data: the TOML rule files under `config/rules/`, compiled into the binary, and
//! a user's folder of TOML files that replaces (same `id`) or adds (new `id`) rules.
//!
//! A rule file is a list of `[[rule]]` tables:
//!
//! ```toml
//! [[rule]]
//! id = "rust.rustc-error"            # unique; a user rule with the same id replaces it
//! category = "compile"                # docs/design.md#categories
//! priority = 80                       # higher wins; see config/rules/README.md
//! pattern = '^error(\[E\d+\])?: (?P<message>.+)'   # or `patterns = [...]`, any may match
//! exclude = ['^error: aborting due to']             # a line matching one is not a hit
//! title = "rustc: {message}"          # `{capture}` or `{text}` (the whole line)
//! pick = "first"                      # which hit of a step wins: "first" or "last"
//! follow = { pattern = '^\s*--> (?P<path>[^:]+):(?P<line>\d+):(?P<column>\d+)', within = 4 }
//! ```
//!
//! Patterns see the line without the prefixes CI systems and log harnesses put in front
//! of a tool's own output (`##[error]`, mozharness's `12:00:00     INFO - `, Taskcluster's
//! `[task 2025-…Z] `), so that `^` anchors at the tool's text; `raw = true` matches the
//! line as it is instead.
//!
//! A line that calls itself a warning (`warning:`, `[WARN]`, `UserWarning:`) did not fail
//! the job, so rules skip it unless they say `warnings = true`. A `follow` with
//! `required = true` makes the hit count only when the follow-up line appears.
//!
//! `scope = ['^=== RUN\s+(?P<current>\S+)']` remembers the last line matching a scope
//! pattern; its captures fill the rule's templates too (the test that was running when
//! a crash was reported).
//!
//! Captures with a meaning: `test` (a failing test's name; `test = "{class}.{name}"`
//! builds it from other captures instead), `path`, `line`, `column` and `message` (a
//! location in the project's source). `action = "step-end"` marks a CI system's "this
//! command finished" line (capture `status` holds the exit status), `action =
//! "step-start"` the start of a CI step; both delimit the steps the engine scores hits by,
//! and neither is ever a key line. `action = "wrapper"` marks lines that only repeat that
//! something failed (`make: *** [all] Error 2`), so that they are never chosen either.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use super::analysis::Category;

/// The embedded rule files, one per tool family: (file name, contents).
pub const EMBEDDED_RULES: &[(&str, &str)] = &[
    ("ci.toml", include_str!("../../config/rules/ci.toml")),
    ("infra.toml", include_str!("../../config/rules/infra.toml")),
    ("rust.toml", include_str!("../../config/rules/rust.toml")),
    ("go.toml", include_str!("../../config/rules/go.toml")),
    ("python.toml", include_str!("../../config/rules/python.toml")),
    ("javascript.toml", include_str!("../../config/rules/javascript.toml")),
    ("jvm.toml", include_str!("../../config/rules/jvm.toml")),
    ("ruby.toml", include_str!("../../config/rules/ruby.toml")),
    ("php.toml", include_str!("../../config/rules/php.toml")),
    ("c-cpp.toml", include_str!("../../config/rules/c-cpp.toml")),
    ("dotnet.toml", include_str!("../../config/rules/dotnet.toml")),
    ("swift.toml", include_str!("../../config/rules/swift.toml")),
    ("beam.toml", include_str!("../../config/rules/beam.toml")),
    ("haskell.toml", include_str!("../../config/rules/haskell.toml")),
    ("docker.toml", include_str!("../../config/rules/docker.toml")),
    ("bazel.toml", include_str!("../../config/rules/bazel.toml")),
    ("shell.toml", include_str!("../../config/rules/shell.toml")),
    ("docs-lint.toml", include_str!("../../config/rules/docs-lint.toml")),
    ("other-langs.toml", include_str!("../../config/rules/other-langs.toml")),
    ("generic.toml", include_str!("../../config/rules/generic.toml")),
];

/// Why a rule file could not be used. Each variant names the file and, where there is
/// one, the rule, so a user can fix their own rules folder.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The folder or a file in it could not be read.
    #[error("cannot read rules from {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the shape of a rule file.
    #[error("{file}: {source}")]
    Toml {
        /// The rule file.
        file: String,
        /// The parser's message, with the line and column.
        source: toml::de::Error,
    },
    /// A pattern is not a valid regular expression.
    #[error("{file}: rule `{rule}`: bad pattern `{pattern}`: {source}")]
    Regex {
        /// The rule file.
        file: String,
        /// The rule's id.
        rule: String,
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's message.
        source: Box<regex::Error>,
    },
    /// The rule is well-formed TOML but cannot work as written.
    #[error("{file}: rule `{rule}`: {reason}")]
    Invalid {
        /// The rule file.
        file: String,
        /// The rule's id.
        rule: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a matching line means to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    /// The line is (evidence of) why the job failed.
    #[default]
    Cause,
    /// A CI system's "the command finished" line; a `status` capture other than 0 (or
    /// none) means it failed.
    StepEnd,
    /// A CI system's "a step starts" line; reaching it without a failing step-end means
    /// the previous step passed.
    StepStart,
    /// A line that reports a failure without saying what it was (`make: *** … Error 2`,
    /// `npm ERR! code ELIFECYCLE`): never a key line, not even a fallback one.
    Wrapper,
}

/// Which hit of a rule within one CI step is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Pick {
    /// The first: compilers' later errors are often consequences of the first.
    #[default]
    First,
    /// The last: summaries printed after reruns, the final state of a retry loop.
    Last,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowSpec {
    pattern: String,
    #[serde(default = "default_within")]
    within: u32,
    #[serde(default)]
    repeat: bool,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    join: Option<String>,
}

fn default_within() -> u32 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    action: Action,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    pick: Pick,
    #[serde(default)]
    confidence: Option<f32>,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    follow: Option<FollowSpec>,
    #[serde(default)]
    context: Option<[u32; 2]>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    warnings: bool,
    #[serde(default)]
    scope: Vec<String>,
}

/// A title or test-name template: literal text with `{capture}` holes.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    Hole(String),
}

impl Template {
    fn parse(src: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| format!("unclosed `{{` in `{src}`"))?;
            let name = &after[..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad placeholder `{{{name}}}` in `{src}`"));
            }
            parts.push(Part::Hole(name.to_owned()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    fn holes(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Hole(h) => Some(h.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Fills the holes; `None` when a hole's capture did not take part in the match.
    pub(crate) fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Hole(h) => out.push_str(lookup(h)?.trim()),
            }
        }
        Some(out.trim().to_owned())
    }
}

/// A follow-up pattern looked for in the lines after a hit (rustc's ` --> file:line:col`
/// under `error[E…]`, the test list under a "Failed tests:" header).
#[derive(Debug, Clone)]
pub(crate) struct Follow {
    pub(crate) pattern: Regex,
    pub(crate) within: u32,
    pub(crate) repeat: bool,
    /// The hit only counts once the follow-up line is seen (rustc's `error: …` is only a
    /// rustc error when ` --> file:line:col` follows).
    pub(crate) required: bool,
    /// Join mode: the named capture of consecutive follow-up lines is accumulated
    /// (space-separated) until a line where the capture `end` takes part; the templates
    /// then see the joined text under that name (Mocha's multi-line test titles).
    pub(crate) join: Option<String>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) id: String,
    pub(crate) category: Category,
    pub(crate) action: Action,
    pub(crate) priority: i32,
    pub(crate) patterns: Vec<Regex>,
    pub(crate) exclude: Vec<Regex>,
    pub(crate) title: Template,
    pub(crate) pick: Pick,
    pub(crate) confidence: f32,
    pub(crate) test: Option<Template>,
    pub(crate) follow: Option<Follow>,
    pub(crate) before: u32,
    pub(crate) after: u32,
    /// Match the line as it is, not the view without CI prefixes (`##[error]`, …).
    pub(crate) raw: bool,
    /// The rule may match lines that call themselves warnings (see the engine's veto).
    pub(crate) warnings: bool,
    /// Scope patterns: the captures of the last line matching one are available to the
    /// rule's templates (`TEST-START | t`, `=== RUN TestX`: the test a crash happened in).
    pub(crate) scope: Vec<Regex>,
    /// The rules file it came from: which one won when a user file replaced a rule.
    #[cfg_attr(not(test), expect(dead_code, reason = "asserted by the override tests"))]
    pub(crate) file: String,
}

impl Rule {
    /// The rule's id.
    #[cfg(test)]
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The category a hit of this rule gives the job.
    #[cfg(test)]
    pub(crate) fn category(&self) -> Category {
        self.category
    }

    /// The rule's patterns as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(Regex::as_str)
    }

    /// The file the rule came from.
    #[cfg(test)]
    pub(crate) fn file(&self) -> &str {
        &self.file
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, priority {})", self.id, self.category, self.priority)
    }
}

/// Default excerpt shape: more lines before the key line than after, because the lines
/// leading to a failure (the command, the traceback) explain it more often than the
/// lines after it; 20 + 1 + 19 = the contract's 40-line maximum.
const DEFAULT_CONTEXT: [u32; 2] = [20, 19];

/// Parses one rule file into compiled rules (disabled ones come back as ids to remove).
pub(crate) fn parse_file(file: &str, text: &str) -> Result<Vec<Result<Rule, String>>, RuleError> {
    let parsed: RuleFile =
        toml::from_str(text).map_err(|source| RuleError::Toml { file: file.to_owned(), source })?;
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(parsed.rules.len());
    for spec in parsed.rules {
        if seen.insert(spec.id.clone(), ()).is_some() {
            return Err(invalid(file, &spec.id, "the id is used twice in this file".into()));
        }
        if spec.disabled {
            out.push(Err(spec.id));
            continue;
        }
        out.push(Ok(compile(file, spec)?));
    }
    Ok(out)
}

fn invalid(file: &str, rule: &str, reason: String) -> RuleError {
    RuleError::Invalid { file: file.to_owned(), rule: rule.to_owned(), reason }
}

fn compile(file: &str, spec: RuleSpec) -> Result<Rule, RuleError> {
    let id = spec.id;
    if id.trim().is_empty() {
        return Err(invalid(file, &id, "the id is empty".into()));
    }
    let regex = |pattern: &str| {
        Regex::new(pattern).map_err(|source| RuleError::Regex {
            file: file.to_owned(),
            rule: id.clone(),
            pattern: pattern.to_owned(),
            source: Box::new(source),
        })
    };
    let mut sources: Vec<String> = spec.pattern.into_iter().collect();
    sources.extend(spec.patterns);
    if sources.is_empty() {
        return Err(invalid(file, &id, "it has no `pattern` or `patterns`".into()));
    }
    let patterns = sources.iter().map(|p| regex(p)).collect::<Result<Vec<_>, _>>()?;
    let exclude = spec.exclude.iter().map(|p| regex(p)).collect::<Result<Vec<_>, _>>()?;
    let scope = spec.scope.iter().map(|p| regex(p)).collect::<Result<Vec<_>, _>>()?;
    let follow = match spec.follow {
        Some(f) => Some(Follow {
            pattern: regex(&f.pattern)?,
            within: f.within,
            repeat: f.repeat,
            required: f.required,
            join: f.join,
        }),
        None => None,
    };
    let category = match (spec.action, spec.category) {
        (Action::Cause, Some(c)) => c,
        (Action::Cause, None) => {
            return Err(invalid(file, &id, "it has no `category`".into()));
        }
        (_, c) => c.unwrap_or(Category::Other),
    };
    let names: Vec<&str> = patterns
        .iter()
        .chain(follow.as_ref().map(|f| &f.pattern))
        .chain(scope.iter())
        .flat_map(|r| r.capture_names().flatten())
        .chain(["text"])
        .collect();
    let template = |src: &str, what: &str| -> Result<Template, RuleError> {
        let t = Template::parse(src).map_err(|e| invalid(file, &id, format!("{what}: {e}")))?;
        if let Some(hole) = t.holes().find(|h| !names.contains(h)) {
            return Err(invalid(
                file,
                &id,
                format!("{what} uses `{{{hole}}}` but no pattern has a capture named `{hole}`"),
            ));
        }
        Ok(t)
    };
    let title = template(spec.title.as_deref().unwrap_or("{text}"), "title")?;
    let test = match spec.test {
        Some(t) => Some(template(&t, "test")?),
        None if names.contains(&"test") => Some(template("{test}", "test")?),
        None => None,
    };
    let confidence = spec.confidence.unwrap_or(0.8);
    if !(0.0..=1.0).contains(&confidence) {
        return Err(invalid(file, &id, format!("confidence {confidence} is not in 0.0..=1.0")));
    }
    let [before, after] = spec.context.unwrap_or(DEFAULT_CONTEXT);
    if before + after + 1 > super::MAX_EXCERPT_LINES {
        return Err(invalid(
            file,
            &id,
            format!("context {before} + {after} + 1 exceeds {} lines", super::MAX_EXCERPT_LINES),
        ));
    }
    Ok(Rule {
        id,
        category,
        action: spec.action,
        priority: spec.priority,
        patterns,
        exclude,
        title,
        pick: spec.pick,
        confidence,
        test,
        follow,
        before,
        after,
        raw: spec.raw,
        warnings: spec.warnings,
        scope,
        file: file.to_owned(),
    })
}

/// An ordered collection of rules: the embedded ones, then a user's.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// The rules compiled into the binary.
    pub(crate) fn embedded() -> Result<Self, RuleError> {
        let mut set = RuleSet::default();
        for (file, text) in EMBEDDED_RULES {
            set.merge(file, text)?;
        }
        Ok(set)
    }

    /// Adds the rules of one file: a rule whose id exists replaces it, a new id is added,
    /// `disabled = true` removes the rule of that id.
    pub(crate) fn merge(&mut self, file: &str, text: &str) -> Result<(), RuleError> {
        for rule in parse_file(file, text)? {
            match rule {
                Ok(rule) => match self.rules.iter_mut().find(|r| r.id == rule.id) {
                    Some(slot) => *slot = rule,
                    None => self.rules.push(rule),
                },
                Err(disabled_id) => self.rules.retain(|r| r.id != disabled_id),
            }
        }
        Ok(())
    }

    /// Merges every `*.toml` file of `dir`, in file-name order.
    pub(crate) fn merge_dir(&mut self, dir: &Path) -> Result<(), RuleError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RuleError::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            self.merge(&path.display().to_string(), &text)?;
        }
        Ok(())
    }

    /// The rules, in file order.
    pub(crate) fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_parses() {
        let set = RuleSet::embedded().expect("embedded rules are valid");
        assert!(set.rules().len() > 100, "only {} rules", set.rules().len());
        let mut ids: Vec<&str> = set.rules().iter().map(|r| r.id()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "rule ids are unique across files");
    }

    #[test]
    fn user_rule_replaces_adds_and_disables() {
        let mut set = RuleSet::embedded().expect("embedded rules are valid");
        let n = set.rules().len();
        let some_id = set.rules()[0].id().to_owned();
        let last_id = set.rules()[n - 1].id().to_owned();
        let user = format!(
            "[[rule]]\nid = \"{some_id}\"\ncategory = \"other\"\npattern = 'replaced'\n\
             [[rule]]\nid = \"mine.new\"\ncategory = \"lint\"\npattern = 'house style'\n\
             [[rule]]\nid = \"{last_id}\"\ndisabled = true\npattern = 'x'\n"
        );
        set.merge("mine.toml", &user).expect("valid user file");
        assert_eq!(set.rules().len(), n);
        let replaced = set.rules().iter().find(|r| r.id() == some_id).expect("still there");
        assert_eq!(replaced.category(), Category::Other);
        assert_eq!(replaced.file(), "mine.toml");
        assert!(set.rules().iter().any(|r| r.id() == "mine.new"));
        assert!(!set.rules().iter().any(|r| r.id() == last_id));
    }

    #[test]
    fn errors_name_the_file_and_the_rule() {
        let mut set = RuleSet::default();
        let bad_regex = "[[rule]]\nid = \"x.bad\"\ncategory = \"test\"\npattern = '(unclosed'\n";
        let e = set.merge("team.toml", bad_regex).unwrap_err().to_string();
        assert!(e.starts_with("team.toml: rule `x.bad`: bad pattern `(unclosed`"), "{e}");

        let no_cat = "[[rule]]\nid = \"x.nocat\"\npattern = 'a'\n";
        let e = set.merge("team.toml", no_cat).unwrap_err().to_string();
        assert_eq!(e, "team.toml: rule `x.nocat`: it has no `category`");

        let hole =
            "[[rule]]\nid = \"x.hole\"\ncategory = \"test\"\npattern = 'a'\ntitle = '{nope}'\n";
        let e = set.merge("team.toml", hole).unwrap_err().to_string();
        assert!(e.contains("rule `x.hole`: title uses `{nope}`"), "{e}");

        let typo = "[[rule]]\nid = \"x.typo\"\ncategory = \"test\"\npatern = 'a'\n";
        let e = set.merge("team.toml", typo).unwrap_err().to_string();
        assert!(e.starts_with("team.toml: ") && e.contains("patern"), "{e}");

        let bad_cat = "[[rule]]\nid = \"x.cat\"\ncategory = \"flaky\"\npattern = 'a'\n";
        let e = set.merge("team.toml", bad_cat).unwrap_err().to_string();
        assert!(e.contains("flaky"), "{e}");
    }

    #[test]
    fn merge_dir_reports_the_offending_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("a.toml"),
            "[[rule]]\nid = 'a'\ncategory = 'lint'\npattern = 'x'\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("b.toml"), "[[rule]]\nid = 'b'\npattern = 'x'\n")
            .expect("write");
        std::fs::write(dir.path().join("notes.md"), "not a rule file").expect("write");
        let mut set = RuleSet::default();
        let e = set.merge_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("b.toml: rule `b`: it has no `category`"), "{e}");
        let e = set.merge_dir(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(e.starts_with("cannot read rules from "), "{e}");
    }

    #[test]
    fn templates_render_captures() {
        let t = Template::parse("{class}.{name} failed").expect("valid");
        let got = t.render(|h| Some(if h == "class" { "A".into() } else { " b ".into() }));
        assert_eq!(got.as_deref(), Some("A.b failed"));
        assert_eq!(t.render(|_| None), None);
        assert!(Template::parse("{unclosed").is_err());
    }
}

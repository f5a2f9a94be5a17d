//! Secret redaction, applied to every log line before it is stored or leaves the process.
//!
//! Two layers, both replacing what they find with [`REDACTED`]:
//!
//! 1. **Exact values**: every value of the job's env of [`MIN_SECRET_LEN`] or more
//!    characters, and any secret the caller adds (our own API tokens), together with the
//!    forms a program is likely to print them in: base64 (at every byte alignment, so a
//!    value inside a longer encoded string such as `user:password` is still caught), URL
//!    encoding, and JSON / Go `%q` escaping. The buildkite-agent only redacts values whose
//!    env *names* match its patterns, only verbatim, and only for values of 6+ bytes
//!    (docs/buildkite.md#agent-redaction), so logs we fetch can still hold secrets.
//! 2. **Secret-shaped strings**: GitHub, Buildkite, AWS, Slack and JWT tokens, private-key
//!    blocks (which span lines, so the streaming [`LineRedactor`] keeps state), `password=`
//!    style assignments, `Authorization` headers and credentials in URLs. The rules are our
//!    own, informed by the gitleaks/TruffleHog families of docs/security.md#secret-shapes but
//!    deliberately more permissive on length (GitHub's newer token formats vary).
//!
//! Speed: one Aho–Corasick automaton (ASCII case-insensitive) holds the literal triggers of
//! every rule plus every exact value form, so a line without a secret costs one scan and
//! is returned borrowed. Only lines with a hit run the rules' regexes.
//!
//! Lines must already be ANSI-stripped (the normaliser does that); that is what makes a
//! secret split by colour codes visible as one string.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use regex::Regex;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};

use super::literal_scan::LiteralScanner;

/// What every secret is replaced with (the same marker the buildkite-agent uses).
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not redacted as exact values: they occur everywhere by
/// chance. The buildkite-agent's `LengthMin` is the same (docs/buildkite.md#agent-redaction).
pub(crate) const MIN_SECRET_LEN: usize = 6;

/// A private-key block longer than this many lines ends anyway, so that a stray `BEGIN`
/// marker cannot hide the rest of a log. An RSA-16384 PEM body is about 190 lines.
const MAX_KEY_BLOCK_LINES: usize = 400;

/// Bound on the re-scans of a line whose redaction completed a new match (see
/// [`LineRedactor::redact_line`]); in practice one extra pass settles it.
const MAX_EXTRA_PASSES: usize = 4;

/// Env names whose values are build metadata printed all over a log (paths, branch,
/// commit, labels) and never credentials. Redacting them would turn every file path
/// under the checkout into `[REDACTED]/src/…` and break annotations; their values still
/// go through the secret-shaped rules. Exact names only: `BUILDKITE_AGENT_ACCESS_TOKEN`
/// and friends stay secret.
const PUBLIC_ENV_NAMES: &[&str] = &[
    "BUILDKITE",
    "BUILDKITE_AGENT_ID",
    "BUILDKITE_AGENT_NAME",
    "BUILDKITE_BRANCH",
    "BUILDKITE_BUILD_CHECKOUT_PATH",
    "BUILDKITE_BUILD_ID",
    "BUILDKITE_BUILD_NUMBER",
    "BUILDKITE_BUILD_PATH",
    "BUILDKITE_BUILD_URL",
    "BUILDKITE_COMMAND",
    "BUILDKITE_COMMIT",
    "BUILDKITE_GROUP_ID",
    "BUILDKITE_GROUP_KEY",
    "BUILDKITE_GROUP_LABEL",
    "BUILDKITE_JOB_ID",
    "BUILDKITE_LABEL",
    "BUILDKITE_ORGANIZATION_SLUG",
    "BUILDKITE_PIPELINE_DEFAULT_BRANCH",
    "BUILDKITE_PIPELINE_ID",
    "BUILDKITE_PIPELINE_NAME",
    "BUILDKITE_PIPELINE_PROVIDER",
    "BUILDKITE_PIPELINE_SLUG",
    "BUILDKITE_PULL_REQUEST",
    "BUILDKITE_PULL_REQUEST_BASE_BRANCH",
    "BUILDKITE_REBUILT_FROM_BUILD_ID",
    "BUILDKITE_SOURCE",
    "BUILDKITE_STEP_ID",
    "BUILDKITE_STEP_KEY",
    "BUILDKITE_TAG",
    "BUILDKITE_TRIGGERED_FROM_BUILD_ID",
    "BUILDKITE_TRIGGERED_FROM_BUILD_PIPELINE_SLUG",
    "CI",
    "HOME",
    "PATH",
    "PWD",
];

/// Why a [`Redactor`] could not be built. Callers must then post no excerpt at all
/// (fail closed, docs/security.md#fail-closed).
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// The matcher for the secret values was too large to build.
    #[error("could not build the secret matcher: {0}")]
    Matcher(#[from] aho_corasick::BuildError),
}

/// A secret-shaped-string rule. The discriminant is a bit index in [`RuleSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    GitHub,
    GitHubPat,
    Buildkite,
    AwsKeyId,
    Slack,
    SlackWebhook,
    Jwt,
    PrivateKey,
    Assignment,
    Authorization,
    UrlCredentials,
}

/// Literal strings (matched ASCII case-insensitively) that must occur for a rule to match.
/// The regexes below are only run on lines where one of these occurred.
const RULE_TRIGGERS: &[(Rule, &[&str])] = &[
    (Rule::GitHub, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
    (Rule::GitHubPat, &["github_pat_"]),
    (Rule::Buildkite, &["bkua_"]),
    (Rule::AwsKeyId, &["akia", "asia", "abia", "acca", "a3t"]),
    (Rule::Slack, &["xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"]),
    (Rule::SlackWebhook, &["hooks.slack.com/"]),
    (Rule::Jwt, &["eyj"]),
    (Rule::PrivateKey, &["-----begin"]),
    (
        Rule::Assignment,
        &[
            "password",
            "passwd",
            "passphrase",
            "secret",
            "token",
            "api_key",
            "api-key",
            "apikey",
            "access_key",
            "access-key",
            "accesskey",
            "private_key",
            "private-key",
            "credential",
        ],
    ),
    (Rule::Authorization, &["authorization", "bearer"]),
    (Rule::UrlCredentials, &["://"]),
];

/// Authorization schemes, which are never the secret themselves.
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token", "bot", "digest", "negotiate"];

/// The compiled rule regexes, shared by every redactor.
struct Patterns {
    github: Regex,
    github_pat: Regex,
    buildkite: Regex,
    aws_key_id: Regex,
    slack: Regex,
    slack_webhook: Regex,
    jwt: Regex,
    key_begin: Regex,
    key_end: Regex,
    assignment: Regex,
    flag: Regex,
    authorization: Regex,
    url_credentials: Regex,
}

fn regex(pattern: &str) -> Regex {
    // The patterns are constants of this file, covered by the tests below.
    Regex::new(pattern).expect("redaction patterns are valid regexes")
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    // Classic tokens are 36 characters after the prefix, but the newer stateless `ghs_`
    // installation tokens contain dots (docs/security.md#secret-shapes): accept dotted runs.
    github: regex(r"gh[pousr]_[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*"),
    github_pat: regex(r"github_pat_[A-Za-z0-9_]{20,}"),
    buildkite: regex(r"bkua_[A-Za-z0-9]{20,}"),
    aws_key_id: regex(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
    slack: regex(r"xox[abposr]-[A-Za-z0-9\-]{10,}"),
    slack_webhook: regex(
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9+/_\-]+)",
    ),
    jwt: regex(r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*"),
    key_begin: regex(r"-----BEGIN[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),
    key_end: regex(r"-----END[ A-Z0-9_\-]{0,100}-----"),
    // `name=value`, `name: value`, `"name": "value"`, `name => 'value'`, and the
    // backslash-escaped quotes of JSON inside a string. The name must *end* with the
    // keyword (plus an optional plural `s`), so `tokenizers==0.13` and
    // `password_file=/run/x` are left alone.
    assignment: regex(
        r#"(?i)(?:password|passwd|passphrase|secret(?:[_\-]?key(?:[_\-]?base)?)?|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|credentials?)s?(?:\\?["'])?\s*(?:(?P<eq>=>|:=|=)|:)(?P<gap>\s*)(?:\\"(?P<v4>(?:[^"\\]|\\[^"])*)\\"|"(?P<v1>[^"]*)"|'(?P<v2>[^']*)'|(?P<v3>[^\s"',;&<>)}]+))"#,
    ),
    // `--password value` (the `--password=value` form is an assignment).
    flag: regex(
        r"(?i)--[A-Za-z0-9\-]*(?:password|passwd|passphrase|secret|token|api-key|apikey)\s+(?P<s>[^\s\-]\S*)",
    ),
    // After `Authorization:` any credential counts, however short; a bare `Bearer x` in
    // prose ("bearer token required") only when it looks like a token (8+ characters).
    authorization: regex(
        r#"(?i)authorization\\?["']?\s*[:=]\s*\\?["']?\s*(?:(?:bearer|basic|token|bot|digest|negotiate)\s+)?(?P<a>[A-Za-z0-9._~+/=\-]+)|bearer\s+(?P<b>[A-Za-z0-9._~+/=\-]{8,})"#,
    ),
    // Greedy up to the last `@` before the host, so `user:p@ss@host` loses all of it.
    url_credentials: regex(r#"(?i)\b[a-z][a-z0-9+.\-]*://(?P<s>[^\s/?#'"<>]+)@"#),
});

/// A set of [`Rule`]s, one bit each.
#[derive(Clone, Copy, Default)]
struct RuleSet(u16);

impl RuleSet {
    fn insert(&mut self, rule: Rule) {
        self.0 |= 1 << rule as u16;
    }

    fn contains(self, rule: Rule) -> bool {
        self.0 & (1 << rule as u16) != 0
    }
}

/// What one pattern of the trigger automaton stands for.
#[derive(Clone, Copy)]
enum Trigger {
    Rule(Rule),
    /// Index into `Inner::literals`; the hit must be verified case-sensitively.
    Literal(usize),
}

/// Redacts secrets from log text. Cheap to clone (an `Arc` inside); build one per job.
#[derive(Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

struct Inner {
    triggers: LiteralScanner,
    kinds: Vec<Trigger>,
    literals: Vec<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The automaton's own copy cannot be wiped, but ours can.
        for literal in &mut self.literals {
            literal.zeroize();
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("literal_forms", &self.inner.literals.len()).finish()
    }
}

/// Collects the secrets of one job for a [`Redactor`]. Obtain with [`Redactor::builder`].
#[derive(Debug, Default)]
pub struct RedactorBuilder {
    values: Vec<SecretString>,
}

impl RedactorBuilder {
    /// Always redact this value (e.g. our own Buildkite or GitHub token) in every form.
    pub(crate) fn secret(mut self, value: &SecretString) -> Self {
        self.values.push(value.clone());
        self
    }

    /// Redact each of these values, whatever variable they came from.
    pub fn secrets<'s>(mut self, values: impl IntoIterator<Item = &'s SecretString>) -> Self {
        self.values.extend(values.into_iter().cloned());
        self
    }

    /// Redact the values of a job's environment (`name`, `value` pairs), except the few
    /// Buildkite metadata variables that are never credentials (checkout path, branch,
    /// commit…; see the module docs).
    pub(crate) fn env<'s>(
        mut self,
        vars: impl IntoIterator<Item = (&'s str, &'s SecretString)>,
    ) -> Self {
        let secret = vars.into_iter().filter(|(name, _)| !PUBLIC_ENV_NAMES.contains(name));
        self.values.extend(secret.map(|(_, value)| value.clone()));
        self
    }

    /// Builds the matcher. Fails only if the values make an impossibly large automaton.
    pub fn build(self) -> Result<Redactor, RedactError> {
        let mut forms = BTreeSet::new();
        for value in &self.values {
            add_literal_forms(value.expose_secret(), &mut forms);
        }
        let mut patterns: Vec<String> = Vec::new();
        let mut kinds = Vec::new();
        for (rule, triggers) in RULE_TRIGGERS {
            for trigger in *triggers {
                patterns.push((*trigger).to_owned());
                kinds.push(Trigger::Rule(*rule));
            }
        }
        let literals: Vec<String> = forms.into_iter().collect();
        for (index, literal) in literals.iter().enumerate() {
            patterns.push(literal.clone());
            kinds.push(Trigger::Literal(index));
        }
        let triggers = LiteralScanner::new(&patterns);
        for pattern in &mut patterns {
            pattern.zeroize();
        }
        let inner = Inner { triggers: triggers?, kinds, literals };
        Ok(Redactor { inner: Arc::new(inner) })
    }
}

impl Redactor {
    /// Starts a redactor for one job's secrets.
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder::default()
    }

    /// A redactor that knows no values, only the secret-shaped rules (for text that is
    /// not tied to a job, e.g. error messages from an API).
    pub(crate) fn patterns_only() -> Redactor {
        static PATTERNS_ONLY: LazyLock<Redactor> = LazyLock::new(|| {
            // Only the fixed trigger list goes in, which is far below any size limit.
            Redactor::builder().build().expect("the fixed trigger set always builds")
        });
        PATTERNS_ONLY.clone()
    }

    /// Redacts a whole text (several lines, `\n`-separated), following private-key blocks
    /// across lines. Returns the input borrowed when it holds no secret.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.line_redactor().redact_lines(text)
    }

    /// A streaming redactor for the lines of one log, in order.
    pub fn line_redactor(&self) -> LineRedactor {
        LineRedactor { inner: Arc::clone(&self.inner), key_block: None }
    }
}

/// Redacts the lines of one log in order, remembering whether it is inside a
/// private-key block. Create one per log with [`Redactor::line_redactor`].
#[derive(Clone)]
pub struct LineRedactor {
    inner: Arc<Inner>,
    key_block: Option<KeyBlock>,
}

impl fmt::Debug for LineRedactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineRedactor").field("in_key_block", &self.key_block.is_some()).finish()
    }
}

/// State inside a `-----BEGIN … PRIVATE KEY-----` block.
#[derive(Clone)]
struct KeyBlock {
    /// Whatever preceded `-----BEGIN` on its line (e.g. `web-1  | `), which a program
    /// that prefixes its output repeats on every body line.
    prefix: String,
    lines: usize,
}

impl LineRedactor {
    /// This redactor as the classifier's per-line transform, so every line is redacted
    /// before the classifier keeps any of it for an excerpt, a title or a test name.
    pub(crate) fn into_transform(mut self) -> super::LineTransform<'static> {
        Box::new(move |line| self.redact_line(line))
    }

    /// Redacts a batch of complete lines (`\n`-separated) that continue this log, the same
    /// as [`redact_line`](Self::redact_line) on each but faster: one scan jumps from
    /// trigger to trigger, skipping clean lines without a call per line.
    pub(crate) fn redact_lines<'a>(&mut self, text: &'a str) -> Cow<'a, str> {
        // Output is only built from the first changed line on; until then we borrow.
        let mut out: Option<String> = None;
        let mut pos = 0;
        while pos < text.len() {
            if self.key_block.is_none() {
                // Jump straight to the line of the next trigger hit: lines without one are
                // clean, and no key block can open before a `BEGIN` trigger.
                let Some(hit) = self.inner.triggers.find(&text.as_bytes()[pos..]) else { break };
                let line_start = text[..pos + hit.start].rfind('\n').map_or(0, |nl| nl + 1);
                if let Some(out) = &mut out {
                    out.push_str(&text[pos..line_start.max(pos)]);
                }
                pos = line_start.max(pos);
            }
            let line_end = text[pos..].find('\n').map_or(text.len(), |nl| pos + nl);
            let line = &text[pos..line_end];
            let redacted = self.redact_line(line);
            let changed = matches!(redacted, Cow::Owned(_)) || redacted.as_ptr() != line.as_ptr();
            if changed && out.is_none() {
                out = Some(String::from(&text[..pos]));
            }
            if let Some(out) = &mut out {
                out.push_str(&redacted);
                out.push_str(&text[line_end..(line_end + 1).min(text.len())]);
            }
            pos = line_end + 1;
        }
        match out {
            Some(mut out) => {
                out.push_str(text.get(pos..).unwrap_or(""));
                Cow::Owned(out)
            }
            None => Cow::Borrowed(text),
        }
    }

    /// Redacts one line (without its line terminator, already ANSI-stripped). Returns the
    /// line borrowed when it holds no secret.
    pub fn redact_line<'a>(&mut self, line: &'a str) -> Cow<'a, str> {
        let mut ranges = Vec::new();
        if let Some(block) = &mut self.key_block {
            if let Some(end) = PATTERNS.key_end.find(line) {
                ranges.push(0..end.end());
                self.key_block = None;
            } else if block.lines < MAX_KEY_BLOCK_LINES && looks_like_key_body(line, &block.prefix)
            {
                block.lines += 1;
                if line.trim().is_empty() {
                    return Cow::Borrowed(line);
                }
                return Cow::Borrowed(REDACTED);
            } else {
                self.key_block = None;
            }
        }
        if ranges.is_empty() && !self.inner.triggers.is_match(line.as_bytes()) {
            return Cow::Borrowed(line);
        }
        self.inner.collect(line, &mut ranges, &mut self.key_block);
        let mut out = match splice(line, ranges) {
            Cow::Borrowed(line) => return Cow::Borrowed(line),
            Cow::Owned(out) => out,
        };
        // A marker can complete a new match: in `--password -----BEGIN…-----END…-----rest`
        // the flag's value starts with `-` (no match) until the key becomes `[REDACTED]`.
        // Repeat until nothing changes, so the output is a fixed point and redacting it
        // again is a no-op. Later passes cannot open a key block: pass one consumed every
        // `BEGIN` marker.
        for _ in 0..MAX_EXTRA_PASSES {
            if !self.inner.triggers.is_match(out.as_bytes()) {
                break;
            }
            let mut ranges = Vec::new();
            self.inner.collect(&out, &mut ranges, &mut None);
            match splice(&out, ranges) {
                Cow::Borrowed(_) => break,
                Cow::Owned(next) => out = next,
            }
        }
        Cow::Owned(out)
    }
}

impl Inner {
    /// Finds every secret range in a line that had at least one trigger hit.
    fn collect(&self, line: &str, ranges: &mut Vec<Range<usize>>, block: &mut Option<KeyBlock>) {
        let mut rules = RuleSet::default();
        self.triggers.for_each(line.as_bytes(), |pattern, range| match self.kinds[pattern] {
            Trigger::Rule(rule) => rules.insert(rule),
            Trigger::Literal(index) => {
                if line.as_bytes()[range.clone()] == *self.literals[index].as_bytes() {
                    ranges.push(range);
                }
            }
        });
        for (rule, _) in RULE_TRIGGERS {
            if rules.contains(*rule) {
                apply(*rule, line, ranges, block);
            }
        }
    }
}

fn apply(rule: Rule, line: &str, ranges: &mut Vec<Range<usize>>, block: &mut Option<KeyBlock>) {
    let p = &*PATTERNS;
    match rule {
        Rule::GitHub => {
            ranges.extend(p.github.find_iter(line).filter(|m| m.len() >= 20).map(|m| m.range()))
        }
        Rule::GitHubPat => whole(&p.github_pat, line, ranges),
        Rule::Buildkite => whole(&p.buildkite, line, ranges),
        Rule::AwsKeyId => whole(&p.aws_key_id, line, ranges),
        Rule::Slack => whole(&p.slack, line, ranges),
        Rule::Jwt => whole(&p.jwt, line, ranges),
        Rule::SlackWebhook => groups(&p.slack_webhook, &["s"], line, ranges),
        Rule::Authorization => authorizations(line, ranges),
        Rule::Assignment => {
            assignments(line, ranges);
            groups(&p.flag, &["s"], line, ranges);
        }
        Rule::UrlCredentials => url_credentials(line, ranges),
        Rule::PrivateKey => private_key(line, ranges, block),
    }
}

/// The credential of an `Authorization:` header or a `Bearer` token.
fn authorizations(line: &str, ranges: &mut Vec<Range<usize>>) {
    for caps in PATTERNS.authorization.captures_iter(line) {
        // `Authorization: Bearer [REDACTED]` must not redact "Bearer" itself.
        let Some(value) = caps.name("a").or_else(|| caps.name("b")) else { continue };
        if !AUTH_SCHEMES.iter().any(|s| value.as_str().eq_ignore_ascii_case(s)) {
            ranges.push(value.range());
        }
    }
}

/// The userinfo of `scheme://user:password@host`; the scheme and host stay.
fn url_credentials(line: &str, ranges: &mut Vec<Range<usize>>) {
    // Most URLs in a log have no userinfo: skip the regex unless there is an `@` at all.
    if !line.contains('@') {
        return;
    }
    for caps in PATTERNS.url_credentials.captures_iter(line) {
        let Some(userinfo) = caps.name("s") else { continue };
        // `ssh://git@host` names a user, not a secret; a colon means a password, and a
        // long bare user is a token (`https://<token>@host`).
        let text = userinfo.as_str();
        if text.contains(':') || text.len() >= 20 {
            ranges.push(userinfo.range());
        }
    }
}

/// Redacts from each `BEGIN … PRIVATE KEY` marker to its `END` marker; without an `END`
/// on this line, to the end of the line, and the block continues on the next lines.
fn private_key(line: &str, ranges: &mut Vec<Range<usize>>, block: &mut Option<KeyBlock>) {
    let mut from = 0;
    while let Some(begin) = PATTERNS.key_begin.find_at(line, from) {
        if let Some(end) = PATTERNS.key_end.find_at(line, begin.end()) {
            ranges.push(begin.start()..end.end());
            from = end.end();
        } else {
            ranges.push(begin.start()..line.len());
            let prefix = line[..begin.start()].to_owned();
            *block = Some(KeyBlock { prefix, lines: 0 });
            return;
        }
    }
}

fn whole(re: &Regex, line: &str, ranges: &mut Vec<Range<usize>>) {
    ranges.extend(re.find_iter(line).map(|m| m.range()));
}

/// The values of `name=value` style assignments. In `scheme://token:value@host` the
/// "assignment" is a URL's userinfo: its value ends at the last `@`, so the host stays.
fn assignments(line: &str, ranges: &mut Vec<Range<usize>>) {
    for caps in PATTERNS.assignment.captures_iter(line) {
        let value = ["v1", "v2", "v4"].iter().find_map(|name| caps.name(name));
        if let Some(value) = value.filter(|m| !m.is_empty()) {
            ranges.push(value.range());
            continue;
        }
        let Some(bare) = caps.name("v3") else { continue };
        let tight_colon =
            caps.name("eq").is_none() && caps.name("gap").is_none_or(|g| g.is_empty());
        let end = match bare.as_str().rfind('@') {
            Some(at) if tight_colon && at > 0 => bare.start() + at,
            _ => bare.end(),
        };
        ranges.push(bare.start()..end);
    }
}

fn groups(re: &Regex, names: &[&str], line: &str, ranges: &mut Vec<Range<usize>>) {
    for caps in re.captures_iter(line) {
        for name in names {
            if let Some(m) = caps.name(name).filter(|m| !m.is_empty()) {
                ranges.push(m.range());
            }
        }
    }
}

/// Whether a line inside a key block is still key material: base64 (optionally after
/// the prefix the `BEGIN` line had), a PEM header such as `Proc-Type: 4,ENCRYPTED`, a
/// blank line, or anything holding a long base64 run. A short all-letters line such as
/// `Finished` is not, so a lone `BEGIN` printed by `grep` does not swallow what follows.
fn looks_like_key_body(line: &str, prefix: &str) -> bool {
    let body = line.strip_prefix(prefix).unwrap_or(line).trim();
    if body.is_empty() || longest_base64_run(line) >= 40 {
        return true;
    }
    let is_base64 = body.bytes().all(|b| is_base64_byte(b) || b == b'=');
    if is_base64 {
        let bytes = body.as_bytes();
        let mixed = bytes.iter().any(u8::is_ascii_digit)
            && bytes.iter().any(u8::is_ascii_uppercase)
            && bytes.iter().any(u8::is_ascii_lowercase);
        return body.len() >= 16 || body.ends_with('=') || mixed;
    }
    is_pem_header(body)
}

fn is_pem_header(body: &str) -> bool {
    match body.split_once(": ") {
        Some((name, _)) => {
            matches!(name, "Proc-Type" | "DEK-Info" | "Comment" | "Version" | "Hash")
        }
        None => false,
    }
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn longest_base64_run(line: &str) -> usize {
    line.as_bytes().split(|b| !is_base64_byte(*b)).map(<[u8]>::len).max().unwrap_or(0)
}

/// Replaces the ranges with [`REDACTED`]. Ranges are merged when they overlap or touch,
/// and a range inside an existing marker is dropped, so redacting twice changes nothing.
fn splice(line: &str, mut ranges: Vec<Range<usize>>) -> Cow<'_, str> {
    let markers: Vec<Range<usize>> =
        line.match_indices(REDACTED).map(|(at, _)| at..at + REDACTED.len()).collect();
    ranges.retain_mut(|range| {
        for marker in &markers {
            if range.start < marker.end && marker.start < range.end {
                range.start = range.start.min(marker.start);
                range.end = range.end.max(marker.end);
            }
        }
        !markers.contains(range)
    });
    if ranges.is_empty() {
        return Cow::Borrowed(line);
    }
    for range in &mut ranges {
        // Every range comes from a match on this `str`, so this only guards the slicing.
        while !line.is_char_boundary(range.start) {
            range.start -= 1;
        }
        while !line.is_char_boundary(range.end) {
            range.end += 1;
        }
    }
    ranges.sort_by_key(|range| range.start);
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut current: Option<Range<usize>> = None;
    for range in ranges {
        match &mut current {
            Some(open) if range.start <= open.end => open.end = open.end.max(range.end),
            _ => {
                if let Some(done) = current.take() {
                    out.push_str(&line[copied..done.start]);
                    out.push_str(REDACTED);
                    copied = done.end;
                }
                current = Some(range);
            }
        }
    }
    if let Some(done) = current {
        out.push_str(&line[copied..done.start]);
        out.push_str(REDACTED);
        copied = done.end;
    }
    out.push_str(&line[copied..]);
    Cow::Owned(out)
}

/// Adds a value and the forms a program may print it in. A multi-line value (a key
/// file, a certificate) is also added line by line, since logs are redacted per line.
fn add_literal_forms(value: &str, forms: &mut BTreeSet<String>) {
    let mut pieces = vec![value];
    if value.contains(['\n', '\r']) {
        pieces.extend(value.split(['\n', '\r']).map(str::trim));
    } else if value.trim() != value {
        pieces.push(value.trim());
    }
    for piece in pieces {
        if piece.len() < MIN_SECRET_LEN {
            continue;
        }
        let mut candidates = vec![
            piece.to_owned(),
            json_escaped(piece),
            go_quoted(piece),
            percent_encoded(piece),
            url::form_urlencoded::byte_serialize(piece.as_bytes()).collect(),
        ];
        candidates.extend(base64_fragments(piece.as_bytes()));
        forms.extend(
            candidates
                .into_iter()
                .filter(|form| form.len() >= MIN_SECRET_LEN && !form.contains(['\n', '\r'])),
        );
    }
}

/// The value as it appears between the quotes of a JSON string.
fn json_escaped(value: &str) -> String {
    let quoted = serde_json::Value::from(value).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The value as Go's `%q` prints it between the quotes (the agent redacts this form too).
fn go_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The base64 characters that depend only on the value's own bits, for each of the three
/// byte alignments the value can have inside a longer encoded string, in the standard and
/// URL-safe alphabets.
fn base64_fragments(value: &[u8]) -> Vec<String> {
    let engines = [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut out = Vec::new();
    for engine in engines {
        for offset in 0..3 {
            let mut padded = vec![0u8; offset];
            padded.extend_from_slice(value);
            let encoded = engine.encode(&padded);
            // Character i covers bits [6i, 6i+6); the value occupies bits
            // [8*offset, 8*(offset+len)).
            let first = (8 * offset).div_ceil(6);
            let last = 8 * (offset + value.len()) / 6;
            if last > first {
                out.push(encoded[first..last].to_owned());
            }
            padded.zeroize();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn env_redactor(values: &[&str]) -> Redactor {
        let secrets: Vec<SecretString> = values.iter().map(|v| secret(v)).collect();
        Redactor::builder().secrets(&secrets).build().expect("builds")
    }

    /// Redacting must remove the secret, keep the surrounding text, and be stable.
    #[track_caller]
    fn assert_redacted(redactor: &Redactor, line: &str, secret: &str, kept: &[&str]) {
        let out = redactor.redact(line);
        assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
        assert!(out.contains(REDACTED), "no marker in {out:?}");
        for piece in kept {
            assert!(out.contains(piece), "{piece:?} lost from {out:?}");
        }
        assert_eq!(redactor.redact(&out), out, "second pass changed {out:?}");
    }

    #[test]
    fn secret_shaped_strings_are_redacted() {
        let r = Redactor::patterns_only();
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "push with ghp_aBcdEfGhIjKlMnOpQrStUvWxYz0123456789 now",
                "ghp_aBcdEfGhIjKlMnOpQrStUvWxYz0123456789",
                &["push with ", " now"],
            ),
            (
                "token ghs_Abc12.eyJzdGF0ZWxlc3MiOnRydWV9.Zm9vYmFyYmF6.",
                "ghs_Abc12.eyJzdGF0ZWxlc3MiOnRydWV9.Zm9vYmFyYmF6",
                &["token "],
            ),
            (
                "GH=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
                &["GH="],
            ),
            (
                "using bkua_0123456789abcdef0123456789abcdef01234567 for api",
                "bkua_0123456789abcdef0123456789abcdef01234567",
                &["using ", " for api"],
            ),
            ("key id AKIAIOSFODNN7EXAMPLE found", "AKIAIOSFODNN7EXAMPLE", &["key id ", " found"]),
            (
                "slack xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
                "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
                &["slack "],
            ),
            (
                "POST https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX failed",
                "T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
                &["https://hooks.slack.com/services/", " failed"],
            ),
            (
                "jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
                &["jwt="],
            ),
            ("db password=hunter2hunter2 ok", "hunter2hunter2", &["db password=", " ok"]),
            ("PGPASSWORD: s3cr3t-v4lue", "s3cr3t-v4lue", &["PGPASSWORD: "]),
            (r#"{"api_key": "abc123def456", "n": 1}"#, "abc123def456", &[r#"{"api_key": ""#]),
            ("secret_key = 'quoted value here'", "quoted value here", &["secret_key = '"]),
            (r#"msg="{\"token\":\"esc4ped-secret\"}""#, "esc4ped-secret", &[r#"{\"token\":\""#]),
            ("curl --password s3cretpass x", "s3cretpass", &["curl --password ", " x"]),
            (
                "curl -H 'Authorization: Bearer abcdef123456.xyz' https://x",
                "abcdef123456.xyz",
                &["Authorization: Bearer ", "' https://x"],
            ),
            ("Authorization: Bearer x9", "x9", &["Authorization: Bearer "]),
            ("headers={'authorization': 'token abc'}", "abc", &["'authorization': 'token "]),
            ("sent bearer eyJfake.long.token-value ok", "eyJfake.long.token-value", &[" ok"]),
            ("GET /?access_token=abcdef987654&page=2", "abcdef987654", &["&page=2"]),
            (
                "cloning https://deploy:pa55word@git.example.com/org/repo.git",
                "pa55word",
                &["https://", "@git.example.com/org/repo.git"],
            ),
            (
                "remote https://x-access-token:abcdefghij@github.com/o/r",
                "x-access-token:abcdefghij",
                &["https://", "@github.com/o/r"],
            ),
        ];
        for (line, secret, kept) in cases {
            assert_redacted(&r, line, secret, kept);
        }
    }

    #[test]
    fn url_credentials_keep_scheme_and_host() {
        let r = Redactor::patterns_only();
        let out = r.redact("connect postgres://app:hunter22@db.internal:5432/app failed");
        assert_eq!(out, "connect postgres://[REDACTED]@db.internal:5432/app failed");
        // A plain user name is not a secret.
        let line = "fetch ssh://git@github.com/org/repo.git";
        assert!(matches!(r.redact(line), Cow::Borrowed(_)));
    }

    #[test]
    fn words_near_keywords_are_not_redacted() {
        let r = Redactor::patterns_only();
        for line in [
            "Collecting tokenizers==0.13.3",
            "password_file=/run/secrets/db",
            "SyntaxError: Unexpected token '<', \"<!DOCTYPE \" is not valid JSON",
            "Downloading https://registry.npmjs.org/@types%2fnode",
            "error[E0425]: cannot find value `token` in this scope",
        ] {
            assert_eq!(r.redact(line), line);
        }
    }

    #[test]
    fn env_values_and_their_encodings_are_redacted() {
        let value = "p@ss w\"rd/42";
        let r = env_redactor(&[value]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("user:{value}"));
        let lines = [
            format!("echo {value}"),
            format!("Authorization: Basic {b64}"),
            format!("url=https://x/?p={}", percent_encoded(value)),
            format!(
                "form=a&p={}",
                url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            ),
            format!("{{\"env\":{}}}", serde_json::Value::from(value)),
            format!("value: {}", base64::engine::general_purpose::URL_SAFE.encode(value)),
        ];
        for line in &lines {
            let out = r.redact(line);
            assert!(matches!(out, Cow::Owned(_)), "not redacted: {line}");
            assert!(!out.contains(value), "{out}");
            assert!(!out.contains(&b64), "{out}");
            assert!(!out.contains(&percent_encoded(value)), "{out}");
        }
        // Basic-auth base64 of "user:<value>" puts the value at offset 5: that alignment
        // must be caught even though "user:" is not a secret.
        let out = r.redact(&lines[1]);
        assert!(out.starts_with("Authorization: Basic "), "{out}");
    }

    #[test]
    fn env_redaction_respects_length_and_public_names() {
        let checkout = secret("/var/lib/buildkite-agent/builds/agent-1/acme/app");
        let short = secret("abc12");
        let db = secret("correct-horse-battery");
        let agent_token = secret("agent-token-value-1");
        let vars = [
            ("BUILDKITE_BUILD_CHECKOUT_PATH", &checkout),
            ("SHORT", &short),
            ("DATABASE_URL", &db),
            ("BUILDKITE_AGENT_ACCESS_TOKEN", &agent_token),
        ];
        let r = Redactor::builder().env(vars).build().expect("builds");
        let line = "/var/lib/buildkite-agent/builds/agent-1/acme/app/src/main.rs:3: abc12 \
                    correct-horse-battery agent-token-value-1";
        assert_eq!(
            r.redact(line),
            "/var/lib/buildkite-agent/builds/agent-1/acme/app/src/main.rs:3: abc12 [REDACTED] [REDACTED]"
        );
    }

    #[test]
    fn multi_line_env_values_are_redacted_line_by_line() {
        let r = env_redactor(&["first-line-of-secret\nsecond-line-of-secret\n"]);
        let out = r.redact("a first-line-of-secret b\nsecond-line-of-secret\n");
        assert_eq!(out, "a [REDACTED] b\n[REDACTED]\n");
        let json = r.redact(r#"{"v":"first-line-of-secret\nsecond-line-of-secret\n"}"#);
        assert!(!json.contains("first-line"), "{json}");
    }

    #[test]
    fn overlapping_and_adjacent_secrets_become_one_marker() {
        let r = env_redactor(&["abcdefgh", "efghijkl", "zzzzzzzz"]);
        assert_eq!(r.redact("x abcdefghijkl y"), "x [REDACTED] y");
        assert_eq!(r.redact("abcdefghzzzzzzzz"), "[REDACTED]");
        assert_eq!(r.redact("abcdefgh zzzzzzzz"), "[REDACTED] [REDACTED]");
        // A rule match and an env value that overlap.
        let r = env_redactor(&["hunter2hunter2"]);
        assert_eq!(r.redact("password=hunter2hunter2xyz"), "password=[REDACTED]");
    }

    #[test]
    fn secrets_at_line_start_and_end() {
        let r = env_redactor(&["s3cr3t-value"]);
        assert_eq!(r.redact("s3cr3t-value"), REDACTED);
        assert_eq!(r.redact("s3cr3t-value tail"), "[REDACTED] tail");
        assert_eq!(r.redact("head s3cr3t-value"), "head [REDACTED]");
        assert_eq!(r.redact("s3cr3t-value\ns3cr3t-value\n"), "[REDACTED]\n[REDACTED]\n");
    }

    #[test]
    fn env_values_match_case_sensitively() {
        let r = env_redactor(&["MixedCaseSecret"]);
        let line = "mixedcasesecret is a different string";
        assert!(matches!(r.redact(line), Cow::Borrowed(_)));
    }

    const KEY_BODY: [&str; 3] = [
        "MIIEowIBAAKCAQEAvx7GhT8a2Qb9Xn1pL0kz3YtqWm5RZc6JdFh2sKpL9vN4eUoA",
        "c3VwZXJzZWNyZXRrZXltYXRlcmlhbDEyMzQ1Njc4OTBhYmNkZWZnaGlqa2xtbm9w",
        "4Tf8Qw==",
    ];

    #[test]
    fn private_key_blocks_are_redacted_across_lines() {
        let r = Redactor::patterns_only();
        let mut lines = r.line_redactor();
        let log = [
            "$ cat deploy_key",
            "-----BEGIN RSA PRIVATE KEY-----",
            "Proc-Type: 4,ENCRYPTED",
            "",
            KEY_BODY[0],
            KEY_BODY[1],
            KEY_BODY[2],
            "-----END RSA PRIVATE KEY----- trailing",
            "Finished",
        ];
        let out: Vec<String> = log.iter().map(|l| lines.redact_line(l).into_owned()).collect();
        assert_eq!(
            out,
            [
                "$ cat deploy_key",
                REDACTED,
                REDACTED,
                "",
                REDACTED,
                REDACTED,
                REDACTED,
                "[REDACTED] trailing",
                "Finished",
            ]
        );
        // The same through the whole-text entry point.
        let text = log.join("\n");
        let whole = r.redact(&text);
        assert_eq!(whole, out.join("\n"));
        // And in batches that split the key block.
        let mut batches = r.line_redactor();
        let first = batches.redact_lines(&log[..5].join("\n")).into_owned();
        let rest = batches.redact_lines(&log[5..].join("\n")).into_owned();
        assert_eq!(format!("{first}\n{rest}"), out.join("\n"));
    }

    #[test]
    fn prefixed_key_block_and_single_line_key() {
        let r = Redactor::patterns_only();
        let mut lines = r.line_redactor();
        let prefixed = [
            "web-1  | -----BEGIN OPENSSH PRIVATE KEY-----".to_owned(),
            format!("web-1  | {}", KEY_BODY[0]),
            "web-1  | 4Tf8Qw".to_owned(),
            "web-1  | -----END OPENSSH PRIVATE KEY-----".to_owned(),
            "web-1  | listening".to_owned(),
        ];
        let out: Vec<String> = prefixed.iter().map(|l| lines.redact_line(l).into_owned()).collect();
        assert_eq!(
            out,
            ["web-1  | [REDACTED]", REDACTED, REDACTED, REDACTED, "web-1  | listening"]
        );

        let json = format!(
            r#"{{"pem": "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", "x": 1}}"#,
            KEY_BODY[0]
        );
        let out = r.redact(&json);
        assert!(!out.contains(KEY_BODY[0]), "{out}");
        assert!(out.ends_with(r#"\n", "x": 1}"#), "{out}");
    }

    #[test]
    fn a_lone_begin_marker_does_not_swallow_the_log() {
        let r = Redactor::patterns_only();
        let text = "$ grep -r -- '-----BEGIN PRIVATE KEY-----' .\nFinished\nerror: 3 tests failed";
        let out = r.redact(text);
        assert_eq!(out, "$ grep -r -- '[REDACTED]\nFinished\nerror: 3 tests failed");
    }

    /// The smallest ANSI SGR stripper, standing in for the normaliser.
    fn strip_ansi(s: &str) -> String {
        let re = Regex::new("\x1b\\[[0-9;]*[A-Za-z]").expect("valid");
        re.replace_all(s, "").into_owned()
    }

    #[test]
    fn secrets_split_by_ansi_codes_are_caught_after_stripping() {
        let r = env_redactor(&["split-secret-value"]);
        let raw = "deploy \x1b[31msplit-\x1b[1msecret\x1b[0m-value\x1b[0m done";
        assert!(!raw.contains("split-secret-value"));
        let stripped = strip_ansi(raw);
        let out = r.redact(&stripped);
        assert_eq!(out, "deploy [REDACTED] done");
        let gh = "\x1b[32mghp_aBcdEfGhIjKlMnOpQr\x1b[0mStUvWxYz0123456789";
        assert_eq!(Redactor::patterns_only().redact(&strip_ansi(gh)), REDACTED);
    }

    #[test]
    fn secret_free_text_is_borrowed() {
        let r = env_redactor(&["hunter2hunter2"]);
        let text = "Compiling kitefix v0.1.0\nerror[E0308]: mismatched types\n";
        assert!(matches!(r.redact(text), Cow::Borrowed(_)));
        let mut lines = r.line_redactor();
        for line in text.lines() {
            assert!(matches!(lines.redact_line(line), Cow::Borrowed(_)));
        }
        // A trigger hit that turns out not to be a secret still borrows.
        assert!(matches!(r.redact("see https://example.com/docs"), Cow::Borrowed(_)));
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let r = env_redactor(&["hunter2hunter2"]);
        let shown = format!("{r:?} {:?}", r.line_redactor());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    /// Secret values: lowercase letters and digits, so none can be part of `[REDACTED]`.
    fn secret_value() -> impl Strategy<Value = String> {
        "[a-z0-9]{6,24}"
    }

    fn pattern_secret() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9]{36}".prop_map(|s| format!("ghp_{s}")),
            "[a-f0-9]{40}".prop_map(|s| format!("bkua_{s}")),
            "[A-Z2-7]{16}".prop_map(|s| format!("AKIA{s}")),
            "[0-9]{12}-[A-Za-z0-9]{24}".prop_map(|s| format!("xoxb-{s}")),
        ]
    }

    /// Words of real CI output, some of them near a trigger (`tokenizers`, URLs).
    const LOG_WORDS: &[&str] = &[
        "Compiling",
        "kitefix",
        "v0.1.0",
        "error[E0308]:",
        "mismatched",
        "types",
        "-->",
        "src/lib.rs:10:5",
        "test",
        "result:",
        "FAILED.",
        "passed;",
        "failed;",
        "npm",
        "ERR!",
        "https://registry.npmjs.org/left-pad",
        "Collecting",
        "tokenizers==0.13.3",
        "\n",
        "password_file=/run/x",
        "ssh://git@github.com/o/r.git",
        "Unexpected",
        "token",
        "'<'",
        "🚨",
        "exited",
        "with",
        "status",
        "1",
        "AKIA",
        "secrets",
        "manager",
        "ghp_",
        "x",
    ];

    /// Pieces that interact: keywords, separators, quotes, URL parts, markers, key blocks.
    const TRICKY_PARTS: &[&str] = &[
        "password",
        "token",
        "=",
        ":",
        " ",
        "\"",
        "'",
        "\\\"",
        "https://",
        "user",
        "@",
        "host/",
        "Bearer ",
        "Authorization: ",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "\n",
        "[REDACTED]",
        "eyJ",
        "abcdef0123",
        "ghp_",
        "0123456789abcdefghij",
        "AKIA",
        "x",
        ".",
        "/",
        "--password ",
        "hooks.slack.com/services/",
    ];

    proptest! {
        #[test]
        fn no_secret_survives_and_redaction_is_idempotent(
            env in proptest::collection::vec(secret_value(), 1..5),
            shaped in proptest::collection::vec(pattern_secret(), 0..3),
            filler in proptest::collection::vec("[ -~\n]{0,40}", 1..12),
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 1..12),
            split_at in any::<proptest::sample::Index>(),
        ) {
            let r = env_redactor(&env.iter().map(String::as_str).collect::<Vec<_>>());
            let all: Vec<&String> = env.iter().chain(&shaped).collect();
            let mut text = String::new();
            for (i, piece) in filler.iter().enumerate() {
                text.push_str(piece);
                if let Some(pick) = picks.get(i) {
                    // Pattern secrets need a word boundary to be secret-shaped.
                    text.push(' ');
                    text.push_str(pick.get(&all).as_str());
                    text.push(' ');
                }
            }
            let once = r.redact(&text);
            for secret in &all {
                prop_assert!(!once.contains(secret.as_str()), "{} survived in {:?}", secret, once);
            }
            let twice = r.redact(&once);
            prop_assert_eq!(&twice, &once);
            // Line by line, and in batches split at any line, give the same answer.
            let mut lines = r.line_redactor();
            let joined: Vec<String> =
                text.split('\n').map(|l| lines.redact_line(l).into_owned()).collect();
            prop_assert_eq!(&joined.join("\n"), &once);
            let newlines: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
            let cut = if newlines.is_empty() { 0 } else { newlines[split_at.index(newlines.len())] };
            let mut batches = r.line_redactor();
            let first = batches.redact_lines(&text[..cut]).into_owned();
            let rest = batches.redact_lines(&text[cut..]).into_owned();
            prop_assert_eq!(first + &rest, once.into_owned());
        }

        #[test]
        fn redaction_is_idempotent_on_adversarial_text(
            parts in proptest::collection::vec(proptest::sample::select(TRICKY_PARTS), 0..30),
        ) {
            let r = env_redactor(&["abcdef0123"]);
            let text = parts.concat();
            let once = r.redact(&text).into_owned();
            prop_assert_eq!(r.redact(&once), once.as_str(), "input {:?}", text);
        }

        #[test]
        fn ordinary_log_lines_are_borrowed(
            words in proptest::collection::vec(proptest::sample::select(LOG_WORDS), 0..40),
        ) {
            let r = env_redactor(&["hunter2hunter2", "0123456789"]);
            let text = words.join(" ");
            prop_assert!(matches!(r.redact(&text), Cow::Borrowed(_)), "{}", text);
        }
    }
}

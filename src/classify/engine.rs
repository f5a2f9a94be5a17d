//! The rule engine: one streaming pass over normalised lines, bounded memory.
//!
//! How a verdict is reached (the approach of PyTorch's log classifier and Treeherder, see
//! docs/classification.md#approach, adapted to streaming):
//!
//! 1. **Prefilter.** One Aho-Corasick automaton holds the required literals of every rule
//!    ([`super::literals`]); a line only runs the regexes of the rules whose literals it
//!    contains, so the cost per line does not grow with the number of rules.
//! 2. **Steps.** CI systems print where a command ends and how (`The command "…" exited
//!    with N.` on Travis, `##[error]Process completed with exit code N.` on GitHub
//!    Actions, `🚨 Error: The command exited with status N` on Buildkite). Rules with
//!    `action = "step-end"` / `"step-start"` cut the log into steps with a status. An error
//!    line in a step that passed did not fail the job (an `npm install` that prints
//!    `npm ERR!` for an optional package and exits 0); one in the first failed step most
//!    likely did. A hit's score is its rule's priority plus a bonus or malus for the
//!    status of its step.
//! 3. **Candidates.** Per rule, only the first (or last, per the rule's `pick`) hit of the
//!    current step is held, and per rule the best-scoring hit so far: memory depends on
//!    the number of rules, never on the size of the log.
//! 4. **Excerpts.** A ring of the last [`RING_LINES`] lines gives every candidate its
//!    context once the lines after it have arrived; no second pass, no stored log.
//! 5. **Verdict.** The highest score wins (ties: the earlier line); the best hits of other
//!    categories become `secondary`. What Buildkite itself knows (`JobMeta`: a timed-out
//!    job, a lost agent, exit status 137) decides over the log, because a log cannot show
//!    why it stopped.

use std::collections::HashMap;
use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Captures, Regex};

use super::analysis::{Analysis, Category, Excerpt, JobMeta, Location, Secondary};
use super::literals::{line_starts, required_literals};
use super::rules::{Action, Pick, Rule, RuleError, RuleSet};
use crate::logs::literal_scan::LiteralScanner;

/// Lines of context kept behind the current line: enough for any rule's excerpt
/// (at most 40 lines) to be cut once its last line has arrived.
pub(crate) const RING_LINES: usize = 64;
/// Longest line kept in an excerpt or a key line, in bytes; longer lines are cut at a
/// character boundary so that excerpts stay readable and memory stays small.
const MAX_KEPT_LINE: usize = 1000;
/// Longest part of a line the rules look at, in bytes.
const MATCH_PREFIX: usize = 2048;
/// Caps on what one analysis lists.
const MAX_TESTS: usize = 200;
const MAX_LOCATIONS: usize = 50;
const MAX_SECONDARY: usize = 5;
const MAX_TITLE: usize = 200;
/// Follow-up patterns being watched at once.
const MAX_AWAITING: usize = 32;

/// Score adjustments by the status of the step a hit sits in (see module docs).
const BONUS_FIRST_FAILED: i32 = 40;
const BONUS_FAILED: i32 = 30;
const MALUS_IMPLIED_PASS: i32 = -25;
const MALUS_PASSED: i32 = -50;

/// A line that calls itself a warning: `warning:`, `[warn]`, `WARNING - `, `WARN `,
/// Python's `file.py:12: UserWarning: …`, apt's `W: `. Such a line did not fail the job.
const WARNING_LINE: &str = r"(?i)(?:^|[\s\[(|])warn(?:ing)?s?\s*(?:[:\]!|]|- )|(?-i:(?:^|\s)WARN(?:ING)?\s|^W: )|^\s*\S+:\d+: \w*Warning: ";

/// What the prefilter points a literal at: one pattern of one rule, or a rule's scope
/// patterns. Packed as `rule << 8 | slot` so that sorting a line's targets groups them by
/// rule, in rule order, and deduplicating stays a plain integer sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Target(u32);

impl Target {
    /// The slot of a rule's scope patterns; slots below are pattern indexes.
    const SCOPE_SLOT: u32 = 255;

    fn pattern(rule: u32, pattern: u32) -> Self {
        debug_assert!(pattern < Self::SCOPE_SLOT, "rules have fewer than 255 patterns");
        Self(rule << 8 | pattern)
    }

    fn scope(rule: u32) -> Self {
        Self(rule << 8 | Self::SCOPE_SLOT)
    }

    fn rule(self) -> usize {
        (self.0 >> 8) as usize
    }

    fn is_scope(self) -> bool {
        self.0 & 0xff == Self::SCOPE_SLOT
    }

    /// The pattern's index in its rule (meaningless for a scope target).
    fn pattern_index(self) -> usize {
        (self.0 & 0xff) as usize
    }
}

/// A run of one rule's targets within a line's sorted candidates.
struct RuleTargets {
    rule: usize,
    targets: std::ops::Range<usize>,
}

/// Rule id reported when no rule matched.
pub const NO_RULE: &str = "none";

/// A compiled rule set with its prefilter. Build it once and share it: sessions borrow it.
#[derive(Debug)]
pub struct Classifier {
    rules: Vec<Rule>,
    prefilter: Prefilter,
    /// Automaton pattern id → the rules that literal belongs to.
    literal_rules: Vec<Vec<Target>>,
    /// Rules with no required literal: tried on every line.
    unfiltered: Vec<Target>,
    /// Per rule: its hits matter after the first one in a step (tests, locations).
    collects: Vec<bool>,
    /// Per rule and pattern: what every line it matches starts with, if known.
    starts: Vec<Vec<Option<Vec<Vec<u8>>>>>,
    /// Lines that call themselves warnings: they did not fail the job.
    warning: Regex,
}

impl Classifier {
    /// The rules compiled into the binary (`config/rules/*.toml`).
    pub fn embedded() -> Result<Self, RuleError> {
        Self::from_rules(RuleSet::embedded()?)
    }

    /// The embedded rules, then every `*.toml` of `dir`: same id replaces, new ids add.
    pub(crate) fn with_user_rules(dir: &Path) -> Result<Self, RuleError> {
        let mut set = RuleSet::embedded()?;
        set.merge_dir(dir)?;
        Self::from_rules(set)
    }

    /// Compiles a rule set and builds its prefilter.
    pub(crate) fn from_rules(set: RuleSet) -> Result<Self, RuleError> {
        let rules = set.rules().to_vec();
        let mut literal_ids: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut literal_rules: Vec<Vec<Target>> = Vec::new();
        let mut unfiltered = Vec::new();
        let mut add = |lit: Vec<u8>,
                       target: Target,
                       literals: &mut Vec<Vec<u8>>,
                       literal_rules: &mut Vec<Vec<Target>>| {
            let id = *literal_ids.entry(lit.clone()).or_insert_with(|| {
                literals.push(lit);
                literal_rules.push(Vec::new());
                literals.len() - 1
            });
            if !literal_rules[id].contains(&target) {
                literal_rules[id].push(target);
            }
        };
        // Targets are per pattern, so that a line runs only the patterns whose literal it
        // contains; a rule's scope patterns share one target.
        for (index, rule) in rules.iter().enumerate() {
            let index = index as u32;
            for (target, patterns) in rule
                .patterns
                .iter()
                .enumerate()
                .map(|(i, p)| (Target::pattern(index, i as u32), std::slice::from_ref(p)))
                .chain(
                    (!rule.scope.is_empty())
                        .then_some((Target::scope(index), rule.scope.as_slice())),
                )
            {
                let sets: Option<Vec<Vec<Vec<u8>>>> =
                    patterns.iter().map(|p| required_literals(p.as_str())).collect();
                match sets {
                    Some(sets) => {
                        for lit in sets.into_iter().flatten() {
                            add(lit, target, &mut literals, &mut literal_rules);
                        }
                    }
                    None => unfiltered.push(target),
                }
            }
        }
        let prefilter = match LiteralScanner::new(&literals) {
            Ok(scanner) => Prefilter::Dfa(Box::new(scanner)),
            // A very large user rule set may not fit a DFA; the NFA is slower, not wrong.
            Err(_) => AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&literals)
                .map(Prefilter::Nfa)
                .map_err(|e| RuleError::Invalid {
                    file: "(all rules)".into(),
                    rule: "(prefilter)".into(),
                    reason: e.to_string(),
                })?,
        };
        let collects = rules
            .iter()
            .map(|r| {
                r.test.is_some()
                    || r.follow.is_some()
                    || r.patterns.iter().any(|p| p.capture_names().flatten().any(|n| n == "path"))
            })
            .collect();
        let warning = Regex::new(WARNING_LINE).map_err(|e| RuleError::Invalid {
            file: "(engine)".into(),
            rule: "(warning veto)".into(),
            reason: e.to_string(),
        })?;
        let starts = rules
            .iter()
            .map(|r| r.patterns.iter().map(|p| line_starts(p.as_str())).collect())
            .collect();
        Ok(Classifier { rules, prefilter, literal_rules, unfiltered, collects, starts, warning })
    }

    /// The rules, in priority-independent file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Ids of rules the prefilter cannot skip (they run on every line).
    #[cfg(test)]
    pub(crate) fn unfiltered_rules(&self) -> impl Iterator<Item = &str> {
        let mut ids: Vec<&str> = self
            .unfiltered
            .iter()
            .filter(|t| !t.is_scope())
            .map(|t| self.rules[t.rule()].id())
            .collect();
        ids.dedup();
        ids.into_iter()
    }

    /// Starts classifying one job's log.
    pub(crate) fn session(&self, meta: JobMeta) -> Session<'_> {
        Session::new(self, meta)
    }
}

/// The automaton over every rule's required literals.
#[derive(Debug)]
enum Prefilter {
    Dfa(Box<LiteralScanner>),
    Nfa(AhoCorasick),
}

impl Prefilter {
    /// Calls `hit` with the index of every literal in `text` (some more than once).
    fn for_each(&self, text: &[u8], mut hit: impl FnMut(usize)) {
        match self {
            Prefilter::Dfa(scanner) => scanner.for_each(text, |literal, _| hit(literal)),
            Prefilter::Nfa(ac) => {
                for m in ac.find_overlapping_iter(text) {
                    hit(m.pattern().as_usize());
                }
            }
        }
    }
}

/// Status of the CI step a hit sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepStatus {
    /// The step's end line reported a non-zero status; `first` for the first such step.
    Failed { first: bool },
    /// The step's end line reported status 0.
    Passed,
    /// A new step started without the previous one reporting a failure.
    ImpliedPass,
    /// The log ended inside the step (or has no step markers at all).
    Open,
}

impl StepStatus {
    fn bonus(self) -> i32 {
        match self {
            StepStatus::Failed { first: true } => BONUS_FIRST_FAILED,
            StepStatus::Failed { first: false } => BONUS_FAILED,
            StepStatus::Passed => MALUS_PASSED,
            StepStatus::ImpliedPass => MALUS_IMPLIED_PASS,
            StepStatus::Open => 0,
        }
    }

    fn passed(self) -> bool {
        matches!(self, StepStatus::Passed | StepStatus::ImpliedPass)
    }
}

/// One hit kept as a candidate for the verdict.
#[derive(Debug, Clone)]
struct Candidate {
    line: u64,
    title: String,
    excerpt: Option<Excerpt>,
    location: Option<Location>,
    score: i32,
    status: StepStatus,
}

#[derive(Debug, Default)]
struct RuleState {
    /// The kept hit of the current step.
    step: Option<Candidate>,
    /// The best hit of the closed steps.
    best: Option<Candidate>,
    /// The last line that matched one of the rule's scope patterns, and which one.
    scope: (Option<usize>, String),
}

/// Captures of a hit, owned: (name, value).
type Caps = Vec<(String, String)>;

/// A follow-up pattern being watched for after a hit.
#[derive(Debug)]
struct Awaiting {
    rule: u32,
    hit_line: u64,
    until: u64,
    /// The hit line's text and captures, for templates that combine both lines.
    text: String,
    caps: Caps,
    /// False while a required follow-up has not been seen: the hit is not recorded yet.
    confirmed: bool,
    /// Join mode: the text accumulated so far.
    joined: String,
}

/// An entry of the context ring.
#[derive(Debug, Default)]
struct RingLine {
    number: u64,
    text: String,
    /// Blank, or a wrapper/marker line: never a fallback key line.
    skip: bool,
}

/// Classification of one log in progress. Push every line in order, then
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct Session<'c> {
    c: &'c Classifier,
    meta: JobMeta,
    ring: Vec<RingLine>,
    ring_next: usize,
    states: Vec<RuleState>,
    /// Rules with a candidate in the current step.
    touched: Vec<u32>,
    /// (due line, hit line, rule): excerpts to cut once the due line has arrived.
    pending: Vec<(u64, u64, u32)>,
    awaiting: Vec<Awaiting>,
    step_tests: Vec<String>,
    step_locations: Vec<(Category, Location)>,
    tests: Vec<String>,
    locations: Vec<(Category, Location)>,
    failed_steps: u32,
    /// The last meaningful line before the first failing step end, for logs no rule
    /// explains.
    fallback: Option<Candidate>,
    last_line: u64,
    /// Scratch: prefilter targets of the current line.
    scratch: Vec<Target>,
}

impl<'c> Session<'c> {
    fn new(c: &'c Classifier, meta: JobMeta) -> Self {
        let n = c.rules.len();
        Session {
            c,
            meta,
            ring: Vec::with_capacity(RING_LINES),
            ring_next: 0,
            states: (0..n).map(|_| RuleState::default()).collect(),
            touched: Vec::new(),
            pending: Vec::new(),
            awaiting: Vec::new(),
            step_tests: Vec::new(),
            step_locations: Vec::new(),
            tests: Vec::new(),
            locations: Vec::new(),
            failed_steps: 0,
            fallback: None,
            last_line: 0,
            scratch: Vec::new(),
        }
    }

    /// Feeds the next line. `number` is its 1-based line number in the raw log, `text` its
    /// normalised (and, in the service, redacted) text.
    pub(crate) fn push_line(&mut self, number: u64, text: &str) {
        self.last_line = number;
        let ring_slot = self.remember(number, text);
        if !self.awaiting.is_empty() {
            self.follow_ups(number, text);
        }

        // Rules see at most the first MATCH_PREFIX bytes of a line: tools print their
        // failure at the start of a line, and minified bundles or base64 blobs of tens of
        // kilobytes would otherwise cost more than the rest of the log.
        let text = cap_at(text, MATCH_PREFIX);
        let view = match_view(text);
        // Which patterns can match: the prefilter's, deduplicated, in rule order.
        self.scratch.clear();
        let (literal_rules, scratch) = (&self.c.literal_rules, &mut self.scratch);
        self.c.prefilter.for_each(text.as_bytes(), |literal| {
            scratch.extend_from_slice(&literal_rules[literal]);
        });
        self.scratch.extend_from_slice(&self.c.unfiltered);
        if !self.scratch.is_empty() {
            self.scratch.sort_unstable();
            self.scratch.dedup();
            let mut candidates = std::mem::take(&mut self.scratch);
            // Scope patterns first: a scope line can also be a hit.
            self.remember_scopes(&candidates, view);
            candidates.retain(|t| !t.is_scope());
            let groups = by_rule(&candidates);
            let mut end_status: Option<Option<i64>> = None;
            let mut is_warning: Option<bool> = None;
            // A wrapper line (`make: *** … Error 2`) is never a cause, whatever else matches.
            let wrapper = groups.iter().any(|g| {
                let rule = &self.c.rules[g.rule];
                rule.action == Action::Wrapper
                    && rule_match(
                        rule,
                        &self.c.starts[g.rule],
                        &candidates[g.targets.clone()],
                        if rule.raw { text } else { view },
                    )
                    .is_some()
            });
            if wrapper {
                self.ring[ring_slot].skip = true;
            }
            for group in &groups {
                let rule_index = group.rule;
                let rule = &self.c.rules[rule_index];
                let state = &self.states[rule_index];
                // A first-pick rule that already has this step's hit and collects nothing
                // cannot change the outcome: skip its regex.
                if rule.action == Action::Cause
                    && rule.pick == Pick::First
                    && state.step.is_some()
                    && !self.c.collects[rule_index]
                {
                    continue;
                }
                let subject = if rule.raw { text } else { view };
                let starts = &self.c.starts[rule_index];
                let Some((pattern, caps)) =
                    rule_match(rule, starts, &candidates[group.targets.clone()], subject)
                else {
                    continue;
                };
                match rule.action {
                    Action::StepStart => {
                        self.ring[ring_slot].skip = true;
                        self.close_step(StepStatus::ImpliedPass, number);
                    }
                    Action::StepEnd => {
                        self.ring[ring_slot].skip = true;
                        let status = caps.name("status").and_then(|s| s.as_str().parse().ok());
                        end_status = Some(status);
                    }
                    Action::Wrapper => {}
                    Action::Cause => {
                        if wrapper {
                            continue;
                        }
                        if !rule.warnings
                            && *is_warning.get_or_insert_with(|| self.c.warning.is_match(view))
                        {
                            continue;
                        }
                        self.hit(rule_index as u32, number, subject, pattern, &caps)
                    }
                }
            }
            candidates.clear();
            self.scratch = candidates;
            if let Some(status) = end_status {
                self.end_step(status, number);
            }
        }

        if !self.pending.is_empty() {
            self.cut_due_excerpts(number);
        }
    }

    /// Keeps the line as the scope of each rule whose scope pattern it matches. Only the
    /// line is kept; its captures are taken if a hit needs them.
    fn remember_scopes(&mut self, candidates: &[Target], view: &str) {
        for target in candidates.iter().filter(|t| t.is_scope()) {
            let rule = &self.c.rules[target.rule()];
            if let Some(p) = rule.scope.iter().position(|p| p.is_match(view)) {
                let scope = &mut self.states[target.rule()].scope;
                scope.0 = Some(p);
                scope.1.clear();
                scope.1.push_str(view);
            }
        }
    }

    /// A step's end marker with its exit status: closes the step as passed or failed; the
    /// first failed step remembers the last meaningful line before it as the fallback.
    fn end_step(&mut self, status: Option<i64>, number: u64) {
        let step = match status {
            Some(0) => StepStatus::Passed,
            _ => {
                self.failed_steps += 1;
                StepStatus::Failed { first: self.failed_steps == 1 }
            }
        };
        if step == (StepStatus::Failed { first: true }) {
            self.fallback = self.last_meaningful(number.saturating_sub(1));
        }
        self.close_step(step, number);
    }

    /// Stores the line in the context ring and returns its slot.
    fn remember(&mut self, number: u64, text: &str) -> usize {
        let slot = if self.ring.len() < RING_LINES {
            self.ring.push(RingLine::default());
            self.ring.len() - 1
        } else {
            let slot = self.ring_next;
            self.ring_next = (self.ring_next + 1) % RING_LINES;
            slot
        };
        let entry = &mut self.ring[slot];
        entry.number = number;
        entry.text.clear();
        entry.text.push_str(cap_line(text));
        entry.skip = text.trim().is_empty();
        slot
    }

    /// Ring entries in line order.
    fn ring_in_order(&self) -> impl Iterator<Item = &RingLine> {
        let (a, b) = self.ring.split_at(self.ring_next.min(self.ring.len()));
        b.iter().chain(a.iter())
    }

    fn excerpt(&self, line: u64, before: u32, after: u32) -> Option<Excerpt> {
        let from = line.saturating_sub(u64::from(before));
        let to = line + u64::from(after);
        let mut start = None;
        let mut end = 0;
        let mut text = String::new();
        for entry in self.ring_in_order().filter(|e| e.number >= from && e.number <= to) {
            if start.is_none() {
                start = Some(entry.number);
            } else {
                text.push('\n');
            }
            text.push_str(&entry.text);
            end = entry.number;
        }
        Some(Excerpt { start: start?, end, text })
    }

    /// The last non-blank, non-wrapper line at or before `line` still in the ring.
    fn last_meaningful(&self, line: u64) -> Option<Candidate> {
        let entry = self.ring_in_order().filter(|e| e.number <= line && !e.skip).last()?;
        Some(Candidate {
            line: entry.number,
            title: truncate(entry.text.trim(), MAX_TITLE),
            excerpt: self.excerpt(entry.number, 20, 19),
            location: None,
            score: 0,
            status: StepStatus::Open,
        })
    }

    fn hit(
        &mut self,
        rule_index: u32,
        number: u64,
        text: &str,
        pattern: usize,
        caps: &Captures<'_>,
    ) {
        let rule = &self.c.rules[rule_index as usize];
        let owned: Caps = caps
            .iter()
            .zip(rule.patterns[pattern].capture_names())
            .filter_map(|(m, name)| Some((name?.to_owned(), m?.as_str().to_owned())))
            .collect();
        let follow = rule.follow.as_ref();
        if let Some(f) = follow {
            if self.awaiting.len() >= MAX_AWAITING {
                self.awaiting.remove(0);
            }
            self.awaiting.push(Awaiting {
                rule: rule_index,
                hit_line: number,
                until: number + u64::from(f.within),
                text: text.to_owned(),
                caps: owned.clone(),
                confirmed: !f.required,
                joined: String::new(),
            });
            if f.required {
                return;
            }
        }
        self.record(rule_index, number, text, &owned, &Vec::new());
    }

    /// Registers a hit: its test name and location, and the rule's candidate for the step.
    fn record(
        &mut self,
        rule_index: u32,
        number: u64,
        text: &str,
        caps: &[(String, String)],
        extra: &[(String, String)],
    ) {
        let rule = &self.c.rules[rule_index as usize];
        let (scope_pattern, scope_line) = &self.states[rule_index as usize].scope;
        let scope_caps = scope_pattern.and_then(|p| rule.scope[p].captures(scope_line));
        let get = |name: &str| {
            lookup(name, text, caps, extra)
                .or_else(|| scope_caps.as_ref()?.name(name).map(|m| m.as_str().to_owned()))
        };
        if let Some(test) = rule.test.as_ref().and_then(|t| t.render(get)) {
            push_test(&mut self.step_tests, test);
        }
        let title = rule
            .title
            .render(get)
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| text.trim().to_owned());
        let title = truncate(&title, MAX_TITLE);
        let location = location_from(get, &title);
        if let Some(loc) = &location {
            push_location(&mut self.step_locations, rule.category, loc.clone());
        }

        let state = &mut self.states[rule_index as usize];
        let replace = match (&state.step, rule.pick) {
            (None, _) => true,
            (Some(_), Pick::Last) => true,
            (Some(_), Pick::First) => false,
        };
        if !replace {
            return;
        }
        if state.step.is_none() {
            self.touched.push(rule_index);
        }
        state.step = Some(Candidate {
            line: number,
            title,
            excerpt: None,
            location,
            score: rule.priority,
            status: StepStatus::Open,
        });
        self.pending.push((number + u64::from(rule.after), number, rule_index));
    }

    fn follow_ups(&mut self, number: u64, text: &str) {
        let mut i = 0;
        while i < self.awaiting.len() {
            let a = &self.awaiting[i];
            if number > a.until {
                self.awaiting.swap_remove(i);
                continue;
            }
            let (rule_index, hit_line) = (a.rule, a.hit_line);
            let rule = &self.c.rules[rule_index as usize];
            let Some(follow) = rule.follow.as_ref() else {
                self.awaiting.swap_remove(i);
                continue;
            };
            if let Some(join) = follow.join.as_deref() {
                if text.trim().is_empty() {
                    i += 1;
                    continue;
                }
                let Some(caps) = follow.pattern.captures(text) else {
                    // The block ended without its terminating line: nothing to name.
                    self.awaiting.swap_remove(i);
                    continue;
                };
                let a = &mut self.awaiting[i];
                if let Some(part) = caps.name(join) {
                    if !a.joined.is_empty() {
                        a.joined.push(' ');
                    }
                    a.joined.push_str(part.as_str().trim());
                }
                if caps.name("end").is_none() {
                    i += 1;
                    continue;
                }
                let extra: Caps = vec![(join.to_owned(), a.joined.clone())];
                if !a.confirmed {
                    let (hit_text, hit_caps) = (a.text.clone(), a.caps.clone());
                    self.awaiting.swap_remove(i);
                    self.record(rule_index, hit_line, &hit_text, &hit_caps, &extra);
                    continue;
                }
                let get = |name: &str| lookup(name, &a.text, &a.caps, &extra);
                if let Some(test) = rule.test.as_ref().and_then(|t| t.render(get)) {
                    push_test(&mut self.step_tests, test);
                }
                self.awaiting.swap_remove(i);
                continue;
            }
            let Some(caps) = follow.pattern.captures(text) else {
                i += 1;
                continue;
            };
            let extra: Caps = caps
                .iter()
                .zip(follow.pattern.capture_names())
                .filter_map(|(m, name)| Some((name?.to_owned(), m?.as_str().to_owned())))
                .collect();
            let repeat = follow.repeat;
            if !a.confirmed {
                // A required follow-up: the hit counts now, with both lines' captures.
                let (hit_text, hit_caps) = (a.text.clone(), a.caps.clone());
                self.awaiting[i].confirmed = true;
                self.record(rule_index, hit_line, &hit_text, &hit_caps, &extra);
            } else {
                let a = &self.awaiting[i];
                let get = |name: &str| lookup(name, &a.text, &extra, &a.caps);
                let test = rule.test.as_ref().and_then(|t| t.render(get));
                let title = rule.title.render(get).unwrap_or_else(|| a.text.trim().to_owned());
                let location = location_from(get, &truncate(&title, MAX_TITLE));
                if let Some(test) = test {
                    push_test(&mut self.step_tests, test);
                }
                if let Some(loc) = location {
                    push_location(&mut self.step_locations, rule.category, loc.clone());
                    let state = &mut self.states[rule_index as usize];
                    for cand in [state.step.as_mut(), state.best.as_mut()].into_iter().flatten() {
                        if cand.line == hit_line && cand.location.is_none() {
                            cand.location = Some(loc.clone());
                        }
                    }
                }
            }
            if repeat {
                i += 1;
            } else {
                self.awaiting.swap_remove(i);
            }
        }
    }

    fn cut_due_excerpts(&mut self, number: u64) {
        let mut i = 0;
        while i < self.pending.len() {
            let (due, hit_line, rule) = self.pending[i];
            if due > number {
                i += 1;
                continue;
            }
            self.pending.swap_remove(i);
            self.cut_excerpt(rule, hit_line);
        }
    }

    fn cut_excerpt(&mut self, rule_index: u32, hit_line: u64) {
        let rule = &self.c.rules[rule_index as usize];
        let needs = {
            let state = &self.states[rule_index as usize];
            [state.step.as_ref(), state.best.as_ref()]
                .into_iter()
                .flatten()
                .any(|c| c.line == hit_line && c.excerpt.is_none())
        };
        if !needs {
            return;
        }
        let excerpt = self.excerpt(hit_line, rule.before, rule.after);
        let state = &mut self.states[rule_index as usize];
        for cand in [state.step.as_mut(), state.best.as_mut()].into_iter().flatten() {
            if cand.line == hit_line && cand.excerpt.is_none() {
                cand.excerpt.clone_from(&excerpt);
            }
        }
    }

    /// Ends the current step with `status`: every rule's step hit is scored and competes
    /// with that rule's best so far; tests and locations of a passed step are dropped.
    fn close_step(&mut self, status: StepStatus, _at: u64) {
        for rule_index in std::mem::take(&mut self.touched) {
            let rule = &self.c.rules[rule_index as usize];
            let state = &mut self.states[rule_index as usize];
            let Some(mut cand) = state.step.take() else { continue };
            cand.status = status;
            cand.score = rule.priority + status.bonus();
            let better = match &state.best {
                None => true,
                Some(best) => {
                    cand.score > best.score || (cand.score == best.score && rule.pick == Pick::Last)
                }
            };
            if better {
                state.best = Some(cand);
            }
        }
        let tests = std::mem::take(&mut self.step_tests);
        let locations = std::mem::take(&mut self.step_locations);
        if !status.passed() {
            for t in tests {
                push_test(&mut self.tests, t);
            }
            for (cat, loc) in locations {
                push_location(&mut self.locations, cat, loc);
            }
        }
    }

    /// Ends the log and returns the verdict.
    pub(crate) fn finish(mut self) -> Analysis {
        let last = self.last_line;
        self.close_step(StepStatus::Open, last);
        let pending = std::mem::take(&mut self.pending);
        for (_, hit_line, rule) in pending {
            self.cut_excerpt(rule, hit_line);
        }

        let mut ranked: Vec<(u32, Candidate)> = self
            .states
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.best.take().map(|c| (i as u32, c)))
            .filter(|(i, _)| self.c.rules[*i as usize].action == Action::Cause)
            .collect();
        // Highest score first; on a tie the earlier line (the first cause), then rule order.
        ranked.sort_by(|(ra, a), (rb, b)| {
            b.score.cmp(&a.score).then(a.line.cmp(&b.line)).then(ra.cmp(rb))
        });

        let meta_verdict = meta_verdict(&self.meta);
        let mut analysis = match (meta_verdict, ranked.first()) {
            (Some((category, rule, title)), _) => {
                // The CI system knows why the job stopped; point at the log's own evidence
                // of it if a rule found some, else at the last thing the job printed.
                let evidence = ranked
                    .iter()
                    .find(|(r, _)| self.c.rules[*r as usize].category == category)
                    .map(|(_, c)| c.clone())
                    .or_else(|| self.last_meaningful(last));
                let (key_line, excerpt) = match evidence {
                    Some(c) => (Some(c.line), c.excerpt.or_else(|| self.excerpt(c.line, 20, 19))),
                    None => (None, None),
                };
                Analysis {
                    category,
                    confidence: 0.95,
                    rule: rule.to_owned(),
                    title,
                    key_line,
                    excerpt,
                    failing_tests: Vec::new(),
                    locations: Vec::new(),
                    secondary: Vec::new(),
                }
            }
            (None, Some((rule_index, cand))) => {
                let rule = &self.c.rules[*rule_index as usize];
                let mut confidence = rule.confidence;
                if cand.status.passed() {
                    confidence *= 0.5;
                }
                Analysis {
                    category: rule.category,
                    confidence,
                    rule: rule.id.clone(),
                    title: cand.title.clone(),
                    key_line: Some(cand.line),
                    excerpt: cand.excerpt.clone().or_else(|| self.excerpt(cand.line, 20, 19)),
                    failing_tests: Vec::new(),
                    locations: Vec::new(),
                    secondary: Vec::new(),
                }
            }
            (None, None) => {
                let fallback = self.fallback.take().or_else(|| self.last_meaningful(last));
                Analysis {
                    category: Category::Unknown,
                    confidence: 0.0,
                    rule: NO_RULE.to_owned(),
                    title: match &fallback {
                        Some(f) => format!("No rule matched; last output: {}", f.title),
                        None => "No rule matched and the log is empty".to_owned(),
                    },
                    key_line: fallback.as_ref().map(|f| f.line),
                    excerpt: fallback.and_then(|f| f.excerpt),
                    failing_tests: Vec::new(),
                    locations: Vec::new(),
                    secondary: Vec::new(),
                }
            }
        };

        let mut seen = vec![analysis.category];
        for (rule_index, cand) in &ranked {
            let rule = &self.c.rules[*rule_index as usize];
            if analysis.secondary.len() >= MAX_SECONDARY {
                break;
            }
            // Another failure: not the winner's own line, not a step that passed, not a
            // catch-all that could not say what it saw.
            if seen.contains(&rule.category)
                || cand.status.passed()
                || rule.category == Category::Unknown
                || Some(cand.line) == analysis.key_line
            {
                continue;
            }
            seen.push(rule.category);
            analysis.secondary.push(Secondary {
                category: rule.category,
                rule: rule.id.clone(),
                key_line: Some(cand.line),
            });
        }

        analysis.failing_tests = std::mem::take(&mut self.tests);
        let winner = analysis.category;
        let (mut mine, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.locations).into_iter().partition(|(c, _)| *c == winner);
        if mine.is_empty() {
            mine = others;
        }
        analysis.locations = mine.into_iter().map(|(_, l)| l).collect();
        analysis
    }
}

/// What the CI system's own job record says, when it explains the failure by itself.
fn meta_verdict(meta: &JobMeta) -> Option<(Category, &'static str, String)> {
    if meta.state.as_deref() == Some("timed_out") {
        return Some((
            Category::Timeout,
            "meta.timed-out",
            "The job ran past its time limit and was stopped".to_owned(),
        ));
    }
    // Buildkite docs, job `signal_reason`: agent_stop (the agent was stopped while running
    // the job), process_run_error (could not start the process, "often due to memory or
    // resource constraints"), cancel, agent_refused, signature_rejected.
    match meta.signal_reason.as_deref() {
        Some("agent_stop") | Some("agent_lost") => {
            return Some((
                Category::Resources,
                "meta.agent-lost",
                "The agent running the job stopped or was lost".to_owned(),
            ));
        }
        Some("process_run_error") => {
            return Some((
                Category::Resources,
                "meta.process-run-error",
                "The agent could not start the job's process".to_owned(),
            ));
        }
        Some("cancel") => {
            return Some((Category::Other, "meta.cancelled", "The job was cancelled".to_owned()));
        }
        Some("agent_refused") | Some("signature_rejected") => {
            return Some((
                Category::Config,
                "meta.agent-refused",
                "The agent refused the job (its hooks or signature check)".to_owned(),
            ));
        }
        _ => {}
    }
    if meta.exit_status == Some(137) {
        return Some((
            Category::Resources,
            "meta.sigkill",
            "The command was killed (exit status 137, SIGKILL): most often out of memory"
                .to_owned(),
        ));
    }
    None
}

/// The line without the prefixes that CI systems and harnesses put before a tool's own
/// output: GitHub Actions' `##[error]` annotations, mozharness's `HH:MM:SS  LEVEL - `,
/// Taskcluster's `[task <time>] ` (Treeherder strips the same before matching,
/// docs/classification.md#harness-prefixes).
pub(crate) fn match_view(text: &str) -> &str {
    let mut t = text;
    for _ in 0..3 {
        let before = t.len();
        if let Some(rest) = t.strip_prefix("##[") {
            for level in ["error]", "warning]", "notice]"] {
                if let Some(r) = rest.strip_prefix(level) {
                    t = r;
                    break;
                }
            }
        }
        if let Some(rest) = t.strip_prefix("[task ").or_else(|| t.strip_prefix("[taskcluster "))
            && let Some(close) = rest.find("] ")
        {
            t = &rest[close + 2..];
        }
        t = strip_mozharness(t);
        if t.len() == before {
            break;
        }
    }
    t
}

/// `12:00:00     INFO - msg` → `msg`.
fn strip_mozharness(t: &str) -> &str {
    let b = t.as_bytes();
    let clock = b.len() > 10
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
        && b[8] == b' ';
    if !clock {
        return t;
    }
    let rest = t[8..].trim_start();
    let level_end = rest.find(' ').unwrap_or(0);
    let level = &rest[..level_end];
    if !matches!(level, "INFO" | "WARNING" | "ERROR" | "CRITICAL" | "FATAL" | "DEBUG") {
        return t;
    }
    match rest[level_end..].trim_start().strip_prefix("- ") {
        Some(msg) => msg,
        None => rest[level_end..].trim_start().strip_prefix('-').unwrap_or(t),
    }
}

/// Runs a rule's patterns on a line: the first pattern that matches, unless an exclude
/// pattern matches too.
/// `targets` are the prefilter's targets for this rule: only those patterns can match.
fn rule_match<'t>(
    rule: &Rule,
    starts: &[Option<Vec<Vec<u8>>>],
    targets: &[Target],
    text: &'t str,
) -> Option<(usize, Captures<'t>)> {
    // A line that does not start like an anchored pattern cannot match it; then
    // `is_match`: most lines the prefilter lets through do not match, and it skips
    // allocating capture slots for them.
    let starts_right = |i: usize| match starts.get(i) {
        Some(Some(set)) => set.iter().any(|s| text.as_bytes().starts_with(s)),
        _ => true,
    };
    let found = targets
        .iter()
        .map(|t| t.pattern_index())
        .filter(|&i| starts_right(i))
        .filter_map(|i| Some((i, rule.patterns.get(i)?)))
        .filter(|(_, p)| p.is_match(text))
        .find_map(|(i, p)| Some((i, p.captures(text)?)))?;
    if rule.exclude.iter().any(|x| x.is_match(text)) {
        return None;
    }
    Some(found)
}

/// The sorted candidates cut into runs of one rule each, in rule order.
fn by_rule(candidates: &[Target]) -> Vec<RuleTargets> {
    let mut groups: Vec<RuleTargets> = Vec::new();
    for (i, t) in candidates.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if g.rule == t.rule() => g.targets.end = i + 1,
            _ => groups.push(RuleTargets { rule: t.rule(), targets: i..i + 1 }),
        }
    }
    groups
}

/// A template hole's value: `text` is the hit line, otherwise a capture of the hit or of
/// its follow-up line.
fn lookup(
    name: &str,
    text: &str,
    caps: &[(String, String)],
    extra: &[(String, String)],
) -> Option<String> {
    if name == "text" {
        return Some(text.trim().to_owned());
    }
    caps.iter().chain(extra.iter()).find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

fn location_from(get: impl Fn(&str) -> Option<String>, fallback_message: &str) -> Option<Location> {
    let path = get("path")?;
    let path = path.trim();
    let line: u32 = get("line")?.trim().parse().ok()?;
    if path.is_empty() || line == 0 {
        return None;
    }
    let column = get("column").and_then(|c| c.trim().parse().ok());
    let message = get("message")
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| fallback_message.to_owned());
    Some(Location { path: path.to_owned(), line, column, message: truncate(&message, MAX_TITLE) })
}

fn push_unique(list: &mut Vec<String>, item: String, cap: usize) {
    if list.len() < cap && !item.is_empty() && !list.contains(&item) {
        list.push(item);
    }
}

/// Adds a failing test's name unless it is already listed; frameworks print one test
/// under several names (pytest's `Class.test` header and `file.py::Class::test` summary),
/// so a name that ends another one is the same test and the longer name is kept.
fn push_test(list: &mut Vec<String>, item: String) {
    let norm = |s: &str| s.replace("::", ".");
    let new = norm(&item);
    let same = |old: &str, new: &str| {
        old == new || old.strip_suffix(new).is_some_and(|head| head.ends_with(['.', '/', ' ']))
    };
    if let Some(i) = list.iter().position(|t| {
        let old = norm(t);
        same(&old, &new) || same(&new, &old)
    }) {
        if new.len() > norm(&list[i]).len() {
            list[i] = item;
        }
        return;
    }
    push_unique(list, item, MAX_TESTS);
}

fn push_location(list: &mut Vec<(Category, Location)>, category: Category, loc: Location) {
    let dup = list
        .iter()
        .any(|(_, l)| l.path == loc.path && l.line == loc.line && l.column == loc.column);
    if !dup && list.len() < MAX_LOCATIONS {
        list.push((category, loc));
    }
}

fn cap_line(text: &str) -> &str {
    cap_at(text, MAX_KEPT_LINE)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cap_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[rule]]
id = "t.end"
action = "step-end"
pattern = '^The command ".*" exited with (?P<status>\d+)\.'

[[rule]]
id = "t.wrap"
action = "wrapper"
pattern = '^make: \*\*\* '

[[rule]]
id = "t.strong"
category = "dependency"
priority = 90
pattern = '^npm ERR! code (?P<code>E\d+)'
title = "npm {code}"

[[rule]]
id = "t.test"
category = "test"
priority = 60
pattern = '^FAIL (?P<test>\S+)'
title = "Test failed: {test}"

[[rule]]
id = "t.last"
category = "lint"
priority = 50
pick = "last"
pattern = '^lint: (?P<message>.+)'

[[rule]]
id = "t.error"
category = "unknown"
priority = 10
pattern = '(?i)\berror\b'

[[rule]]
id = "t.rustc"
category = "compile"
priority = 85
pattern = '^error: (?P<message>.+)'
follow = { pattern = '^\s*--> (?P<path>[^:]+):(?P<line>\d+):(?P<column>\d+)', within = 2, required = true }
"#;

    fn classifier() -> Classifier {
        let mut set = RuleSet::default();
        set.merge("test.toml", RULES).expect("test rules are valid");
        Classifier::from_rules(set).expect("prefilter builds")
    }

    fn run(c: &Classifier, meta: JobMeta, log: &str) -> Analysis {
        let mut s = c.session(meta);
        for (i, line) in log.lines().enumerate() {
            s.push_line(i as u64 + 1, line);
        }
        s.finish()
    }

    #[test]
    fn a_hit_in_a_step_that_passed_loses_to_one_in_the_failing_step() {
        let log = "npm ERR! code E404\nThe command \"npm i\" exited with 0.\nFAIL tests/a.js\nThe command \"npm t\" exited with 1.\n";
        let a = run(&classifier(), JobMeta::default(), log);
        assert_eq!((a.category, a.rule.as_str(), a.key_line), (Category::Test, "t.test", Some(3)));
        assert_eq!(a.failing_tests, ["tests/a.js"]);
        // The passed step's error is not reported as another failure either.
        assert!(a.secondary.is_empty(), "{:?}", a.secondary);
    }

    #[test]
    fn without_steps_priority_decides() {
        let a = run(&classifier(), JobMeta::default(), "FAIL tests/a.js\nnpm ERR! code E404\n");
        assert_eq!((a.rule.as_str(), a.title.as_str()), ("t.strong", "npm E404"));
        assert_eq!(a.secondary.len(), 1);
        assert_eq!((a.secondary[0].category, a.secondary[0].key_line), (Category::Test, Some(1)));
    }

    #[test]
    fn wrapper_lines_are_never_key_lines() {
        let a = run(
            &classifier(),
            JobMeta::default(),
            "building\nreal output\nmake: *** [all] Error 2\n",
        );
        assert_eq!(a.rule, NO_RULE);
        assert_eq!(a.key_line, Some(2), "the fallback skips the wrapper: {a:?}");
    }

    #[test]
    fn first_and_last_picks() {
        let log = "FAIL a\nFAIL b\nlint: one\nlint: two\n";
        let a = run(&classifier(), JobMeta::default(), log);
        assert_eq!((a.rule.as_str(), a.key_line), ("t.test", Some(1)));
        assert_eq!(a.failing_tests, ["a", "b"]);
        assert_eq!(a.secondary[0].key_line, Some(4), "a `last` rule keeps its last hit");
    }

    #[test]
    fn a_required_follow_up_must_appear() {
        let c = classifier();
        let a = run(&c, JobMeta::default(), "error: something else\nok\nok\n");
        assert_eq!(a.rule, "t.error", "no `-->` line: not a rustc error");
        let a = run(&c, JobMeta::default(), "error: mismatched types\n  --> src/a.rs:3:5\n");
        assert_eq!((a.rule.as_str(), a.key_line), ("t.rustc", Some(1)));
        assert_eq!(a.locations[0].path, "src/a.rs");
        assert_eq!((a.locations[0].line, a.locations[0].column), (3, Some(5)));
    }

    #[test]
    fn warnings_do_not_fail_a_job() {
        let a = run(
            &classifier(),
            JobMeta::default(),
            "warning: error-prone pattern\n[WARN] error budget low\n",
        );
        assert_eq!(a.rule, NO_RULE);
    }

    #[test]
    fn job_metadata_explains_what_a_log_cannot() {
        let c = classifier();
        let log = "FAIL a\nlast words\n";
        let meta = |exit: Option<i32>, signal: Option<&str>, state: Option<&str>| JobMeta {
            exit_status: exit,
            signal_reason: signal.map(str::to_owned),
            state: state.map(str::to_owned),
        };
        let a = run(&c, meta(Some(137), None, None), log);
        assert_eq!(
            (a.category, a.rule.as_str(), a.key_line),
            (Category::Resources, "meta.sigkill", Some(2))
        );
        let a = run(&c, meta(Some(-1), Some("agent_stop"), None), log);
        assert_eq!(a.category, Category::Resources);
        let a = run(&c, meta(None, None, Some("timed_out")), log);
        assert_eq!(a.category, Category::Timeout);
        let a = run(&c, meta(Some(1), None, None), log);
        assert_eq!(a.category, Category::Test, "an ordinary exit status changes nothing");
    }

    #[test]
    fn excerpt_is_at_most_forty_lines_around_the_key_line() {
        let mut log: Vec<String> = (1..=200).map(|i| format!("line {i}")).collect();
        log[99] = "FAIL t".into();
        let a = run(&classifier(), JobMeta::default(), &log.join("\n"));
        let ex = a.excerpt.expect("an excerpt");
        assert_eq!((ex.start, ex.end), (80, 119));
        assert_eq!(ex.text.lines().count(), 40);
        assert_eq!(ex.text.lines().nth(20), Some("FAIL t"));
    }

    #[test]
    fn nothing_matched_points_at_the_last_output() {
        let a = run(&classifier(), JobMeta::default(), "compiling\nsegfault in foo\n\n");
        assert_eq!(
            (a.category, a.rule.as_str(), a.key_line),
            (Category::Unknown, NO_RULE, Some(2))
        );
        let a = run(&classifier(), JobMeta::default(), "");
        assert_eq!((a.key_line, a.excerpt), (None, None));
    }

    #[test]
    fn match_view_strips_ci_prefixes() {
        assert_eq!(match_view("##[error]boom"), "boom");
        assert_eq!(
            match_view("[task 2025-02-13T21:47:57.534Z] 21:47:57     INFO - TEST-START | a"),
            "TEST-START | a"
        );
        assert_eq!(match_view("12:00:00    ERROR -  error: x"), " error: x");
        assert_eq!(match_view("12:00:00 hello"), "12:00:00 hello");
    }

    #[test]
    fn every_embedded_rule_is_prefiltered() {
        // A rule without a required literal runs on every line of every log.
        let c = Classifier::embedded().expect("embedded rules are valid");
        let unfiltered: Vec<&str> = c.unfiltered_rules().collect();
        assert!(unfiltered.is_empty(), "rules without literals: {unfiltered:?}");
    }

    #[test]
    fn user_rules_replace_and_add() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("team.toml"),
            "[[rule]]\nid = 'rust.rustc-error-code'\ncategory = 'other'\npriority = 85\npattern = '^error\\[E\\d+\\]: (?P<message>.+)'\n\
             [[rule]]\nid = 'team.flaky-db'\ncategory = 'network'\npriority = 99\npattern = 'database went away'\n",
        )
        .expect("write");
        let c = Classifier::with_user_rules(dir.path()).expect("valid user rules");
        let a = run(&c, JobMeta::default(), "error[E0308]: mismatched types\n");
        assert_eq!((a.category, a.rule.as_str()), (Category::Other, "rust.rustc-error-code"));
        let a = run(&c, JobMeta::default(), "test x ... FAILED\nthe database went away\n");
        assert_eq!((a.category, a.rule.as_str()), (Category::Network, "team.flaky-db"));
    }
}

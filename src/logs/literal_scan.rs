//! Which of many literals occur in a line: an ASCII case-insensitive Aho-Corasick DFA, run
//! over several parts of the line at once.
//!
//! A DFA scan is bound by latency, not by work: each byte's transition is a load whose
//! address depends on the previous one, a handful of cycles per byte whatever the CPU can
//! do in parallel. Hundreds of case-insensitive literals leave `aho-corasick` no SIMD
//! prefilter to skip ahead with, so the classifier's prefilter and the redactor's trigger
//! check were each paying that chain on every byte of the log. Here a line is cut into
//! lanes that overlap by the longest literal less one byte, each lane starts from the
//! start state, and the lanes are stepped together: independent chains that the CPU
//! overlaps. Every occurrence lies wholly inside some lane, so none is missed; one in an
//! overlap may be reported twice, which callers that collect a set do not mind.

use std::ops::Range;

use aho_corasick::automaton::Automaton as _;
use aho_corasick::automaton::StateID;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, BuildError, MatchKind};

/// Bytes each lane must have besides its overlap with the next: below that, fewer lanes
/// take fewer steps.
const MIN_LANE_BYTES: usize = 2;

/// A set of literals, matched ASCII case-insensitively anywhere in a haystack.
#[derive(Debug)]
pub(crate) struct LiteralScanner {
    dfa: DFA,
    start: StateID,
    /// Longest literal in bytes: lanes overlap by one less.
    max_len: usize,
}

impl LiteralScanner {
    /// Builds the DFA. Fails when the literals make it too large.
    pub(crate) fn new<P: AsRef<[u8]>>(literals: &[P]) -> Result<Self, BuildError> {
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            // No prefilter could help (see the module docs), and without one the start
            // state is not special, which keeps the inner loop to one compare per byte.
            .prefilter(false)
            .build(literals)?;
        // Built unanchored (the default start kind), so the unanchored start state exists.
        let start = dfa.start_state(Anchored::No).expect("an unanchored DFA has a start state");
        let max_len = dfa.max_pattern_len();
        Ok(LiteralScanner { dfa, start, max_len })
    }

    /// Calls `hit` with the pattern index and byte range of every occurrence of a literal
    /// in `hay`, overlapping ones included; an occurrence may be reported twice.
    pub(crate) fn for_each(&self, hay: &[u8], mut hit: impl FnMut(usize, Range<usize>)) {
        let _ = self.scan(hay, |pattern, range| {
            hit(pattern, range);
            false
        });
    }

    /// Whether any literal occurs in `hay`.
    pub(crate) fn is_match(&self, hay: &[u8]) -> bool {
        self.scan(hay, |_, _| true)
    }

    /// The occurrence that ends first in `hay` (of those ending there, the first literal).
    pub(crate) fn find(&self, hay: &[u8]) -> Option<Range<usize>> {
        let mut first = None;
        // One lane: the lanes of a longer haystack report out of order.
        self.lanes::<1>(hay, 0, &mut |_, range| {
            first = Some(range);
            true
        });
        first
    }

    /// Reports occurrences to `hit` until it returns `true`; returns whether it did.
    /// Not inlined: in a large caller the lane states would not stay in registers.
    #[inline(never)]
    fn scan(&self, hay: &[u8], mut hit: impl FnMut(usize, Range<usize>) -> bool) -> bool {
        let overlap = self.max_len.saturating_sub(1);
        if hay.len() >= 4 * MIN_LANE_BYTES + 3 * overlap {
            self.lanes::<4>(hay, overlap, &mut hit)
        } else if hay.len() >= 2 * MIN_LANE_BYTES + overlap {
            self.lanes::<2>(hay, overlap, &mut hit)
        } else {
            self.lanes::<1>(hay, overlap, &mut hit)
        }
    }

    /// `N` lanes of equal length `len`, lane `i` starting at `i * step` where
    /// `step = len - overlap`, so that consecutive lanes share `overlap` bytes; the bytes
    /// after the last lane (fewer than `N`) finish the last lane's state alone.
    fn lanes<const N: usize>(
        &self,
        hay: &[u8],
        overlap: usize,
        hit: &mut impl FnMut(usize, Range<usize>) -> bool,
    ) -> bool {
        let len = (hay.len() + (N - 1) * overlap) / N;
        let step = len - overlap.min(len);
        let starts: [usize; N] = std::array::from_fn(|i| i * step);
        let lanes: [&[u8]; N] = std::array::from_fn(|i| &hay[starts[i]..starts[i] + len]);
        let mut states = [self.start; N];
        for k in 0..len {
            for (state, lane) in states.iter_mut().zip(&lanes) {
                *state = self.dfa.next_state(Anchored::No, *state, lane[k]);
            }
            if states.iter().any(|&s| self.dfa.is_special(s)) {
                for (&state, &start) in states.iter().zip(&starts) {
                    if self.report(state, start + k + 1, hit) {
                        return true;
                    }
                }
            }
        }
        // The tail that `len` rounded away continues the last lane.
        let mut state = states[N - 1];
        for (at, &byte) in hay.iter().enumerate().skip(starts[N - 1] + len) {
            state = self.dfa.next_state(Anchored::No, state, byte);
            if self.dfa.is_special(state) && self.report(state, at + 1, hit) {
                return true;
            }
        }
        false
    }

    /// Reports the literals that end at `end` in match state `state`.
    fn report(
        &self,
        state: StateID,
        end: usize,
        hit: &mut impl FnMut(usize, Range<usize>) -> bool,
    ) -> bool {
        if !self.dfa.is_match(state) {
            return false;
        }
        for index in 0..self.dfa.match_len(state) {
            let pattern = self.dfa.match_pattern(state, index);
            let start = end - self.dfa.pattern_len(pattern);
            if hit(pattern.as_usize(), start..end) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use aho_corasick::AhoCorasick;
    use proptest::prelude::*;

    use super::*;

    const LITERALS: &[&str] = &["error", "rror:", "fail", "ab", "abcabcabcab", "---", "x"];

    /// Every (pattern, range) occurrence, as `aho-corasick`'s overlapping search finds them.
    fn expected(hay: &[u8]) -> BTreeSet<(usize, usize, usize)> {
        let ac =
            AhoCorasick::builder().ascii_case_insensitive(true).build(LITERALS).expect("builds");
        ac.find_overlapping_iter(hay)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect()
    }

    #[test]
    fn finds_occurrences_across_lane_boundaries() {
        let scanner = LiteralScanner::new(LITERALS).expect("builds");
        // Long enough for four lanes, with literals straddling every boundary.
        let hay = "ABCABCABCAB ".repeat(12) + "Error: FAIL --- x";
        let mut found = BTreeSet::new();
        scanner.for_each(hay.as_bytes(), |p, r| {
            found.insert((p, r.start, r.end));
        });
        assert_eq!(found, expected(hay.as_bytes()));
        assert!(scanner.is_match(hay.as_bytes()));
        assert!(!scanner.is_match(b"nothing to see here, just words"));
    }

    proptest! {
        #[test]
        fn agrees_with_overlapping_aho_corasick(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-cA-C :-]{0,20}",
                    Just("error:".to_owned()),
                    Just("FAIL".to_owned()),
                    Just("abcabcabcab".to_owned()),
                ],
                0..40,
            ),
        ) {
            let hay = parts.concat();
            let scanner = LiteralScanner::new(LITERALS).expect("builds");
            let mut found = BTreeSet::new();
            scanner.for_each(hay.as_bytes(), |p, r| {
                found.insert((p, r.start, r.end));
            });
            let want = expected(hay.as_bytes());
            prop_assert_eq!(scanner.is_match(hay.as_bytes()), !want.is_empty());
            prop_assert_eq!(found, want);
        }
    }
}

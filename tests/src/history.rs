//! The history checker of the fault tests (spec/fleet-replication.md §8, spec/vault.md §5).
//!
//! Every fault run — in one process (`vault_fault`, `replication_fault`), on real processes
//! in network namespaces (`netns_fault`), and the rollback runs — records each request it
//! sent and the answer it got as an [`Entry`], and hands the whole [`History`] to
//! [`check`]. The checker knows nothing about how the requests were made; it judges the
//! history alone, per record:
//!
//! 1. **No unexpected answer**: an error is one of the indeterminate codes ([`INDETERMINATE`]:
//!    the attempt may or may not have been committed, spec/fleet-replication.md §3.4), or
//!    `vault.record.locked`; a right code is never refused and a wrong one never opens.
//! 2. **Segments**: a record's attempts are split at every recovery with the right code that
//!    succeeded or whose answer was lost (either may have reset the counter, spec/vault.md
//!    §5.2). In every segment the attempts that got a KE2 are at most the guess limit, no
//!    remaining count is reported twice, and an attempt that ended before another began
//!    reports a strictly higher remaining count (one committed order).
//! 3. **Generations** are split at the successful recoveries only: no attempt reports fewer
//!    guesses left than the attempts of its generation that could have been counted before
//!    it allow (an indeterminate answer may have spent a guess, never returned one).
//! 4. **Locked only when spent**: `vault.record.locked` for a registered record needs as many
//!    possibly-counted attempts in its generation as the limit.
//! 5. **Nothing acknowledged is lost**: every acknowledged registration has a final
//!    [`Kind::Restore`] that recovered it, unless its last generation could have spent every
//!    guess. A registration answered with an indeterminate code is indeterminate: it need not
//!    restore, and its record's other checks still apply.
//!
//! Several entries may be one attempt retried with the same request id (the node's
//! idempotent resubmission, spec/fleet-replication.md §3 rule 4): entries with the same
//! `request` are judged once, and must agree.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Error codes that leave an attempt's fate unknown to the client: it may have been
/// committed (and spent a guess) or not. `client.transport` covers timeouts and refused
/// connections; `session.request.replayed` is a retried request id the node already saw.
pub const INDETERMINATE: &[&str] =
    &["fleet.unavailable", "client.transport", "io.http", "session.request.replayed"];

/// Error codes of a request the node refused before anything was committed (its rate
/// limits, spec/node-api.md §6): definitely not counted.
pub const REFUSED: &[&str] = &["vault.attempt.rate_limited", "client.rate_limited"];

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// spec/vault.md §6.3.
    Register,
    /// A recovery attempt with a wrong code (spec/vault.md §6.4; the KE2 does not open).
    Guess,
    /// A recovery attempt with the right code during the run.
    Recover,
    /// The final recovery with the right code, after the faults are healed.
    Restore,
}

/// What the client saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// A registration acknowledged with the guesses the record allows.
    Registered(u32),
    /// A KE2 for a wrong code, reporting the guesses left after this one.
    WrongCode(u32),
    /// The right code recovered the right backup key; the counter now allows this many.
    Recovered(u32),
    /// The right code recovered a different key, or a wrong code opened the KE2.
    WrongKey,
    /// The right code was refused as wrong, with this many guesses left.
    RightCodeRefused(u32),
    /// `vault.record.locked`.
    Locked,
    /// Any other error, by its spec code.
    Failed(String),
}

/// One request and its answer; times are milliseconds on one clock shared by all clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The client that sent it.
    pub client: u32,
    /// The node it went to.
    pub node: String,
    /// The record id (printable).
    pub record: String,
    /// What was asked.
    pub kind: Kind,
    /// The attempt's request id, when retries reuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// When it was sent.
    pub start_ms: u64,
    /// When the answer arrived.
    pub end_ms: u64,
    /// The answer.
    pub answer: Answer,
}

/// A recorded run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// The records' guess limit.
    pub limit: u32,
    /// Every request and answer.
    pub entries: Vec<Entry>,
}

/// One broken rule, naming the record and the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The record.
    pub record: String,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.record, self.detail)
    }
}

/// What the checker counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Entries per kind with an acknowledged answer, in the order register, guess, recover,
    /// restore.
    pub acknowledged: [usize; 4],
    /// Entries answered with an indeterminate code.
    pub indeterminate: usize,
    /// Entries answered `vault.record.locked`.
    pub locked: usize,
    /// Records seen.
    pub records: usize,
}

impl Summary {
    /// Acknowledged operations of every kind.
    pub fn acknowledged_total(&self) -> usize {
        self.acknowledged.iter().sum()
    }
}

fn indeterminate(a: &Answer) -> bool {
    matches!(a, Answer::Failed(code) if INDETERMINATE.contains(&code.as_str()))
}

impl History {
    /// Append an entry.
    pub fn push(&mut self, e: Entry) {
        self.entries.push(e);
    }

    /// Render the history, one entry per line, for a failure report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut sorted: Vec<&Entry> = self.entries.iter().collect();
        sorted.sort_by_key(|e| (e.start_ms, e.end_ms));
        for e in sorted {
            out.push_str(&format!(
                "{:>8}..{:<8} client {:<3} {:<8} {:?} {} {}{:?}\n",
                e.start_ms,
                e.end_ms,
                e.client,
                e.node,
                e.kind,
                e.record,
                e.request.as_deref().map(|r| format!("req {r} ")).unwrap_or_default(),
                e.answer
            ));
        }
        out
    }
}

/// Judge `h`: every violation of the rules of this module, and what was counted.
pub fn check(h: &History) -> (Summary, Vec<Violation>) {
    let mut v = Vec::new();
    let mut s = Summary::default();
    let mut by_record: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    // A retried request id is one attempt, which may have taken effect from its first try
    // on: judged once, over the interval from the first try's start to the answer that is
    // kept, and every answer that is not indeterminate must agree.
    let mut by_request: BTreeMap<(&str, &str), Entry> = BTreeMap::new();
    for e in &h.entries {
        let bad = |detail: String| Violation { record: e.record.clone(), detail };
        match &e.answer {
            Answer::Registered(n) if e.kind == Kind::Register && *n == h.limit => {}
            Answer::WrongCode(n) if e.kind == Kind::Guess && *n < h.limit => {}
            Answer::Recovered(n)
                if matches!(e.kind, Kind::Recover | Kind::Restore) && (*n == h.limit || *n == 0) => {}
            Answer::Locked if e.kind != Kind::Register => {}
            Answer::Failed(code) if REFUSED.contains(&code.as_str()) => {}
            a if indeterminate(a) => {}
            a => v.push(bad(format!("{:?} answered {a:?} (client {}, {} ms)", e.kind, e.client, e.start_ms))),
        }
        match &e.answer {
            Answer::Registered(_) => s.acknowledged[0] += 1,
            Answer::WrongCode(_) => s.acknowledged[1] += 1,
            Answer::Recovered(_) if e.kind == Kind::Recover => s.acknowledged[2] += 1,
            Answer::Recovered(_) => s.acknowledged[3] += 1,
            Answer::Locked => s.locked += 1,
            a if indeterminate(a) => s.indeterminate += 1,
            _ => {}
        }
        if let Some(r) = &e.request {
            match by_request.get_mut(&(e.record.as_str(), r.as_str())) {
                Some(kept) if indeterminate(&kept.answer) => {
                    let start_ms = kept.start_ms.min(e.start_ms);
                    *kept = Entry { start_ms, ..e.clone() };
                }
                Some(kept) => {
                    if !indeterminate(&e.answer) && kept.answer != e.answer {
                        v.push(bad(format!("request {r} answered {:?} and {:?}", kept.answer, e.answer)));
                    }
                    kept.start_ms = kept.start_ms.min(e.start_ms);
                }
                None => {
                    by_request.insert((&e.record, r), e.clone());
                }
            }
            continue;
        }
        by_record.entry(&e.record).or_default().push(e);
    }
    let merged: Vec<Entry> = by_request.into_values().collect();
    for e in &merged {
        by_record.entry(&e.record).or_default().push(e);
    }
    s.records = by_record.len();
    for (record, mut entries) in by_record {
        entries.sort_by_key(|e| (e.start_ms, e.end_ms));
        check_record(h.limit, record, &entries, &mut v);
    }
    (s, v)
}

/// Split `entries` (attempts, not registrations) at `resets`: the attempts that lie wholly
/// between two resets per part, and per part those that may have taken effect in it but
/// overlap one of its bounds. An attempt takes effect somewhere between being sent and
/// being answered, as does a reset, so an attempt may fall in any part from the one after
/// the resets answered before it was sent to the one after the resets sent before it was
/// answered.
fn partition<'a>(entries: &[&'a Entry], resets: &[&'a Entry]) -> (Vec<Vec<&'a Entry>>, Vec<Vec<&'a Entry>>) {
    let mut inside: Vec<Vec<&Entry>> = (0..=resets.len()).map(|_| Vec::new()).collect();
    let mut overlapping: Vec<Vec<&Entry>> = (0..=resets.len()).map(|_| Vec::new()).collect();
    for e in entries.iter().copied() {
        if resets.iter().any(|r| std::ptr::eq(*r, e)) {
            continue;
        }
        let first = resets.iter().filter(|r| r.end_ms <= e.start_ms).count();
        let last = resets.iter().filter(|r| r.start_ms < e.end_ms).count().max(first);
        if first == last {
            inside[first].push(e);
        } else {
            for part in &mut overlapping[first..=last] {
                part.push(e);
            }
        }
    }
    (inside, overlapping)
}

fn ke2(e: &Entry) -> Option<u32> {
    match e.answer {
        Answer::WrongCode(n) | Answer::RightCodeRefused(n) => Some(n),
        _ => None,
    }
}

/// Whether `e` may have spent a guess: it got a KE2, or its fate is unknown.
fn may_count(e: &Entry) -> bool {
    ke2(e).is_some() || indeterminate(&e.answer)
}

fn by_end(mut r: Vec<&Entry>) -> Vec<&Entry> {
    r.sort_by_key(|e| e.end_ms);
    r
}

fn check_record(limit: u32, record: &str, entries: &[&Entry], v: &mut Vec<Violation>) {
    let bad = |detail: String| Violation { record: record.to_owned(), detail };
    let registered = entries.iter().any(|e| e.kind == Kind::Register);
    let acked_registration = entries.iter().any(|e| matches!(e.answer, Answer::Registered(_)));
    let attempts: Vec<&Entry> = entries.iter().copied().filter(|e| e.kind != Kind::Register).collect();
    // Resets: recoveries with the right code that succeeded, and those whose answer was
    // lost (an indeterminate recovery may have committed its reset).
    let definite =
        by_end(attempts.iter().copied().filter(|e| matches!(e.answer, Answer::Recovered(_))).collect());
    let any_reset = by_end(
        attempts
            .iter()
            .copied()
            .filter(|e| {
                matches!(e.answer, Answer::Recovered(_))
                    || (matches!(e.kind, Kind::Recover | Kind::Restore) && indeterminate(&e.answer))
            })
            .collect(),
    );
    // Upper bounds (the limit, distinct counts, real-time order) hold in every part between
    // two possible resets, whichever of them happened.
    let (segments, _) = partition(&attempts, &any_reset);
    for (g, part) in segments.iter().enumerate() {
        let closed_by_success = any_reset.get(g).is_some_and(|r| matches!(r.answer, Answer::Recovered(_)));
        let ke2s: Vec<(&Entry, u32)> = part.iter().filter_map(|e| ke2(e).map(|n| (*e, n))).collect();
        let with_closing = ke2s.len() + usize::from(closed_by_success);
        if with_closing > limit as usize {
            v.push(bad(format!("segment {g}: {with_closing} attempts got a KE2, the limit is {limit}")));
        }
        let mut counts: Vec<u32> = ke2s.iter().map(|(_, n)| *n).collect();
        counts.sort_unstable();
        if let Some(w) = counts.windows(2).find(|w| w[0] == w[1]) {
            v.push(bad(format!("segment {g}: remaining count {} reported twice", w[0])));
        }
        for (a, n) in &ke2s {
            for (b, m) in ke2s.iter().filter(|(b, _)| b.end_ms < a.start_ms) {
                if m <= n {
                    v.push(bad(format!(
                        "segment {g}: {} ms reported {m} left, then {} ms reported {n} left",
                        b.start_ms, a.start_ms
                    )));
                }
            }
        }
    }
    // Lower bounds (no attempt counted that was not made) hold between definite resets,
    // counting every attempt that may have spent a guess.
    let (generations, overlapping) = partition(&attempts, &definite);
    let possible_before = |g: usize, t: u64| {
        generations[g].iter().filter(|b| b.start_ms <= t && may_count(b)).count()
            + overlapping[g].iter().filter(|b| b.start_ms <= t).count()
    };
    for (g, part) in generations.iter().enumerate() {
        for a in part.iter() {
            if let Some(n) = ke2(a) {
                let possible = possible_before(g, a.end_ms);
                if (limit.saturating_sub(n) as usize) > possible {
                    v.push(bad(format!(
                        "generation {g}: {} ms reported {n} left after at most {possible} attempts",
                        a.start_ms
                    )));
                }
            }
        }
        // The record may be gone by a recovery on its last guess, or spent in this generation.
        let destroyed = g > 0 && matches!(definite[g - 1].answer, Answer::Recovered(0));
        if registered && !destroyed {
            for a in part.iter().filter(|a| a.answer == Answer::Locked) {
                let possible = possible_before(g, a.end_ms);
                if possible < limit as usize {
                    v.push(bad(format!(
                        "generation {g}: locked at {} ms after at most {possible} attempts",
                        a.start_ms
                    )));
                }
            }
        }
        if let Some(r) = definite.get(g)
            && r.answer == Answer::Recovered(0)
        {
            let possible = possible_before(g, r.end_ms) + 1;
            if possible < limit as usize {
                v.push(bad(format!(
                    "generation {g}: the recovery at {} ms was the last guess after at most {possible} attempts",
                    r.start_ms
                )));
            }
        }
    }
    // Nothing acknowledged is lost: the final restore recovers, unless the last generation
    // could have spent every guess.
    if acked_registration {
        let last = generations.len() - 1;
        let restored =
            entries.iter().any(|e| e.kind == Kind::Restore && matches!(e.answer, Answer::Recovered(_)));
        let spent = possible_before(last, u64::MAX) >= limit as usize
            || (last > 0 && definite[last - 1].answer == Answer::Recovered(0));
        if !restored && !spent {
            let finals: Vec<&Answer> =
                entries.iter().filter(|e| e.kind == Kind::Restore).map(|e| &e.answer).collect();
            v.push(bad(format!(
                "acknowledged registration did not restore at the end (restores: {finals:?})"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u32 = 3;

    fn e(client: u32, record: &str, kind: Kind, start_ms: u64, end_ms: u64, answer: Answer) -> Entry {
        Entry {
            client,
            node: "node-1".into(),
            record: record.into(),
            kind,
            request: None,
            start_ms,
            end_ms,
            answer,
        }
    }

    fn judge(entries: Vec<Entry>) -> Vec<String> {
        check(&History { limit: LIMIT, entries }).1.iter().map(|v| v.to_string()).collect()
    }

    fn unavailable() -> Answer {
        Answer::Failed("fleet.unavailable".into())
    }

    fn registered(record: &str) -> Entry {
        e(0, record, Kind::Register, 0, 1, Answer::Registered(LIMIT))
    }

    #[test]
    fn a_clean_history_passes() {
        let h = vec![
            registered("r"),
            e(1, "r", Kind::Guess, 2, 3, Answer::WrongCode(2)),
            e(1, "r", Kind::Guess, 4, 5, unavailable()),
            e(1, "r", Kind::Guess, 6, 7, Answer::WrongCode(0)),
            e(1, "r", Kind::Guess, 8, 9, Answer::Locked),
        ];
        assert_eq!(judge(h), Vec::<String>::new());
        let h = vec![
            registered("s"),
            e(1, "s", Kind::Guess, 2, 3, Answer::WrongCode(2)),
            e(1, "s", Kind::Recover, 4, 5, Answer::Recovered(LIMIT)),
            e(1, "s", Kind::Guess, 6, 7, Answer::WrongCode(2)),
            e(1, "s", Kind::Restore, 8, 9, Answer::Recovered(LIMIT)),
        ];
        assert_eq!(judge(h), Vec::<String>::new());
    }

    #[test]
    fn a_remaining_count_handed_out_twice_fails() {
        let h = vec![
            registered("r"),
            e(1, "r", Kind::Guess, 2, 5, Answer::WrongCode(2)),
            e(2, "r", Kind::Guess, 3, 6, Answer::WrongCode(2)),
            e(0, "r", Kind::Restore, 9, 10, Answer::Recovered(LIMIT)),
        ];
        assert_eq!(judge(h), vec!["r: segment 0: remaining count 2 reported twice"]);
    }

    #[test]
    fn more_kes_than_the_limit_fail() {
        let mut h = vec![registered("r")];
        for (i, n) in [2, 1, 0].into_iter().enumerate() {
            h.push(e(1, "r", Kind::Guess, 10 * i as u64 + 2, 10 * i as u64 + 3, Answer::WrongCode(n)));
        }
        h.push(e(1, "r", Kind::Recover, 40, 41, Answer::Recovered(LIMIT)));
        let v = judge(h);
        assert!(v.iter().any(|s| s.contains("segment 0: 4 attempts got a KE2, the limit is 3")), "{v:?}");
    }

    #[test]
    fn a_count_that_goes_up_in_real_time_fails() {
        let h = vec![
            registered("r"),
            e(1, "r", Kind::Guess, 2, 3, Answer::WrongCode(1)),
            e(1, "r", Kind::Guess, 4, 5, Answer::WrongCode(2)),
        ];
        let v = judge(h);
        assert!(v.iter().any(|s| s.contains("reported 1 left, then 4 ms reported 2 left")), "{v:?}");
    }

    /// A try that timed out and its retry with the same request id are one attempt, which
    /// may have taken effect during the first try: a retry answered with the stored output of
    /// that first application is not a count going up (seen in `fault_short` once commits
    /// got fast). The same retry with no earlier try is still judged in real time.
    #[test]
    fn a_retry_is_one_attempt_from_its_first_try() {
        let retried = |first_start: u64| {
            let mut a = e(2, "r", Kind::Guess, first_start, 30, unavailable());
            a.request = Some("0x18".into());
            let mut b = e(2, "r", Kind::Guess, 30, 31, Answer::WrongCode(2));
            b.request = Some("0x18".into());
            let restored = e(0, "r", Kind::Restore, 40, 41, Answer::Recovered(LIMIT));
            vec![registered("r"), a, e(1, "r", Kind::Guess, 2, 20, Answer::WrongCode(1)), b, restored]
        };
        assert_eq!(judge(retried(3)), Vec::<String>::new());
        let v = judge(retried(25));
        assert!(v.iter().any(|s| s.contains("reported 1 left, then 25 ms reported 2 left")), "{v:?}");
    }

    #[test]
    fn a_count_lower_than_the_attempts_allow_fails() {
        let h = vec![registered("r"), e(1, "r", Kind::Guess, 2, 3, Answer::WrongCode(1))];
        let v = judge(h);
        assert!(v.iter().any(|s| s.contains("reported 1 left after at most 1 attempts")), "{v:?}");
    }

    #[test]
    fn an_unavailable_answer_may_spend_a_guess_but_not_give_one_back() {
        let h = vec![
            registered("r"),
            e(1, "r", Kind::Guess, 2, 3, unavailable()),
            e(1, "r", Kind::Guess, 4, 5, Answer::WrongCode(1)),
            e(0, "r", Kind::Restore, 9, 10, Answer::Recovered(LIMIT)),
        ];
        assert_eq!(judge(h), Vec::<String>::new());
    }

    #[test]
    fn a_lost_registration_fails_and_an_indeterminate_one_need_not_restore() {
        let h = vec![registered("r"), e(0, "r", Kind::Restore, 9, 10, Answer::Locked)];
        let v = judge(h);
        assert!(v.iter().any(|s| s.contains("did not restore at the end")), "{v:?}");
        assert!(v.iter().any(|s| s.contains("locked at 9 ms after at most 0 attempts")), "{v:?}");
        let h = vec![
            e(0, "q", Kind::Register, 0, 1, unavailable()),
            e(0, "q", Kind::Restore, 9, 10, Answer::Failed("vault.record.unknown".into())),
        ];
        let v = judge(h);
        assert_eq!(v, vec!["q: Restore answered Failed(\"vault.record.unknown\") (client 0, 9 ms)"]);
    }

    #[test]
    fn a_record_spent_by_its_attempts_may_be_locked_at_the_end() {
        let h = vec![
            registered("r"),
            e(1, "r", Kind::Guess, 2, 3, Answer::WrongCode(2)),
            e(1, "r", Kind::Guess, 4, 5, unavailable()),
            e(1, "r", Kind::Guess, 6, 7, Answer::WrongCode(0)),
            e(0, "r", Kind::Restore, 9, 10, Answer::Locked),
        ];
        assert_eq!(judge(h), Vec::<String>::new());
    }

    #[test]
    fn a_recovery_whose_answer_was_lost_may_have_reset_the_counter() {
        let h = vec![
            registered("r"),
            e(1, "r", Kind::Guess, 2, 3, Answer::WrongCode(2)),
            e(0, "r", Kind::Recover, 4, 5, unavailable()),
            e(1, "r", Kind::Guess, 6, 7, Answer::WrongCode(2)),
            e(0, "r", Kind::Restore, 9, 10, Answer::Recovered(LIMIT)),
        ];
        assert_eq!(judge(h), Vec::<String>::new());
        // A lost wrong guess resets nothing.
        let h = vec![
            registered("r"),
            e(1, "r", Kind::Guess, 2, 3, Answer::WrongCode(2)),
            e(0, "r", Kind::Guess, 4, 5, unavailable()),
            e(1, "r", Kind::Guess, 6, 7, Answer::WrongCode(2)),
            e(0, "r", Kind::Restore, 9, 10, Answer::Recovered(LIMIT)),
        ];
        assert_eq!(judge(h).len(), 2, "a duplicate and a count that went up");
    }

    /// A guess sent before two resets and answered after both may have been counted after
    /// the second (seen in a long run: the checker once counted it in the first two parts
    /// only and flagged the later counts as too low).
    #[test]
    fn an_attempt_spanning_several_resets_may_count_in_the_last() {
        let h = vec![
            registered("r"),
            e(0, "r", Kind::Recover, 10, 20, Answer::Recovered(LIMIT)),
            e(1, "r", Kind::Guess, 15, 60, Answer::WrongCode(1)),
            e(0, "r", Kind::Recover, 20, 30, Answer::Recovered(LIMIT)),
            e(2, "r", Kind::Guess, 40, 50, Answer::WrongCode(2)),
            e(2, "r", Kind::Guess, 70, 80, Answer::WrongCode(0)),
            e(0, "r", Kind::Restore, 90, 95, Answer::Locked),
        ];
        assert_eq!(judge(h), Vec::<String>::new());
    }

    #[test]
    fn wrong_keys_and_refused_right_codes_fail() {
        let h = vec![
            registered("r"),
            e(1, "r", Kind::Recover, 2, 3, Answer::WrongKey),
            e(1, "r", Kind::Recover, 4, 5, Answer::RightCodeRefused(2)),
            e(0, "r", Kind::Restore, 9, 10, Answer::Recovered(LIMIT)),
        ];
        assert_eq!(judge(h).len(), 2);
    }

    #[test]
    fn a_retried_request_is_one_attempt_and_must_agree() {
        let mut a = e(1, "r", Kind::Guess, 2, 3, unavailable());
        a.request = Some("7".into());
        let mut b = e(1, "r", Kind::Guess, 4, 5, Answer::WrongCode(2));
        b.request = Some("7".into());
        let mut c = b.clone();
        c.start_ms = 6;
        c.end_ms = 7;
        let restore = e(0, "r", Kind::Restore, 9, 10, Answer::Recovered(LIMIT));
        let ok = vec![registered("r"), a.clone(), b.clone(), c.clone(), restore.clone()];
        assert_eq!(judge(ok), Vec::<String>::new(), "the same answer twice is one attempt");
        c.answer = Answer::WrongCode(1);
        let v = judge(vec![registered("r"), a, b, c, restore]);
        assert_eq!(v, vec!["r: request 7 answered WrongCode(2) and WrongCode(1)"]);
    }

    #[test]
    fn the_history_round_trips_through_json_lines() {
        let h = registered("r");
        let line = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), h);
    }
}

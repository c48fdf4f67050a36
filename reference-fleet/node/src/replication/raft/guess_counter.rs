//! A model of the vault's guess counter, for the replication fault test and `bkv bench`.
//!
//! spec/fleet-replication.md §8: per key, an `attempt` is granted (the vault would send a
//! KE2) only while attempts remain; a `reset` (a successful recovery) restores the limit
//! unless the key is locked. Each command carries a request id and is applied once (§1.2):
//! a duplicate returns the first output. Deterministic CBOR in and out.

use std::collections::BTreeMap;

use bkv_protocol::cbor;
use bkv_protocol::state_machine::StateMachine;
use serde::{Deserialize, Serialize};

/// A command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuessCommand {
    /// What to do.
    pub op: GuessOp,
    /// The record.
    pub key: String,
    /// Unique per client request; retries reuse it.
    pub request_id: u64,
}

impl GuessCommand {
    /// An attempt on `key`.
    pub fn attempt(key: &str, request_id: u64) -> Vec<u8> {
        cbor::to_vec(&GuessCommand { op: GuessOp::Attempt, key: key.into(), request_id })
    }
    /// A reset of `key`.
    pub fn reset(key: &str, request_id: u64) -> Vec<u8> {
        cbor::to_vec(&GuessCommand { op: GuessOp::Reset, key: key.into(), request_id })
    }
}

/// A command's operation (the text `"attempt"` or `"reset"` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuessOp {
    /// Spend an attempt (the vault would send a KE2).
    Attempt,
    /// A successful recovery: restore the limit.
    Reset,
}

/// A command's result (the text of its name on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuessResult {
    /// The attempt was granted.
    Granted,
    /// No attempt left.
    Denied,
    /// The limit was restored.
    Reset,
    /// The key is locked: a reset cannot revive it.
    Locked,
    /// The command did not decode.
    Malformed,
}

impl GuessResult {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuessResult::Granted => "granted",
            GuessResult::Denied => "denied",
            GuessResult::Reset => "reset",
            GuessResult::Locked => "locked",
            GuessResult::Malformed => "malformed",
        }
    }
}

impl PartialEq<&str> for GuessResult {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The output of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuessOutput {
    /// What happened.
    pub result: GuessResult,
    /// Attempts left after the command.
    pub remaining: u64,
}

impl GuessOutput {
    /// Decode an output.
    pub fn decode(bytes: &[u8]) -> bkv_protocol::Result<Self> {
        cbor::from_slice(bytes)
    }
}

/// Per-key state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyState {
    /// Attempts left.
    pub remaining: u64,
    /// Attempts granted since the key was created (never decreases).
    pub granted: u64,
}

/// A query: the state of `key`, or the output recorded for `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuessQuery {
    /// Answer: `KeyState` (a fresh key shows `remaining = limit`).
    Key(String),
    /// Answer: `Option<GuessOutput>`.
    Applied(u64),
}

/// The state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuessCounter {
    limit: u64,
    keys: BTreeMap<String, KeyState>,
    applied: BTreeMap<u64, GuessOutput>,
}

/// The snapshot form: request ids as an array of pairs, since bkv's CBOR maps have text
/// keys only (spec/conventions.md §2).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    limit: u64,
    keys: BTreeMap<String, KeyState>,
    applied: Vec<(u64, GuessOutput)>,
}

impl GuessCounter {
    /// An empty state with guess limit `limit`.
    pub fn new(limit: u64) -> Self {
        Self { limit, keys: BTreeMap::new(), applied: BTreeMap::new() }
    }

    /// The state of `key`.
    pub fn key(&self, key: &str) -> KeyState {
        self.keys.get(key).copied().unwrap_or(KeyState { remaining: self.limit, granted: 0 })
    }

    /// All touched keys.
    pub fn keys(&self) -> &BTreeMap<String, KeyState> {
        &self.keys
    }

    /// The output recorded for a request id.
    pub fn applied(&self, request_id: u64) -> Option<&GuessOutput> {
        self.applied.get(&request_id)
    }
}

impl StateMachine for GuessCounter {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        let Ok(c) = cbor::from_slice::<GuessCommand>(command) else {
            return cbor::to_vec(&GuessOutput { result: GuessResult::Malformed, remaining: 0 });
        };
        if let Some(first) = self.applied.get(&c.request_id) {
            return cbor::to_vec(first);
        }
        let mut st = self.key(&c.key);
        let result = match c.op {
            GuessOp::Attempt if st.remaining > 0 => {
                st.remaining -= 1;
                st.granted += 1;
                GuessResult::Granted
            }
            GuessOp::Attempt => GuessResult::Denied,
            GuessOp::Reset if st.remaining > 0 => {
                st.remaining = self.limit;
                GuessResult::Reset
            }
            GuessOp::Reset => GuessResult::Locked,
        };
        self.keys.insert(c.key, st);
        let out = GuessOutput { result, remaining: st.remaining };
        self.applied.insert(c.request_id, out.clone());
        cbor::to_vec(&out)
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        match cbor::from_slice::<GuessQuery>(query) {
            Ok(GuessQuery::Key(k)) => cbor::to_vec(&self.key(&k)),
            Ok(GuessQuery::Applied(id)) => cbor::to_vec(&self.applied.get(&id)),
            Err(_) => Vec::new(),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        cbor::to_vec(&Snapshot {
            limit: self.limit,
            keys: self.keys.clone(),
            applied: self.applied.iter().map(|(id, out)| (*id, out.clone())).collect(),
        })
    }

    fn restore(snapshot: &[u8]) -> bkv_protocol::Result<Self> {
        let s: Snapshot = cbor::from_slice(snapshot)?;
        Ok(Self { limit: s.limit, keys: s.keys, applied: s.applied.into_iter().collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(b: &[u8]) -> GuessOutput {
        GuessOutput::decode(b).unwrap()
    }

    #[test]
    fn attempts_are_limited_reset_restores_and_lock_is_final() {
        let mut g = GuessCounter::new(2);
        assert_eq!(out(&g.apply(&GuessCommand::attempt("k", 1))).result, "granted");
        assert_eq!(out(&g.apply(&GuessCommand::reset("k", 2))).remaining, 2);
        assert_eq!(out(&g.apply(&GuessCommand::attempt("k", 3))).remaining, 1);
        assert_eq!(out(&g.apply(&GuessCommand::attempt("k", 4))).remaining, 0);
        assert_eq!(out(&g.apply(&GuessCommand::attempt("k", 5))).result, "denied");
        assert_eq!(out(&g.apply(&GuessCommand::reset("k", 6))).result, "locked");
        assert_eq!(g.key("k"), KeyState { remaining: 0, granted: 3 });
    }

    #[test]
    fn duplicate_request_id_is_applied_once() {
        let mut g = GuessCounter::new(3);
        let first = g.apply(&GuessCommand::attempt("k", 9));
        assert_eq!(g.apply(&GuessCommand::attempt("k", 9)), first);
        assert_eq!(g.key("k").remaining, 2);
    }

    #[test]
    fn the_wire_form_is_text() {
        let c = GuessCommand::attempt("k", 1);
        let v: ciborium::Value = ciborium::from_reader(&c[..]).unwrap();
        let op = v.as_map().unwrap().iter().find(|(k, _)| k.as_text() == Some("op")).unwrap();
        assert_eq!(op.1.as_text(), Some("attempt"));
        let unknown = cbor::to_vec(&serde_json::json!({"op": "steal", "key": "k", "request_id": 2}));
        assert_eq!(out(&GuessCounter::new(1).apply(&unknown)).result, "malformed");
    }

    #[test]
    fn malformed_command_changes_nothing_and_snapshot_round_trips() {
        let mut g = GuessCounter::new(3);
        g.apply(&GuessCommand::attempt("a", 1));
        let before = g.snapshot();
        assert_eq!(out(&g.apply(b"\xff")).result, "malformed");
        assert_eq!(g.snapshot(), before);
        assert_eq!(GuessCounter::restore(&before).unwrap(), g);
        assert!(GuessCounter::restore(b"\x00").is_err());
    }
}

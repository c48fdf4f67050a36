//! Deliberately broken builds for the history checker's own test (spec/fleet-replication.md
//! §8): compiled only with the `fault-injection` feature, and switched on only for the
//! nodes whose data directories a test names, so the other nodes of the same process (and
//! every node of a binary built without the feature) are unaffected.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static NO_VOTE_GATE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Start the node whose Raft directory is `dir` without the vote gate of
/// spec/fleet-replication.md §6.3: it votes and campaigns at once after a restart, even from
/// a disk older than what it acknowledged.
pub fn disable_vote_gate(dir: &Path) {
    NO_VOTE_GATE.lock().unwrap_or_else(|p| p.into_inner()).insert(dir.to_owned());
}

pub(crate) fn vote_gate_disabled(dir: &Path) -> bool {
    NO_VOTE_GATE.lock().unwrap_or_else(|p| p.into_inner()).contains(dir)
}

//! Where a commit's time goes: counts and total time of each stage of the commit path, so
//! that `bkv bench replication` can print the breakdown BENCHMARKS.md reports
//! (spec/fleet-replication.md §3: the commit rule these stages implement).
//!
//! Recording is two relaxed atomic additions per event; nothing here changes behaviour.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// One stage of the commit path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Leader: one grouped entry from `client_write` to its applied outputs (§3).
    Commit,
    /// Any node: one durable write (fsync) of the log writer.
    LogFlush,
    /// Leader: one `append` RPC to a follower, request sent to reply verified (§4).
    AppendRpc,
    /// Follower: handling one `append` RPC, from its arrival at the handler to the sealed
    /// reply (authentication, the append and its flush); `append_rpc` minus this is the
    /// transport.
    AppendHandler,
    /// Follower: forwarding one command to the leader and getting its output (§3.3).
    Forward,
}

const ALL: [Stage; 5] =
    [Stage::Commit, Stage::LogFlush, Stage::AppendRpc, Stage::AppendHandler, Stage::Forward];

impl Stage {
    /// The stage's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Commit => "commit (leader, per entry)",
            Stage::LogFlush => "log flush (fsync)",
            Stage::AppendRpc => "append RPC (leader to follower)",
            Stage::AppendHandler => "append handler (follower)",
            Stage::Forward => "forward (follower to leader, per command)",
        }
    }
}

/// Counters of one node.
#[derive(Debug, Default)]
pub struct Stages {
    count: [AtomicU64; 5],
    micros: [AtomicU64; 5],
    entries: AtomicU64,
    commands: AtomicU64,
}

/// The mean of one stage over the nodes and events measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageMean {
    /// [`Stage::name`].
    pub stage: &'static str,
    /// Events.
    pub count: u64,
    /// Mean time per event, milliseconds.
    pub mean_ms: f64,
}

/// The breakdown of a measurement: stage means and commands per entry.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Breakdown {
    /// Every stage with at least one event.
    pub stages: Vec<StageMean>,
    /// Commands per log entry (the group commit of §1 item 4).
    pub commands_per_entry: f64,
}

impl Stages {
    /// One event of `stage` that started at `started`.
    pub fn record(&self, stage: Stage, started: Instant) {
        let i = stage as usize;
        self.count[i].fetch_add(1, Relaxed);
        self.micros[i].fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    }

    /// One entry carrying `commands` commands was proposed.
    pub fn group(&self, commands: usize) {
        self.entries.fetch_add(1, Relaxed);
        self.commands.fetch_add(commands as u64, Relaxed);
    }

    /// Zero every counter (the start of a measurement).
    pub fn reset(&self) {
        for a in self.count.iter().chain(&self.micros).chain([&self.entries, &self.commands]) {
            a.store(0, Relaxed);
        }
    }

    /// The breakdown over `nodes`: events of each stage summed over the nodes.
    pub fn breakdown<'a>(nodes: impl IntoIterator<Item = &'a Stages>) -> Breakdown {
        let (mut count, mut micros, mut entries, mut commands) = ([0u64; 5], [0u64; 5], 0u64, 0u64);
        for s in nodes {
            for i in 0..ALL.len() {
                count[i] += s.count[i].load(Relaxed);
                micros[i] += s.micros[i].load(Relaxed);
            }
            entries += s.entries.load(Relaxed);
            commands += s.commands.load(Relaxed);
        }
        let stages = ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| count[*i] > 0)
            .map(|(i, s)| StageMean {
                stage: s.name(),
                count: count[i],
                mean_ms: micros[i] as f64 / count[i] as f64 / 1000.0,
            })
            .collect();
        let commands_per_entry = if entries > 0 { commands as f64 / entries as f64 } else { 0.0 };
        Breakdown { stages, commands_per_entry }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_breakdown_sums_the_nodes_and_leaves_out_stages_without_events() {
        let (a, b) = (Stages::default(), Stages::default());
        let long_ago = Instant::now() - Duration::from_millis(4);
        a.record(Stage::LogFlush, long_ago);
        b.record(Stage::LogFlush, Instant::now());
        a.group(3);
        b.group(5);
        let d = Stages::breakdown([&a, &b]);
        assert_eq!(d.stages.len(), 1);
        assert_eq!(d.stages[0].stage, Stage::LogFlush.name());
        assert_eq!(d.stages[0].count, 2);
        assert!(d.stages[0].mean_ms >= 2.0, "{d:?}");
        assert_eq!(d.commands_per_entry, 4.0);
        a.reset();
        assert_eq!(Stages::breakdown([&a]), Breakdown::default());
    }
}

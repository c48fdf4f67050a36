//! `bkv fleet status`: leader, term, applied index and each node's replication lag
//! (spec/fleet-replication.md §9).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};
use bkv_node::replication::raft::net::{NodeStatus, STATUS_PATH};

/// Arguments of `bkv fleet status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A node's address (host:port of its node endpoint, or its http:// URL); repeat for every node.
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// A fleet directory of `bkv fleet up` (its nodes are read from `fleet.json`); the
    /// default without --node: the current directory, if it holds a fleet.
    #[arg(long, conflicts_with = "nodes")]
    pub dir: Option<std::path::PathBuf>,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// What `bkv fleet status` found.
#[derive(Debug, serde::Serialize)]
pub struct FleetStatus {
    /// The leader a majority of the reachable nodes agree on.
    pub leader: Option<u64>,
    /// The highest term seen.
    pub term: u64,
    /// The leader's last log index.
    pub leader_last_log_index: Option<u64>,
    /// Per node: its address, its status (or the error), and its lag behind the leader.
    pub nodes: Vec<NodeReport>,
}

/// One node in [`FleetStatus`].
#[derive(Debug, serde::Serialize)]
pub struct NodeReport {
    /// Address asked.
    pub addr: String,
    /// Its status, if it answered.
    pub status: Option<NodeStatus>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// Entries it is behind the leader's log (from the leader's replication state).
    pub lag: Option<u64>,
}

async fn fetch(http: &reqwest::Client, addr: &str) -> std::result::Result<NodeStatus, String> {
    let url = format!("{}{STATUS_PATH}", super::url::service_url("node", addr).map_err(|e| e.to_string())?);
    let resp = http.get(&url).timeout(Duration::from_secs(2)).send().await.map_err(|e| {
        if e.is_connect() {
            format!("connection refused at {url} (is the node running?)")
        } else if e.is_timeout() {
            format!("no answer from {url} within 2 s")
        } else {
            format!("{url}: {e}")
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let bytes = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{url}: not a node status: {e}"))
}

/// Ask every node and assemble the fleet's status.
pub async fn collect(addrs: &[String]) -> FleetStatus {
    let http = bkv_client::http::client();
    let mut nodes = Vec::new();
    for addr in addrs {
        match fetch(&http, addr).await {
            Ok(s) => nodes.push(NodeReport { addr: addr.clone(), status: Some(s), error: None, lag: None }),
            Err(e) => nodes.push(NodeReport { addr: addr.clone(), status: None, error: Some(e), lag: None }),
        }
    }
    let term = nodes.iter().filter_map(|n| n.status.as_ref().map(|s| s.term)).max().unwrap_or(0);
    let leader_status =
        nodes.iter().filter_map(|n| n.status.clone()).find(|s| s.state == "leader" && s.term == term);
    let leader = leader_status.as_ref().map(|s| s.id);
    let leader_last = leader_status.as_ref().and_then(|s| s.last_log_id.map(|l| l.index));
    if let (Some(ls), Some(last)) = (&leader_status, leader_last) {
        for n in &mut nodes {
            if let Some(s) = &n.status {
                let matched = ls.matched.get(&s.id).copied().flatten();
                n.lag = Some(last.saturating_sub(matched.unwrap_or(0)));
            }
        }
    }
    FleetStatus { leader, term, leader_last_log_index: leader_last, nodes }
}

/// The HSM column: its status, and whether the disk is behind its mark (spec/hsm.md §4.1).
fn hsm_label(h: &bkv_node::replication::raft::net::HsmReport) -> String {
    match (h.status.as_str(), h.disk_behind_mark) {
        (s, true) => format!("{s}, disk behind mark"),
        (s, false) => s.to_owned(),
    }
}

/// Run `bkv fleet status`. Exit 3 (operational, not a verification failure) with
/// `fleet.unavailable` when no leader is reachable.
pub async fn run(a: StatusArgs) -> Result<ExitCode> {
    let addrs = match (&a.dir, a.nodes.is_empty()) {
        (Some(dir), _) => crate::fleet::raft_addrs(dir)?,
        (None, false) => a.nodes.clone(),
        (None, true) if std::path::Path::new("fleet.json").exists() => {
            crate::fleet::raft_addrs(".".as_ref())?
        }
        (None, true) => {
            return Err(Error::Usage(
                "no fleet: pass --dir DIR (a `bkv fleet up` directory) or --node HOST:PORT for each node"
                    .into(),
            ));
        }
    };
    let st = collect(&addrs).await;
    if st.leader.is_none() {
        // Without a leader the fleet answers nothing: the envelope carries the failure, and
        // the table (without --json) what each node said.
        if !a.json {
            print_table(&st);
        }
        let each: Vec<String> = st
            .nodes
            .iter()
            .map(|n| match &n.error {
                Some(e) => format!("{}: {e}", n.addr),
                None => format!("{}: answers, knows no leader", n.addr),
            })
            .collect();
        return Err(Error::FleetDown(each.join("; ")));
    }
    if a.json {
        super::contract::Envelope::success(&st).print();
    } else {
        print_table(&st);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(st: &FleetStatus) {
    match st.leader {
        Some(l) => println!(
            "leader: node {l}   term: {}   leader log index: {}",
            st.term,
            st.leader_last_log_index.map_or("none yet".into(), |i| i.to_string())
        ),
        None => println!("leader: none reachable   highest term seen: {}", st.term),
    }
    println!(
        "{:<22} {:>4} {:<9} {:<10} {:>6} {:>10} {:>10} {:>10} {:>6} {:<5} {:>8} {:>8} {:<10}",
        "node",
        "id",
        "dc",
        "state",
        "term",
        "last log",
        "committed",
        "applied",
        "lag",
        "gate",
        "hsm pos",
        "hsm mark",
        "hsm"
    );
    for n in &st.nodes {
        match &n.status {
            Some(s) => println!(
                "{:<22} {:>4} {:<9} {:<10} {:>6} {:>10} {:>10} {:>10} {:>6} {:<5} {:>8} {:>8} {:<10}",
                n.addr,
                s.id,
                s.datacenter,
                s.state,
                s.term,
                s.last_log_id.map(|l| l.index.to_string()).unwrap_or("-".into()),
                s.committed.map(|i| i.to_string()).unwrap_or("-".into()),
                s.last_applied.map(|i| i.to_string()).unwrap_or("-".into()),
                n.lag.map(|l| l.to_string()).unwrap_or("-".into()),
                if s.gate_open { "open" } else { "wait" },
                s.hsm.as_ref().map(|h| h.position.to_string()).unwrap_or("-".into()),
                s.hsm.as_ref().map(|h| h.mark.to_string()).unwrap_or("-".into()),
                s.hsm.as_ref().map(hsm_label).unwrap_or("-".into()),
            ),
            None => println!("{:<22} unreachable: {}", n.addr, n.error.as_deref().unwrap_or("")),
        }
    }
}

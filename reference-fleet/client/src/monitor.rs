//! spec/audit-log.md §9: walk a log, rebuild its tree, check it against the checkpoint and
//! the monitor's previous view, list its bundles and flag gaps, forks and unannounced bundles.

use crate::error::Result;
use crate::log::LogClient;
use bkv_protocol::audit_log::merkle::{Tree, verify_consistency};
use bkv_protocol::audit_log::note::Note;
use bkv_protocol::audit_log::{Checkpoint, EntryType, LogAnchors, LogEntry, TreeHead, verify_checkpoint};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One logged bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleRow {
    /// Leaf index.
    pub index: u64,
    /// Fleet id.
    pub fleet_id: String,
    /// Epoch.
    pub epoch: u64,
    /// SHA-256 of the bundle bytes, hex.
    pub digest: String,
}

/// Something the monitor flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `gap`, `fork`, `root_mismatch`, `malformed_entry`, `unannounced`, `equivocation`,
    /// `retirement`, `tile_missing`, `tile_mismatch`.
    pub kind: &'static str,
    /// The entry index concerned, if any.
    pub index: Option<u64>,
    /// Human-readable detail.
    pub detail: String,
}

/// A bundle the operator announced (`--announced FILE`: JSON list of these).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Announced {
    /// Fleet id.
    pub fleet_id: String,
    /// Epoch.
    pub epoch: u64,
    /// SHA-256 of the bundle bytes, hex.
    pub digest: String,
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only list (and check announcements for) this fleet.
    pub fleet: Option<String>,
    /// Verify the checkpoint's signatures and witnesses against these anchors.
    pub anchors: Option<LogAnchors>,
    /// The operator's announced bundles; any other bundle of the fleet is flagged.
    pub announced: Option<Vec<Announced>>,
    /// The tree head this monitor saw last time.
    pub previous: Option<TreeHead>,
}

/// The monitor's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Log origin.
    pub origin: String,
    /// Checkpoint size.
    pub size: u64,
    /// Checkpoint root, hex.
    pub root: String,
    /// Whether the checkpoint was verified against anchors (signature and K witnesses).
    pub checkpoint_verified: bool,
    /// Witnesses whose cosignature verified.
    pub cosigners: Vec<String>,
    /// The anchors require no witness (K = 0): local development only.
    pub development_only: bool,
    /// Bundles (of `--fleet` if given), in log order.
    pub bundles: Vec<BundleRow>,
    /// Findings; empty when the log is healthy.
    pub findings: Vec<Finding>,
    /// The tree head to remember for the next run.
    #[serde(skip)]
    pub head: TreeHead,
}

/// Walk the log at `log`. `progress(done, total)` is called after each batch.
pub async fn run(log: &LogClient, opts: &Options, progress: &dyn Fn(u64, u64)) -> Result<Report> {
    let note = log.checkpoint().await?;
    let (cp, verified, cosigners, development_only) = match &opts.anchors {
        Some(a) => {
            let v = verify_checkpoint(&note, a)?;
            (v.checkpoint, true, v.cosigners, v.development_only)
        }
        None => (Checkpoint::parse_body(&Note::parse(&note)?.text)?, false, Vec::new(), false),
    };
    let mut findings = Vec::new();
    let mut tree = Tree::new();
    let mut bundles = Vec::new();
    let mut seen: BTreeMap<(String, u64), String> = BTreeMap::new();
    // Every bundle digest logged per (fleet, epoch), and the retirements in log order.
    let mut logged: BTreeSet<(String, u64, [u8; 32])> = BTreeSet::new();
    let mut retirements: Vec<(u64, LogEntry)> = Vec::new();
    let fetched = log.fetch_entries(0, cp.size, &mut |done, total| progress(done, total)).await;
    for entry in &fetched.entries {
        let index = tree.push(entry);
        match LogEntry::from_cbor(entry) {
            Ok(e) if e.kind == EntryType::Retirement => retirements.push((index, e)),
            Ok(e) if e.kind == EntryType::Bundle => {
                logged.insert((e.fleet_id.clone(), e.epoch, e.digest));
                let digest = hex::encode(e.digest);
                if let Some(prev) = seen.insert((e.fleet_id.clone(), e.epoch), digest.clone())
                    && prev != digest
                {
                    findings.push(Finding {
                        kind: "equivocation",
                        index: Some(index),
                        detail: format!("fleet {} epoch {} logged with two digests", e.fleet_id, e.epoch),
                    });
                }
                if opts.fleet.as_ref().is_none_or(|f| *f == e.fleet_id) {
                    bundles.push(BundleRow { index, fleet_id: e.fleet_id, epoch: e.epoch, digest });
                }
            }
            Ok(_) => {}
            Err(err) => findings.push(Finding {
                kind: "malformed_entry",
                index: Some(index),
                detail: err.to_string(),
            }),
        }
    }
    if let Some((index, detail)) = fetched.gap {
        findings.push(Finding { kind: "gap", index: Some(index), detail });
    }
    progress(tree.size(), cp.size);
    if tree.size() == cp.size && tree.root() != cp.root {
        findings.push(Finding {
            kind: "root_mismatch",
            index: None,
            detail: "the entries served do not hash to the checkpoint root".into(),
        });
    } else if tree.size() == cp.size {
        check_tiles(log, &tree, &fetched.entries, &mut findings).await;
    }
    if let Some(prev) = opts.previous {
        if prev.size > cp.size {
            findings.push(Finding {
                kind: "fork",
                index: None,
                detail: format!("log shrank from {} to {}", prev.size, cp.size),
            });
        } else if prev.size > 0 {
            let proof = log.consistency_proof(prev.size, cp.size).await;
            let ok = match proof {
                Ok(p) => verify_consistency(prev.size, cp.size, &p, &prev.root, &cp.root).is_ok(),
                Err(_) => false,
            };
            let local = tree.root_at(prev.size).is_some_and(|r| r == prev.root);
            if !ok || !local {
                findings.push(Finding {
                    kind: "fork",
                    index: None,
                    detail: format!(
                        "checkpoint {} is not consistent with the previously seen {}",
                        cp.size, prev.size
                    ),
                });
            }
        }
    }
    // spec/audit-log.md §9, spec/rotation.md §6: a retirement names a logged successor of
    // epoch + 1, and an epoch is retired once.
    let mut retired: BTreeSet<(String, u64)> = BTreeSet::new();
    for (index, r) in &retirements {
        if opts.fleet.as_ref().is_some_and(|f| *f != r.fleet_id) {
            continue;
        }
        let successor =
            r.epoch.checked_add(1).is_some_and(|next| logged.contains(&(r.fleet_id.clone(), next, r.digest)));
        if !successor {
            findings.push(Finding {
                kind: "retirement",
                index: Some(*index),
                detail: format!(
                    "fleet {} epoch {} retired for {}, which is not a logged bundle of epoch {}",
                    r.fleet_id,
                    r.epoch,
                    hex::encode(r.digest),
                    r.epoch.saturating_add(1)
                ),
            });
        }
        if !retired.insert((r.fleet_id.clone(), r.epoch)) {
            findings.push(Finding {
                kind: "retirement",
                index: Some(*index),
                detail: format!("fleet {} epoch {} retired a second time", r.fleet_id, r.epoch),
            });
        }
    }
    if let Some(announced) = &opts.announced {
        let set: BTreeSet<(String, u64, String)> =
            announced.iter().map(|a| (a.fleet_id.clone(), a.epoch, a.digest.to_ascii_lowercase())).collect();
        for b in &bundles {
            if !set.contains(&(b.fleet_id.clone(), b.epoch, b.digest.clone())) {
                findings.push(Finding {
                    kind: "unannounced",
                    index: Some(b.index),
                    detail: format!(
                        "fleet {} epoch {} digest {} was not announced",
                        b.fleet_id, b.epoch, b.digest
                    ),
                });
            }
        }
    }
    let head = TreeHead { size: cp.size, root: cp.root };
    Ok(Report {
        origin: cp.origin,
        size: cp.size,
        root: hex::encode(cp.root),
        checkpoint_verified: verified,
        cosigners,
        development_only,
        bundles,
        findings,
        head,
    })
}

/// spec/audit-log.md §9: every tile and entry bundle a log of this size must serve
/// (`tiles::tiles_for_size`) is served, and holds the hashes or entries of the tree the
/// monitor rebuilt; one that is not is a `tile_missing` or `tile_mismatch` finding, since a
/// tlog-tiles client could not follow the log past it.
async fn check_tiles(log: &LogClient, tree: &Tree, entries: &[Vec<u8>], findings: &mut Vec<Finding>) {
    use bkv_protocol::audit_log::tiles::{self, WIDTH};
    for t in tiles::tiles_for_size(tree.size()) {
        let start = t.index.saturating_mul(WIDTH);
        let served = match t.level {
            None => {
                let want = usize::try_from(start).ok().and_then(|s| entries.get(s..s + t.width as usize));
                log.entry_bundle(t.index, t.width).await.map(|e| Some(e.as_slice()) == want)
            }
            Some(level) => {
                let want = tiles::hash_tile(tree, level, t.index, t.width)
                    .and_then(|b| tiles::parse_hash_tile(&b, t.width));
                log.hash_tile(level, t.index, t.width).await.map(|h| Some(h) == want)
            }
        };
        let (kind, detail) = match served {
            Ok(true) => continue,
            Ok(false) => ("tile_mismatch", "differs from the entries and tree the log served".to_owned()),
            Err(e) => ("tile_missing", e.to_string()),
        };
        findings.push(Finding {
            kind,
            index: Some(start),
            detail: format!("tile/{}: {detail}", t.to_path()),
        });
    }
}

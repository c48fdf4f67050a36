//! The vault under faults (spec/fleet-replication.md §8, spec/vault.md §5, §7).
//!
//! A 5-node loopback fleet runs the real vault: every request is sealed to a node's
//! session key and handled by the node service exactly as over HTTP (session, vault,
//! replicated log, seal). While the seeded scheduler of `replication_common::chaos` kills
//! and restarts nodes, restarts nodes from older copies of their disks, partitions and
//! delays links:
//! - attackers send wrong guesses against registered victims and against unknown ids,
//!   the same id through different nodes at once;
//! - owners register new records and recover them with the right code.
//!
//! Afterwards it checks:
//! - per attacked id, the wrong guesses that got a KE2 never exceed the limit, and each saw a
//!   distinct remaining count;
//! - every acknowledged registration is still recoverable with its code and gives back its key
//!   (unless its owner's own lost logins used up its guesses, which the test tracks);
//! - every node converges to the same state after healing;
//! - with 2 of 5 nodes down the fleet serves a guess; with 3 down it answers
//!   `fleet.unavailable`.
//!
//! On failure it prints the seed and the history. Reproduce with `BKV_FAULT_SEED=<hex>`;
//! the long run is `cargo test -p bkv-tests --test integration -- --ignored vault_fault::`
//! (`BKV_FAULT_RUNS`, `BKV_FAULT_SECS`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::replication_common::{ChaosStats, Cluster, chaos, long_runs, seed_from_env};
use bkv_node::hsm::SoftHsm;
use bkv_node::replication::raft::{RaftCommandLog, Timing};
use bkv_node::service::{NodeInfo, NodeService};
use bkv_protocol::session::{self, SessionTarget};
use bkv_protocol::validation_bundle::KeyRole;
use bkv_protocol::vault::{
    BackupKey, ClientAction, KsfParams, Outcome, RecoveryClient, RegistrationClient, VaultContext,
    VaultServerSetup, VaultStateMachine,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

const NODES: usize = 5;
const LIMIT: u32 = 6;
const FLEET: &str = "test-fleet";
const VICTIMS: usize = 24;
const ATTACKERS: usize = 6;
const OWNERS: usize = 2;
/// Unknown ids under attack move on every window, so guesses keep being counted while
/// faults happen.
const WINDOW_MS: u128 = 1500;
const UNKNOWN_PER_WINDOW: u64 = 2;

type Svc = Arc<NodeService<RaftCommandLog<VaultStateMachine>>>;
type Directory = Arc<RwLock<Vec<Option<Svc>>>>;

struct Fleet {
    hsms: Vec<SoftHsm>,
    targets: Vec<SessionTarget>,
    ctx: VaultContext,
}

impl Fleet {
    fn new() -> Self {
        let first = SoftHsm::generate(&mut OsRng, VaultServerSetup::generate(&mut OsRng));
        let mut hsms = vec![first];
        for _ in 1..NODES {
            let setup = hsms[0].transfer_opaque_setup();
            hsms.push(SoftHsm::generate(&mut OsRng, setup));
        }
        let key = |h: &SoftHsm, i: usize, role| -> [u8; 32] {
            h.node_entry(&node_id(i), "dc").key(role).unwrap().key.clone().try_into().unwrap()
        };
        let targets = (0..NODES)
            .map(|i| SessionTarget {
                fleet_id: FLEET.into(),
                epoch: 1,
                node_id: node_id(i),
                session_key: key(&hsms[i], i, KeyRole::Session),
            })
            .collect();
        let ctx = VaultContext {
            fleet_id: FLEET.into(),
            opaque_server_key: key(&hsms[0], 0, KeyRole::Opaque),
            ksf: KsfParams::TEST,
        };
        Fleet { hsms, targets, ctx }
    }

    /// Node services over the running nodes' logs: a restarted node gets a new service
    /// (its pending logins are gone, as after a real restart).
    fn publish(&self, c: &Cluster<VaultStateMachine>, dir: &Directory) {
        *dir.write().unwrap() = (0..NODES)
            .map(|i| {
                c.log(i).map(|log| {
                    let info = NodeInfo {
                        v: 1,
                        fleet_id: FLEET.into(),
                        epoch: 1,
                        node_id: node_id(i),
                        datacenter: "dc".into(),
                    };
                    Arc::new(NodeService::new(
                        self.hsms[i].session_server(FLEET, 1, &node_id(i)),
                        self.hsms[i].vault_server(FLEET),
                        log,
                        info,
                        Vec::new(),
                    ))
                })
            })
            .collect();
    }
}

fn node_id(i: usize) -> String {
    format!("node-{i}")
}

fn now() -> u64 {
    bkv_client::clock::system_now()
}

/// One sealed round trip to `svc`; `Err` is the spec code.
async fn call(svc: &Svc, target: &SessionTarget, id: [u8; 16], body: &[u8]) -> Result<Vec<u8>, String> {
    let (sealed, wait) = session::seal_request_with_id(&mut OsRng, target, now(), id, body).unwrap();
    let raw = svc.handle(&sealed, now()).await;
    wait.open(&raw).map_err(|e| e.code().to_owned())
}

fn fresh_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    id
}

/// What happened, for the checks and the failure report.
#[derive(Debug, Clone)]
#[expect(dead_code, reason = "every field is printed by the failure report through Debug")]
enum Op {
    /// A wrong guess against `record` through `node`: its KE2's remaining count, or the code.
    Guess { record: String, node: usize, outcome: Result<u32, String> },
    /// A registration and whether it was acknowledged (`Ok(remaining)`).
    Register { record: String, node: usize, outcome: Result<u32, String> },
    /// An owner's recovery: Ok(remaining after success) or the code.
    Recover { record: String, node: usize, outcome: Result<u32, String> },
}

#[derive(Default)]
struct History {
    events: Mutex<Vec<String>>,
    ops: Mutex<Vec<(u128, Op)>>,
}

impl History {
    fn event(&self, start: Instant, s: String) {
        self.events.lock().unwrap().push(format!("{:>7}ms {s}", start.elapsed().as_millis()));
    }
    fn op(&self, start: Instant, op: Op) {
        self.ops.lock().unwrap().push((start.elapsed().as_millis(), op));
    }
    fn render(&self) -> String {
        let mut out = String::new();
        for e in self.events.lock().unwrap().iter() {
            writeln!(out, "event {e}").unwrap();
        }
        for (t, o) in self.ops.lock().unwrap().iter() {
            writeln!(out, "op {t:>7}ms {o:?}").unwrap();
        }
        out
    }
}

/// An acknowledged registration: code, backup key, and the owner's lost logins since its
/// last success.
type Owned = (Vec<u8>, BackupKey, u32);

struct Shared {
    fleet: Fleet,
    dir: Directory,
    stop: AtomicBool,
    h: History,
    start: Instant,
    /// Acknowledged registrations: record -> (code, backup key, owner's lost logins since
    /// its last success).
    owned: Mutex<BTreeMap<String, Owned>>,
}

impl Shared {
    fn pick(&self, rng: &mut ChaCha8Rng) -> Option<(usize, Svc)> {
        let i = (rng.next_u64() % NODES as u64) as usize;
        self.dir.read().unwrap()[i].clone().map(|s| (i, s))
    }
}

/// A wrong guess: `recover_start`, then the client's finish fails on the KE2 and nothing
/// more is sent (spec/vault.md §6.4).
async fn guess(s: &Shared, node: usize, svc: &Svc, record: &[u8], code: &[u8]) -> Result<u32, String> {
    let (body, rc) = RecoveryClient::start(&mut OsRng, record, code).unwrap();
    let resp = call(svc, &s.fleet.targets[node], fresh_id(), &body).await?;
    let ke2 = rc.receive(&resp).map_err(|e| e.code().to_owned())?;
    let remaining = ke2.remaining();
    match ke2.finish(&mut OsRng, &s.fleet.ctx, ClientAction::Recover) {
        Err(e) if e.code() == "vault.code.invalid" => Ok(remaining),
        Err(e) => Err(format!("unexpected {}", e.code())),
        Ok(_) => Err("a wrong code opened the KE2".into()),
    }
}

/// Register `record` under `code`; retries after `fleet.unavailable` reuse the request id.
async fn register(
    s: &Shared,
    rng: &mut ChaCha8Rng,
    record: &[u8],
    code: &[u8],
    key: &BackupKey,
) -> (usize, Result<u32, String>) {
    let Some((node, svc)) = s.pick(rng) else { return (usize::MAX, Err("no node".into())) };
    let target = &s.fleet.targets[node];
    let (body, rc) = RegistrationClient::start(&mut OsRng, record, code).unwrap();
    let resp = match call(&svc, target, fresh_id(), &body).await {
        Ok(r) => r,
        Err(e) => return (node, Err(e)),
    };
    let (body, wait) = rc.finish(&mut OsRng, &s.fleet.ctx, key, &resp).unwrap().into_request();
    let id = fresh_id();
    let mut last = Err(String::new());
    for _ in 0..3 {
        last = call(&svc, target, id, &body).await;
        if !matches!(&last, Err(e) if e == "fleet.unavailable") {
            break;
        }
    }
    (node, last.and_then(|r| wait.finish(&r).map_err(|e| e.code().to_owned())))
}

async fn attacker(s: Arc<Shared>, id: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0xa77ac4 + id as u64));
    while !s.stop.load(Ordering::SeqCst) {
        let record = if rng.next_u64() % 2 == 0 {
            format!("victim-record-{:04}", rng.next_u64() % VICTIMS as u64)
        } else {
            let w = s.start.elapsed().as_millis() / WINDOW_MS;
            format!("unknown-w{w:05}-k{}", rng.next_u64() % UNKNOWN_PER_WINDOW)
        };
        let Some((node, svc)) = s.pick(&mut rng) else { continue };
        let code = format!("wrong-{}", rng.next_u64());
        let outcome = guess(&s, node, &svc, record.as_bytes(), code.as_bytes()).await;
        s.h.op(s.start, Op::Guess { record, node, outcome });
    }
}

async fn owner(s: Arc<Shared>, id: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x0e4e + id as u64));
    let mut seq = 0u64;
    while !s.stop.load(Ordering::SeqCst) {
        if rng.next_u64() % 3 == 0 || s.owned.lock().unwrap().is_empty() {
            seq += 1;
            let record = format!("owner-record-{id:04}-{seq:08}");
            let code = format!("code-{id}-{seq}").into_bytes();
            let key = BackupKey::generate(&mut OsRng);
            let (node, outcome) = register(&s, &mut rng, record.as_bytes(), &code, &key).await;
            if outcome.is_ok() {
                s.owned.lock().unwrap().insert(record.clone(), (code, key, 0));
            }
            s.h.op(s.start, Op::Register { record, node, outcome });
            continue;
        }
        // Recover one of this owner's records, unless its own lost logins used up guesses.
        let candidates: Vec<_> = s
            .owned
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, v)| r.starts_with(&format!("owner-record-{id:04}-")) && v.2 + 2 < LIMIT)
            .map(|(r, v)| (r.clone(), v.0.clone(), v.1.clone()))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let (record, code, key) = candidates[(rng.next_u64() % candidates.len() as u64) as usize].clone();
        let Some((node, svc)) = s.pick(&mut rng) else { continue };
        let target = &s.fleet.targets[node];
        let outcome = async {
            // Until it succeeds, the attempt may have cost the owner a guess (a lost answer,
            // a lost pending login, an unknown outcome).
            s.owned.lock().unwrap().get_mut(&record).unwrap().2 += 1;
            let (body, rc) = RecoveryClient::start(&mut OsRng, record.as_bytes(), &code).unwrap();
            let resp = call(&svc, target, fresh_id(), &body).await?;
            let ke2 = rc.receive(&resp).map_err(|e| e.code().to_owned())?;
            let (body, wait) = ke2
                .finish(&mut OsRng, &s.fleet.ctx, ClientAction::Recover)
                .map_err(|e| e.code().to_owned())?;
            // recover_finish goes to the node that answered recover_start (spec/vault.md §7.3).
            let resp = call(&svc, target, fresh_id(), &body).await?;
            match wait.finish(&resp).map_err(|e| e.code().to_owned())? {
                Outcome::Recovered { backup_key, remaining } if backup_key.as_bytes() == key.as_bytes() => {
                    s.owned.lock().unwrap().get_mut(&record).unwrap().2 = 0;
                    Ok(remaining)
                }
                other => Err(format!("wrong outcome {other:?}")),
            }
        }
        .await;
        s.h.op(s.start, Op::Recover { record, node, outcome });
    }
}

struct Stats {
    guesses: usize,
    ke2: usize,
    registered: usize,
    recovered: usize,
    chaos: ChaosStats,
}

async fn run(seed: u64, chaos_for: Duration) -> Result<Stats, String> {
    let start = Instant::now();
    let mut c = Cluster::start_with(
        &format!("vault-fault-{seed:x}"),
        NODES,
        Timing::fast(),
        VaultStateMachine::new(LIMIT),
    )
    .await;
    let s = Arc::new(Shared {
        fleet: Fleet::new(),
        dir: Arc::new(RwLock::new(Vec::new())),
        stop: AtomicBool::new(false),
        h: History::default(),
        start,
        owned: Mutex::new(BTreeMap::new()),
    });
    s.fleet.publish(&c, &s.dir);

    // The victims are registered before the attack starts.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for v in 0..VICTIMS {
        let record = format!("victim-record-{v:04}");
        let (_, outcome) =
            register(&s, &mut rng, record.as_bytes(), b"victim's code", &BackupKey::generate(&mut OsRng))
                .await;
        if outcome != Ok(LIMIT) {
            return Err(format!("victim registration before any fault failed: {outcome:?}"));
        }
    }

    let mut tasks = Vec::new();
    for i in 0..ATTACKERS {
        tasks.push(tokio::spawn(attacker(s.clone(), i, seed)));
    }
    for i in 0..OWNERS {
        tasks.push(tokio::spawn(owner(s.clone(), i, seed)));
    }
    let chaos_stats =
        chaos(&mut c, seed, chaos_for, |e| s.h.event(start, e), |c| s.fleet.publish(c, &s.dir)).await;
    s.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.map_err(|e| format!("client panicked: {e}"))?;
    }
    c.faults.heal();
    for i in 0..NODES {
        if !c.is_up(i) {
            c.restart(i).await;
        }
    }
    s.fleet.publish(&c, &s.dir);
    s.h.event(start, "healed; all nodes up".into());
    let result = check(&mut c, &s).await;
    let ops = s.h.ops.lock().unwrap().clone();
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|(_, o)| f(o)).count();
    let stats = Stats {
        guesses: count(&|o| matches!(o, Op::Guess { .. })),
        ke2: count(&|o| matches!(o, Op::Guess { outcome: Ok(_), .. })),
        registered: count(&|o| matches!(o, Op::Register { outcome: Ok(_), .. })),
        recovered: count(&|o| matches!(o, Op::Recover { outcome: Ok(_), .. })),
        chaos: chaos_stats,
    };
    c.shutdown().await;
    match result {
        Ok(()) => Ok(stats),
        Err(e) => Err(format!("seed {seed:#x}: {e}\n--- history (seed {seed:#x}) ---\n{}", s.h.render())),
    }
}

async fn check(c: &mut Cluster<VaultStateMachine>, s: &Shared) -> Result<(), String> {
    c.wait_leader(Duration::from_secs(60)).await?;
    c.wait_converged(Duration::from_secs(60)).await?;
    let ops = s.h.ops.lock().unwrap().clone();

    // Per attacked id: KE2s within the limit, each with a distinct remaining count.
    let mut ke2: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (_, o) in &ops {
        match o {
            Op::Guess { record, outcome: Ok(remaining), .. } => {
                ke2.entry(record).or_default().push(*remaining)
            }
            // Locked, no majority, or an unknown outcome of the node's own resubmission
            // (spec/fleet-replication.md §3 rule 4): no KE2, and nothing else is allowed.
            Op::Guess { record, outcome: Err(e), .. }
                if !["vault.record.locked", "fleet.unavailable", "session.request.replayed"]
                    .contains(&e.as_str()) =>
            {
                return Err(format!("guess on {record} failed with {e}"));
            }
            Op::Recover { record, outcome: Ok(remaining), .. } if *remaining != LIMIT => {
                return Err(format!("a recovery of {record} left {remaining}, not the reset {LIMIT}"));
            }
            _ => {}
        }
    }
    for (record, rem) in &ke2 {
        if rem.len() > LIMIT as usize {
            return Err(format!("{record}: {} wrong guesses got a KE2, limit {LIMIT}", rem.len()));
        }
        let distinct: BTreeSet<_> = rem.iter().collect();
        if distinct.len() != rem.len() {
            return Err(format!("{record}: a remaining count was handed out twice: {rem:?}"));
        }
    }

    // Every acknowledged registration is recoverable (through any node) with its key.
    let owned: Vec<_> =
        s.owned.lock().unwrap().iter().map(|(r, v)| (r.clone(), v.0.clone(), v.1.clone(), v.2)).collect();
    for (record, code, key, lost) in owned {
        if lost + 1 >= LIMIT {
            continue;
        }
        let mut tries = 0;
        let recovered = loop {
            tries += 1;
            let node = tries % NODES;
            let svc = s.dir.read().unwrap()[node].clone().unwrap();
            let target = &s.fleet.targets[node];
            let (body, rc) = RecoveryClient::start(&mut OsRng, record.as_bytes(), &code).unwrap();
            let r = async {
                let resp = call(&svc, target, fresh_id(), &body).await?;
                let ke2 = rc.receive(&resp).map_err(|e| e.code().to_owned())?;
                let (body, wait) = ke2
                    .finish(&mut OsRng, &s.fleet.ctx, ClientAction::Recover)
                    .map_err(|e| e.code().to_owned())?;
                let resp = call(&svc, target, fresh_id(), &body).await?;
                wait.finish(&resp).map_err(|e| e.code().to_owned())
            }
            .await;
            match r {
                Err(e) if e == "fleet.unavailable" && tries < 5 => continue,
                other => break other,
            }
        };
        match recovered {
            Ok(Outcome::Recovered { backup_key, .. }) if backup_key.as_bytes() == key.as_bytes() => {}
            other => return Err(format!("acknowledged registration {record} not recoverable: {other:?}")),
        }
    }

    // Availability: 2 of 5 down serves a guess, 3 down is fleet.unavailable.
    c.kill(0).await;
    c.kill(1).await;
    s.fleet.publish(c, &s.dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    let svc = |i: usize| s.dir.read().unwrap()[i].clone().unwrap();
    loop {
        match guess(s, 2, &svc(2), b"availability-probe-1", b"x").await {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => return Err(format!("2 of 5 down does not serve: {e}")),
            Err(_) => {}
        }
    }
    c.kill(2).await;
    s.fleet.publish(c, &s.dir);
    match guess(s, 3, &svc(3), b"availability-probe-2", b"x").await {
        Err(e) if e == "fleet.unavailable" => Ok(()),
        other => Err(format!("3 of 5 down answered {other:?}, not fleet.unavailable")),
    }
}

fn report(seed: u64, s: &Stats) {
    eprintln!(
        "seed {seed:#x}: {} wrong guesses ({} got a KE2), {} registrations and {} recoveries acknowledged; \
         {} kills, {} rollbacks, {} partitions",
        s.guesses, s.ke2, s.registered, s.recovered, s.chaos.kills, s.chaos.rollbacks, s.chaos.partitions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_fault_short() {
    let seed = seed_from_env(0x5eed_7a01);
    match run(seed, Duration::from_secs(12)).await {
        Ok(s) => report(seed, &s),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long run: several seeds, a minute of faults each"]
async fn vault_fault_long() {
    for (seed, duration) in long_runs() {
        match run(seed, duration).await {
            Ok(s) => report(seed, &s),
            Err(e) => panic!("{e}"),
        }
    }
}

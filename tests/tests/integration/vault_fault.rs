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
//! Afterwards every acknowledged registration is restored once, and the history checker
//! ([`bkv_tests::history`], the same one the multi-process runs use) judges the recorded
//! requests and answers: per record, the KE2s within the limit with distinct remaining
//! counts consistent with one committed order, and every acknowledged registration restored
//! (unless its guesses could all have been spent). Then:
//! - every node converges to the same state after healing;
//! - with 2 of 5 nodes down the fleet serves a guess; with 3 down it answers
//!   `fleet.unavailable`.
//!
//! On failure it prints the seed and the history. Reproduce with `BKV_FAULT_SEED=<hex>`;
//! the long run is `cargo test -p bkv-tests --test integration -- --ignored vault_fault::`
//! (`BKV_FAULT_RUNS`, `BKV_FAULT_SECS`).

use std::collections::BTreeMap;
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
use bkv_tests::history::{self, Answer, Entry, History, Kind};
use rand_chacha::ChaCha8Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

const NODES: usize = 5;
const LIMIT: u32 = 6;
const FLEET: &str = "test-fleet";
const VICTIMS: usize = 24;
const ATTACKERS: usize = 6;
const OWNERS: usize = 2;
const VICTIM_CODE: &[u8] = b"victim's code";
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

/// The run's history: fault events, and every request with its answer (the checker's input).
#[derive(Default)]
struct Recorded {
    events: Mutex<Vec<String>>,
    history: Mutex<History>,
}

impl Recorded {
    fn event(&self, start: Instant, s: String) {
        self.events.lock().unwrap().push(format!("{:>7}ms {s}", start.elapsed().as_millis()));
    }
    #[expect(clippy::too_many_arguments, reason = "one history entry")]
    fn op(
        &self,
        start: Instant,
        sent: u64,
        client: u32,
        node: usize,
        record: &str,
        kind: Kind,
        answer: Answer,
    ) {
        self.history.lock().unwrap().push(Entry {
            client,
            node: node_id(node),
            record: record.to_owned(),
            kind,
            request: None,
            start_ms: sent,
            end_ms: start.elapsed().as_millis() as u64,
            answer,
        });
    }
    fn render(&self) -> String {
        let mut out = String::new();
        for e in self.events.lock().unwrap().iter() {
            writeln!(out, "event {e}").unwrap();
        }
        out.push_str(&self.history.lock().unwrap().render());
        out
    }
}

fn ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// An acknowledged registration: code, backup key, and the owner's lost logins since its
/// last success.
type Owned = (Vec<u8>, BackupKey, u32);

struct Shared {
    fleet: Fleet,
    dir: Directory,
    stop: AtomicBool,
    h: Recorded,
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

/// `recover_start` through `node`: the KE2, or the answer that ended the attempt.
async fn start_recovery(
    s: &Shared,
    node: usize,
    svc: &Svc,
    record: &[u8],
    code: &[u8],
) -> Result<bkv_protocol::vault::RecoveryKe2, Answer> {
    let (body, rc) = RecoveryClient::start(&mut OsRng, record, code).unwrap();
    let ke2 = match call(svc, &s.fleet.targets[node], fresh_id(), &body).await {
        Ok(resp) => rc.receive(&resp).map_err(|e| e.code().to_owned()),
        Err(e) => Err(e),
    };
    ke2.map_err(failed)
}

/// A wrong guess: `recover_start`, then the client's finish fails on the KE2 and nothing
/// more is sent (spec/vault.md §6.4).
async fn guess(s: &Shared, node: usize, svc: &Svc, record: &[u8], code: &[u8]) -> Answer {
    let ke2 = match start_recovery(s, node, svc, record, code).await {
        Ok(ke2) => ke2,
        Err(answer) => return answer,
    };
    let remaining = ke2.remaining();
    match ke2.finish(&mut OsRng, &s.fleet.ctx, ClientAction::Recover) {
        Err(e) if e.code() == "vault.code.invalid" => Answer::WrongCode(remaining),
        Err(e) => failed(e.code().to_owned()),
        Ok(_) => Answer::WrongKey,
    }
}

fn failed(code: String) -> Answer {
    if code == "vault.record.locked" { Answer::Locked } else { Answer::Failed(code) }
}

/// A recovery with the right code through `node`: recover_finish goes to the node that
/// answered recover_start (spec/vault.md §7.3).
async fn recover(s: &Shared, node: usize, svc: &Svc, record: &[u8], code: &[u8], key: &BackupKey) -> Answer {
    let target = &s.fleet.targets[node];
    let ke2 = match start_recovery(s, node, svc, record, code).await {
        Ok(ke2) => ke2,
        Err(answer) => return answer,
    };
    let remaining = ke2.remaining();
    let (body, wait) = match ke2.finish(&mut OsRng, &s.fleet.ctx, ClientAction::Recover) {
        Ok(x) => x,
        Err(e) if e.code() == "vault.code.invalid" => return Answer::RightCodeRefused(remaining),
        Err(e) => return failed(e.code().to_owned()),
    };
    match call(svc, target, fresh_id(), &body)
        .await
        .and_then(|r| wait.finish(&r).map_err(|e| e.code().to_owned()))
    {
        Ok(Outcome::Recovered { backup_key, remaining }) if backup_key.as_bytes() == key.as_bytes() => {
            Answer::Recovered(remaining)
        }
        Ok(_) => Answer::WrongKey,
        Err(e) => failed(e),
    }
}

/// Register `record` under `code`; retries after `fleet.unavailable` reuse the request id.
async fn register(
    s: &Shared,
    rng: &mut ChaCha8Rng,
    record: &[u8],
    code: &[u8],
    key: &BackupKey,
) -> (usize, Answer) {
    let Some((node, svc)) = s.pick(rng) else {
        return (usize::MAX, Answer::Failed("client.transport".into()));
    };
    let target = &s.fleet.targets[node];
    let (body, rc) = RegistrationClient::start(&mut OsRng, record, code).unwrap();
    let resp = match call(&svc, target, fresh_id(), &body).await {
        Ok(r) => r,
        Err(e) => return (node, failed(e)),
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
    match last.and_then(|r| wait.finish(&r).map_err(|e| e.code().to_owned())) {
        Ok(n) => (node, Answer::Registered(n)),
        Err(e) => (node, failed(e)),
    }
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
        let sent = ms(s.start);
        let answer = guess(&s, node, &svc, record.as_bytes(), code.as_bytes()).await;
        s.h.op(s.start, sent, id as u32, node, &record, Kind::Guess, answer);
    }
}

async fn owner(s: Arc<Shared>, id: usize, seed: u64) {
    let client = (ATTACKERS + id) as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x0e4e + id as u64));
    let mut seq = 0u64;
    while !s.stop.load(Ordering::SeqCst) {
        if rng.next_u64() % 3 == 0 || s.owned.lock().unwrap().is_empty() {
            seq += 1;
            let record = format!("owner-record-{id:04}-{seq:08}");
            let code = format!("code-{id}-{seq}").into_bytes();
            let key = BackupKey::generate(&mut OsRng);
            let sent = ms(s.start);
            let (node, answer) = register(&s, &mut rng, record.as_bytes(), &code, &key).await;
            if matches!(answer, Answer::Registered(_)) {
                s.owned.lock().unwrap().insert(record.clone(), (code, key, 0));
            }
            s.h.op(s.start, sent, client, node, &record, Kind::Register, answer);
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
        // Until it succeeds, the attempt may have cost the owner a guess (a lost answer, a
        // lost pending login, an unknown outcome).
        s.owned.lock().unwrap().get_mut(&record).unwrap().2 += 1;
        let sent = ms(s.start);
        let answer = recover(&s, node, &svc, record.as_bytes(), &code, &key).await;
        if matches!(answer, Answer::Recovered(_)) {
            s.owned.lock().unwrap().get_mut(&record).unwrap().2 = 0;
        }
        s.h.op(s.start, sent, client, node, &record, Kind::Recover, answer);
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
        h: Recorded::default(),
        start,
        owned: Mutex::new(BTreeMap::new()),
    });
    s.fleet.publish(&c, &s.dir);

    // The victims are registered before the attack starts.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for v in 0..VICTIMS {
        let record = format!("victim-record-{v:04}");
        let key = BackupKey::generate(&mut OsRng);
        let sent = ms(start);
        let (node, answer) = register(&s, &mut rng, record.as_bytes(), VICTIM_CODE, &key).await;
        if answer != Answer::Registered(LIMIT) {
            return Err(format!("victim registration before any fault failed: {answer:?}"));
        }
        s.h.op(start, sent, u32::MAX, node, &record, Kind::Register, answer);
        s.owned.lock().unwrap().insert(record, (VICTIM_CODE.to_vec(), key, 0));
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
    let h = s.h.history.lock().unwrap().clone();
    let count = |f: &dyn Fn(&Entry) -> bool| h.entries.iter().filter(|e| f(e)).count();
    let stats = Stats {
        guesses: count(&|e| e.kind == Kind::Guess),
        ke2: count(&|e| matches!(e.answer, Answer::WrongCode(_))),
        registered: count(&|e| matches!(e.answer, Answer::Registered(_))),
        recovered: count(&|e| e.kind == Kind::Recover && matches!(e.answer, Answer::Recovered(_))),
        chaos: chaos_stats,
    };
    c.shutdown().await;
    match result {
        Ok(()) => Ok(stats),
        Err(e) => Err(format!("seed {seed:#x}: {e}\n--- history (seed {seed:#x}) ---\n{}", s.h.render())),
    }
}

/// After healing: every node converges, every acknowledged registration is restored once
/// (the final `Restore` entries), the history checker judges the run, and the fleet's
/// availability follows its majority.
async fn check(c: &mut Cluster<VaultStateMachine>, s: &Shared) -> Result<(), String> {
    c.wait_leader(Duration::from_secs(60)).await?;
    c.wait_converged(Duration::from_secs(60)).await?;
    let owned: Vec<_> =
        s.owned.lock().unwrap().iter().map(|(r, v)| (r.clone(), v.0.clone(), v.1.clone())).collect();
    for (i, (record, code, key)) in owned.into_iter().enumerate() {
        // Bounded retries while a node is still catching up.
        for attempt in 0..5 {
            let node = (i + attempt) % NODES;
            let svc = s.dir.read().unwrap()[node].clone().unwrap();
            let sent = ms(s.start);
            let answer = recover(s, node, &svc, record.as_bytes(), &code, &key).await;
            let retry = matches!(&answer, Answer::Failed(e) if e == "fleet.unavailable");
            s.h.op(s.start, sent, u32::MAX, node, &record, Kind::Restore, answer);
            if !retry {
                break;
            }
        }
    }
    let h = s.h.history.lock().unwrap().clone();
    let (summary, violations) = history::check(&History { limit: LIMIT, ..h });
    eprintln!("history checker: {summary:?}");
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        return Err(format!("{} violations:\n{}", list.len(), list.join("\n")));
    }

    // Availability: 2 of 5 down serves a guess, 3 down is fleet.unavailable.
    c.kill(0).await;
    c.kill(1).await;
    s.fleet.publish(c, &s.dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    let svc = |i: usize| s.dir.read().unwrap()[i].clone().unwrap();
    loop {
        match guess(s, 2, &svc(2), b"availability-probe-1", b"x").await {
            Answer::WrongCode(_) => break,
            other if Instant::now() >= deadline => {
                return Err(format!("2 of 5 down does not serve: {other:?}"));
            }
            _ => {}
        }
    }
    c.kill(2).await;
    s.fleet.publish(c, &s.dir);
    match guess(s, 3, &svc(3), b"availability-probe-2", b"x").await {
        Answer::Failed(e) if e == "fleet.unavailable" => Ok(()),
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

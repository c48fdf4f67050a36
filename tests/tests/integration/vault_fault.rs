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

use crate::replication_common::{Boot, ChaosStats, Cluster, chaos, long_runs, seed_from_env};
use bkv_node::hsm::{Kek, SoftHsm};
use bkv_node::replication::raft::{HsmPeer, RaftCommandLog, Timing};
use bkv_node::service::{NodeInfo, NodeService};
use bkv_protocol::crypto::{Algorithm, PublicKey, Signer};
use bkv_protocol::hsm::{Boundary, BoundaryConfig, HsmMachine, RpcSigner};
use bkv_protocol::session::{self, SessionTarget};
use bkv_protocol::validation_bundle::KeyRole;
use bkv_protocol::vault::{
    BackupKey, ClientAction, KsfParams, Outcome, RecoveryClient, RegistrationClient, VaultContext,
    VaultServerSetup,
};
use bkv_tests::history::{self, Answer, Entry, History, Kind};
use rand_chacha::ChaCha8Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use std::future::Future;
use std::path::PathBuf;

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

type Svc = Arc<NodeService<RaftCommandLog<HsmMachine>>>;
type Directory = Arc<RwLock<Vec<Option<Svc>>>>;

/// The fleet's software HSMs. Each start of node `i` opens a new [`Boundary`] (the HSM's
/// memory is lost on a restart) from its sealed keys and its HSM state file, which lives
/// outside the node's database directory: the rollbacks of `chaos` restore database
/// directories, never the HSM state (spec/hsm.md §1).
pub(crate) struct Fleet {
    hsms: Arc<Vec<SoftHsm>>,
    keys: Vec<PublicKey>,
    targets: Vec<SessionTarget>,
    pub(crate) ctx: VaultContext,
    kek: Kek,
    state_dir: PathBuf,
    /// The HSM of each running node's current incarnation.
    current: Arc<Mutex<Vec<Option<Arc<Boundary>>>>>,
}

impl Fleet {
    pub(crate) fn new(name: &str) -> Self {
        let first = SoftHsm::generate(&mut OsRng, VaultServerSetup::generate(&mut OsRng));
        let mut hsms = vec![first];
        for _ in 1..NODES {
            let setup = hsms[0].transfer_opaque_setup().unwrap();
            hsms.push(SoftHsm::generate(&mut OsRng, setup));
        }
        let key = |h: &SoftHsm, i: usize, role| -> Vec<u8> {
            h.node_entry(&node_id(i), "dc").key(role).unwrap().key.clone()
        };
        let targets = (0..NODES)
            .map(|i| SessionTarget {
                fleet_id: FLEET.into(),
                epoch: 1,
                node_id: node_id(i),
                session_key: key(&hsms[i], i, KeyRole::Session).try_into().unwrap(),
            })
            .collect();
        let keys = (0..NODES)
            .map(|i| PublicKey::new(Algorithm::Ed25519, key(&hsms[i], i, KeyRole::Signing)).unwrap())
            .collect();
        let ctx = VaultContext {
            fleet_id: FLEET.into(),
            opaque_server_key: key(&hsms[0], 0, KeyRole::Opaque).try_into().unwrap(),
            ksf: KsfParams::TEST,
        };
        let state_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-hsm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        Fleet {
            hsms: Arc::new(hsms),
            keys,
            targets,
            ctx,
            kek: Kek::generate(&mut OsRng),
            state_dir,
            current: Arc::new(Mutex::new(vec![None; NODES])),
        }
    }

    /// The HSM state file of node `i` (its NVRAM).
    pub(crate) fn state_file(&self, i: usize) -> PathBuf {
        self.state_dir.join(format!("node-{i}.state"))
    }

    /// How each node starts: a new HSM incarnation over its kept HSM state.
    pub(crate) fn boot(&self) -> Boot<HsmMachine> {
        let (hsms, keys, kek, current) =
            (self.hsms.clone(), self.keys.clone(), self.kek.clone(), self.current.clone());
        let state_dir = self.state_dir.clone();
        Arc::new(move |i| {
            let cfg = BoundaryConfig {
                fleet: FLEET.into(),
                epoch: 1,
                node: i as u64,
                quorum: NODES / 2 + 1,
                signing_keys: keys.clone(),
                guess_limit: LIMIT,
                awaiting_import: false,
            };
            let hsm = hsms[i]
                .open_boundary(cfg, &node_id(i), &state_dir.join(format!("node-{i}.state")), &kek, true)
                .unwrap_or_else(|e| panic!("node {i}'s HSM does not open: {e}"));
            current.lock().unwrap()[i] = Some(hsm.clone());
            let signer: Arc<dyn Signer + Send + Sync> = Arc::new(RpcSigner(hsm.clone()));
            let peer: Arc<dyn HsmPeer> = hsm.clone();
            (HsmMachine(hsm), signer, Some(peer))
        })
    }

    /// Start the fleet's nodes.
    pub(crate) async fn start(&self, name: &str) -> Cluster<HsmMachine> {
        Cluster::start_booted(name, Timing::fast(), self.keys.clone(), self.boot()).await
    }

    /// Node services over the running nodes' logs: a restarted node gets a new service
    /// (its pending logins are gone, as after a real restart).
    pub(crate) fn publish(&self, c: &Cluster<HsmMachine>, dir: &Directory) {
        let current = self.current.lock().unwrap().clone();
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
                    let hsm = current[i].clone().expect("a running node has an HSM");
                    Arc::new(NodeService::new(hsm, log, info, Vec::new()))
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
    let name = format!("vault-fault-{seed:x}");
    let fleet = Fleet::new(&name);
    let mut c = fleet.start(&name).await;
    let s = Arc::new(Shared {
        fleet,
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
async fn check(c: &mut Cluster<HsmMachine>, s: &Shared) -> Result<(), String> {
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

/// A fresh fleet with its clients' shared state, for the scripted tests below.
async fn scripted(name: &str) -> (Cluster<HsmMachine>, Shared) {
    let fleet = Fleet::new(name);
    let c = fleet.start(name).await;
    let s = Shared {
        fleet,
        dir: Arc::new(RwLock::new(Vec::new())),
        stop: AtomicBool::new(false),
        h: Recorded::default(),
        start: Instant::now(),
        owned: Mutex::new(BTreeMap::new()),
    };
    s.fleet.publish(&c, &s.dir);
    (c, s)
}

/// An answer through node `i`, retrying `fleet.unavailable` for at most 20 s (a leader
/// election after a restart).
async fn settled<F, Fut>(s: &Shared, mut ask: F) -> Answer
where
    F: FnMut(usize, Svc) -> Fut,
    Fut: Future<Output = Answer>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        let svc = s.dir.read().unwrap()[i % NODES].clone().expect("every node runs");
        let answer = ask(i % NODES, svc).await;
        if !matches!(&answer, Answer::Failed(e) if e == "fleet.unavailable") || Instant::now() >= deadline {
            return answer;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A wrong guess on `record` through the running nodes in turn until one answers other
/// than `fleet.unavailable` (for at most 20 s). Every attempt is recorded with its own
/// times: an attempt answered `fleet.unavailable` by a node being stopped may still have
/// been committed, and the history checker counts it as such.
async fn in_flight_guess(s: &Shared, record: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let name = std::str::from_utf8(record).unwrap();
    for i in 0.. {
        let Some(svc) = s.dir.read().unwrap()[i % NODES].clone() else {
            // At most one node is stopped at a time: the next one runs.
            continue;
        };
        let sent = ms(s.start);
        let answer = guess(s, i % NODES, &svc, record, b"wrong").await;
        let unavailable = matches!(&answer, Answer::Failed(e) if e == "fleet.unavailable");
        s.h.op(s.start, sent, 1, i % NODES, name, Kind::Guess, answer);
        if !unavailable || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_all(c: &mut Cluster<HsmMachine>) {
    for i in 0..NODES {
        c.kill(i).await;
    }
}

/// spec/hsm.md §10, the attack of issue "Part 4": copy every node's database directory
/// (everything but the HSM state), spend guesses and acknowledge a registration, then
/// restore every copy. The fleet fails closed (no KE2, never the late registration answered
/// as unknown); restoring the newest disks brings it back with the counter where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_every_disk_gives_no_extra_guess() {
    let (mut c, shared) = scripted("hsm-rollback-all").await;
    let s = &shared;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (victim, code) = (b"victim-record-rollback".as_slice(), b"the victim's code".as_slice());
    let key = BackupKey::generate(&mut OsRng);
    assert_eq!(register(s, &mut rng, victim, code, &key).await.1, Answer::Registered(LIMIT));

    // Copy every node's database directory while the fleet is stopped.
    stop_all(&mut c).await;
    let old: Vec<_> = (0..NODES).map(|i| c.copy_disk(i, "before")).collect();
    for i in 0..NODES {
        c.restart(i).await;
    }
    c.wait_leader(Duration::from_secs(30)).await.unwrap();
    s.fleet.publish(&c, &s.dir);

    // A registration acknowledged after the copy, and every guess but one spent.
    let late = b"late-record-after-copy".as_slice();
    let late_key = &BackupKey::generate(&mut OsRng);
    let (_, answer) = register(s, &mut rng, late, code, late_key).await;
    assert_eq!(answer, Answer::Registered(LIMIT));
    for n in 1..LIMIT {
        let answer = settled(s, |i, svc| async move { guess(s, i, &svc, victim, b"wrong").await }).await;
        assert_eq!(answer, Answer::WrongCode(LIMIT - n), "guess {n}");
    }

    // Restore every old copy (the HSM state files stay: they are the HSMs' NVRAM).
    stop_all(&mut c).await;
    let new: Vec<_> = (0..NODES).map(|i| c.copy_disk(i, "newest")).collect();
    for i in 0..NODES {
        assert!(s.fleet.state_file(i).exists(), "node {i}'s HSM state lives outside its database directory");
        assert!(!s.fleet.state_file(i).starts_with(&c.dirs[i]));
    }
    for (i, copy) in old.iter().enumerate() {
        c.restart_from(i, copy).await;
    }
    s.fleet.publish(&c, &s.dir);

    // For ten seconds, every guess and every recovery of the late record: fail closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut asked = 0;
    while Instant::now() < deadline && asked < 40 {
        let i = asked % NODES;
        let svc = s.dir.read().unwrap()[i].clone().unwrap();
        let answer = guess(s, i, &svc, victim, b"wrong again").await;
        assert_eq!(answer, Answer::Failed("fleet.unavailable".into()), "a guess after the rollback");
        let answer = recover(s, i, &svc, late, code, late_key).await;
        assert_eq!(answer, Answer::Failed("fleet.unavailable".into()), "the late registration");
        asked += 1;
    }
    assert!(asked >= 5, "the fleet was asked only {asked} times");
    // spec/fleet-replication.md §9: each node's status shows its HSM refusing, and why.
    let reports: Vec<_> = (0..NODES).map(|i| c.nodes[i].as_ref().unwrap().status().hsm.unwrap()).collect();
    let refusing = reports.iter().filter(|r| r.status == "behind" || r.status == "diverged").count();
    assert!(refusing > NODES / 2, "a quorum of HSMs refuses: {reports:?}");
    assert!(reports.iter().any(|r| r.status == "diverged" || r.disk_behind_mark), "{reports:?}");

    // spec/hsm.md §10.1 rule 1: the operator restores the newest disks; every counter is
    // where it was, and the late registration is there.
    stop_all(&mut c).await;
    for (i, copy) in new.iter().enumerate() {
        c.restart_from(i, copy).await;
    }
    c.wait_leader(Duration::from_secs(30)).await.unwrap();
    s.fleet.publish(&c, &s.dir);
    let answer = settled(s, |i, svc| async move { recover(s, i, &svc, late, code, late_key).await }).await;
    assert_eq!(answer, Answer::Recovered(LIMIT), "the late registration survived");
    let ke2 = settled(s, |i, svc| async move {
        match start_recovery(s, i, &svc, victim, code).await {
            Ok(ke2) => Answer::WrongCode(ke2.remaining()),
            Err(a) => a,
        }
    })
    .await;
    assert_eq!(ke2, Answer::WrongCode(0), "the victim's counter was not reset: one guess was left");
    c.shutdown().await;
}

/// Record `answer` to `kind` on `record` through node `node` in the history.
fn note(s: &Shared, node: usize, record: &[u8], kind: Kind, answer: &Answer) {
    let sent = ms(s.start);
    s.h.op(s.start, sent, 0, node, std::str::from_utf8(record).unwrap(), kind, answer.clone());
}

/// One round of the subset rollback run (spec/hsm.md §10): a fresh fleet; every node's
/// disk copied in turn (the node stopped, copied, restarted) while guesses are in flight;
/// guesses and an acknowledged registration after the copies; then the disks of the nodes
/// in `mask` restored from them. The history checker judges the round; a rollback of at
/// most `n - q` disks leaves the fleet serving, a rollback of every disk fails closed, and
/// in between the fleet either serves correctly or fails closed. Returns whether it
/// failed closed.
async fn rollback_round(name: &str, mask: u32) -> Result<bool, String> {
    let (mut c, shared) = scripted(name).await;
    let s = &shared;
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(mask));
    let code = b"round code".as_slice();
    let (a, b, late) = (
        b"victim-a-0000000000".as_slice(),
        b"victim-b-0000000000".as_slice(),
        b"late-registration-00".as_slice(),
    );
    let keys: Vec<BackupKey> = (0..3).map(|_| BackupKey::generate(&mut OsRng)).collect();
    let keys = &keys;
    for (record, key) in [(a, &keys[0]), (b, &keys[1])] {
        let (node, answer) = register(s, &mut rng, record, code, key).await;
        note(s, node, record, Kind::Register, &answer);
    }
    let answer = settled(s, |i, svc| async move { guess(s, i, &svc, a, b"wrong").await }).await;
    note(s, 0, a, Kind::Guess, &answer);

    // With two guesses in flight, each node in a seeded order is stopped at a seeded
    // point, its disk copied and the node restarted, while the others keep serving: the
    // copies hold different log positions.
    let mut order: Vec<usize> = (0..NODES).collect();
    for i in (1..NODES).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let pauses: Vec<u64> = (0..NODES).map(|_| rng.next_u64() % 200).collect();
    let guesses = async {
        for _ in 0..2 {
            in_flight_guess(s, a).await;
        }
    };
    let copies = async {
        let mut old = vec![PathBuf::new(); NODES];
        for (&i, &pause) in order.iter().zip(&pauses) {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            c.kill(i).await;
            s.fleet.publish(&c, &s.dir);
            old[i] = c.copy_disk(i, "old");
            c.restart(i).await;
            s.fleet.publish(&c, &s.dir);
        }
        old
    };
    let ((), old) = tokio::join!(guesses, copies);
    c.wait_leader(Duration::from_secs(30)).await?;
    s.fleet.publish(&c, &s.dir);
    let (node, answer) = register(s, &mut rng, late, code, &keys[2]).await;
    note(s, node, late, Kind::Register, &answer);
    for _ in 0..2 {
        let answer = settled(s, |i, svc| async move { guess(s, i, &svc, a, b"wrong").await }).await;
        note(s, 0, a, Kind::Guess, &answer);
    }
    let answer = settled(s, |i, svc| async move { recover(s, i, &svc, b, code, &keys[1]).await }).await;
    note(s, 0, b, Kind::Recover, &answer);

    stop_all(&mut c).await;
    let newest: Vec<_> = (0..NODES).map(|i| c.copy_disk(i, "newest")).collect();
    for (i, copy) in old.iter().enumerate() {
        if mask & (1 << i) != 0 {
            c.restart_from(i, copy).await;
        } else {
            c.restart(i).await;
        }
    }
    s.fleet.publish(&c, &s.dir);

    // Ask for 6 s: every answer is recorded; the fleet fails closed if none is served.
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut served = false;
    let mut turn = 0;
    while Instant::now() < deadline && !served {
        let i = turn % NODES;
        turn += 1;
        let svc = s.dir.read().unwrap()[i].clone().unwrap();
        let answers = [
            (a, Kind::Guess, guess(s, i, &svc, a, b"wrong").await),
            (late, Kind::Recover, recover(s, i, &svc, late, code, &keys[2]).await),
        ];
        for (record, kind, answer) in answers {
            served |= !matches!(&answer, Answer::Failed(e) if e == "fleet.unavailable");
            note(s, i, record, kind, &answer);
        }
        if !served {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    judge_availability(mask, served)?;
    if !served {
        // spec/hsm.md §10.1 rule 1: the operator restores the newest disks.
        stop_all(&mut c).await;
        for (i, copy) in newest.iter().enumerate() {
            c.restart_from(i, copy).await;
        }
        c.wait_leader(Duration::from_secs(30)).await?;
        s.fleet.publish(&c, &s.dir);
    }
    for (record, key) in [(a, &keys[0]), (b, &keys[1]), (late, &keys[2])] {
        let answer = settled(s, |i, svc| async move { recover(s, i, &svc, record, code, key).await }).await;
        note(s, 0, record, Kind::Restore, &answer);
    }
    let h = s.h.history.lock().unwrap().clone();
    let (_, violations) = history::check(&History { limit: LIMIT, ..h });
    c.shutdown().await;
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        return Err(format!("mask {mask:05b}: {}\n--- history ---\n{}", list.join("\n"), s.h.render()));
    }
    Ok(!served)
}

/// spec/hsm.md §10 on five nodes: a rollback of at most `n - q` disks keeps the fleet
/// serving, a rollback of every disk fails closed; in between either is right.
pub(crate) fn judge_availability(mask: u32, served: bool) -> Result<(), String> {
    let rolled = mask.count_ones() as usize;
    if rolled <= NODES - (NODES / 2 + 1) && !served {
        return Err(format!("mask {mask:05b}: {rolled} rolled-back disks, and the fleet stopped serving"));
    }
    if rolled == NODES && served {
        return Err(format!("mask {mask:05b}: every disk rolled back, and the fleet still served"));
    }
    Ok(())
}

/// Run `round(tag, mask)` for each of `masks` in order, a line per round; `what` names the
/// fleet in the lines. A round returns whether the fleet failed closed.
pub(crate) async fn run_rounds<F, Fut>(seed: u64, masks: &[u32], what: &str, mut round: F)
where
    F: FnMut(String, u32) -> Fut,
    Fut: Future<Output = Result<bool, String>>,
{
    for (n, &mask) in masks.iter().enumerate() {
        let started = Instant::now();
        match round(format!("{}-{seed:x}-{n}", what.replace(' ', "-")), mask).await {
            Ok(closed) => eprintln!(
                "seed {seed:#x} round {n}: disks {mask:05b} of the {what} rolled back: {} ({:?})",
                if closed { "failed closed, newest disks restored" } else { "served" },
                started.elapsed()
            ),
            Err(e) => panic!("seed {seed:#x} round {n}: {e}"),
        }
    }
}

/// The 31 non-empty subsets of the five nodes in a seeded order.
pub(crate) fn seeded_subsets(seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut masks: Vec<u32> = (1..32).collect();
    for i in (1..masks.len()).rev() {
        masks.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    masks
}

/// The short run: every disk, then the first two and the first four-disk subsets of the
/// seeded order (the long run takes all 31).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_subsets_of_disks_short() {
    let seed = seed_from_env(0x5eed_5b5e);
    let order = seeded_subsets(seed);
    let two = order.iter().copied().find(|m| m.count_ones() == 2).unwrap();
    let four = order.iter().copied().find(|m| m.count_ones() == 4).unwrap();
    run_rounds(seed, &[0b11111, two, four], "in-process fleet", |tag, mask| async move {
        rollback_round(&tag, mask).await
    })
    .await;
}

/// The long run: all 31 non-empty subsets of five nodes in a seeded order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long run: 31 rounds, several minutes"]
async fn rolling_back_subsets_of_disks_long() {
    let seed = seed_from_env(0x5eed_5b5e);
    run_rounds(seed, &seeded_subsets(seed), "in-process fleet", |tag, mask| async move {
        rollback_round(&tag, mask).await
    })
    .await;
}

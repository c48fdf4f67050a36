//! `bkv-fault-client`: the clients of the multi-process fault run, started by the test
//! inside the lab's client namespace (`tests/src/netns.rs`). They talk to the nodes only
//! through `bkv-client`, exactly as a phone would, and record every request and answer as
//! a history entry ([`bkv_tests::history::Entry`]).
//!
//! ```text
//! bkv-fault-client --dir FLEET --node URL... --secs N --seed S [--owners N] [--attackers N]
//! ```
//!
//! Standard output, one line each: `ready` once every node answered `/readyz` and every
//! client verified the fleet's bundle; `entry {json}` per request; `done` when the run's
//! time is over. It then waits for `restore` on standard input (the test has healed every
//! fault), recovers every record whose registration was acknowledged with its right code
//! (the `restore` entries), prints `finished` and exits.
//!
//! - Owners register records, recover them with the right code, and guess wrong now and
//!   then (never so often that their own guesses could lock a record).
//! - Attackers guess wrong against records of the shared pool (every acknowledged
//!   registration), the same record through different nodes at once.
#![forbid(unsafe_code)]

use bkv_client::{FleetClient, Persisted, Trust};
use bkv_protocol::vault::{BackupKey, KsfParams};
use bkv_tests::history::{Answer, Entry, Kind};
use rand_chacha::ChaCha8Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    dir: PathBuf,
    nodes: Vec<String>,
    secs: u64,
    seed: u64,
    owners: usize,
    attackers: usize,
}

fn args() -> Args {
    let mut a = Args { dir: PathBuf::new(), nodes: Vec::new(), secs: 30, seed: 1, owners: 4, attackers: 3 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let num = || value.parse::<u64>().unwrap_or_else(|e| panic!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--dir" => a.dir = value.clone().into(),
            "--node" => a.nodes.push(value.clone()),
            "--secs" => a.secs = num(),
            "--seed" => a.seed = num(),
            "--owners" => a.owners = num() as usize,
            "--attackers" => a.attackers = num() as usize,
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.nodes.is_empty(), "--node URL at least once");
    a
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An acknowledged registration: its record, code and key.
#[derive(Clone)]
struct Owned {
    record: String,
    code: Vec<u8>,
    key: BackupKey,
}

struct Run {
    clients: Vec<FleetClient>,
    pool: Mutex<Vec<Owned>>,
    out: Mutex<std::io::Stdout>,
}

impl Run {
    fn emit(&self, e: &Entry) {
        let mut out = self.out.lock().unwrap();
        let _ = writeln!(out, "entry {}", serde_json::to_string(e).expect("serializable"));
        let _ = out.flush();
    }

    fn line(&self, s: &str) {
        let mut out = self.out.lock().unwrap();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }

    /// Send one request of `kind` for `record` through node `node` and record it.
    async fn op(&self, client: u32, node: usize, kind: Kind, o: &Owned) -> Answer {
        let c = &self.clients[node];
        let start_ms = now_ms();
        let answer = bkv_tests::ops::op(c, kind, o.record.as_bytes(), &o.code, &o.key).await;
        self.emit(&Entry {
            client,
            node: c.node_id().to_owned(),
            record: o.record.clone(),
            kind,
            request: None,
            start_ms,
            end_ms: now_ms(),
            answer: answer.clone(),
        });
        answer
    }
}

fn fresh(client: u32, seq: u64) -> Owned {
    Owned {
        record: format!("c{client:02}-r{seq:06}-{:08x}", OsRng.next_u32()),
        code: format!("{:06}", OsRng.next_u32() % 1_000_000).into_bytes(),
        key: BackupKey::generate(&mut OsRng),
    }
}

/// An owner: registers, recovers with the right code, and guesses wrong while its own
/// possibly-spent guesses leave room (`limit - 2`).
async fn owner(run: Arc<Run>, client: u32, seed: u64, until: Instant, limit: u32) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x0e4e_0000 + client as u64));
    let n = run.clients.len() as u64;
    let mut mine: Vec<(Owned, u32)> = Vec::new();
    let mut seq = 0;
    while Instant::now() < until {
        let node = (rng.next_u64() % n) as usize;
        let roll = rng.next_u64() % 10;
        if mine.len() < 2 || roll < 3 {
            seq += 1;
            let o = fresh(client, seq);
            if let Answer::Registered(_) = run.op(client, node, Kind::Register, &o).await {
                run.pool.lock().unwrap().push(o.clone());
                mine.push((o, 0));
                if mine.len() > 6 {
                    mine.remove(0);
                }
            }
            continue;
        }
        let i = (rng.next_u64() % mine.len() as u64) as usize;
        let (o, spent) = mine[i].clone();
        if roll < 5 && spent + 3 < limit {
            run.op(client, node, Kind::Guess, &o).await;
            mine[i].1 += 1;
        } else {
            match run.op(client, node, Kind::Recover, &o).await {
                Answer::Recovered(_) => mine[i].1 = 0,
                Answer::Locked => {
                    mine.remove(i);
                }
                _ => mine[i].1 += 1,
            }
        }
    }
}

/// An attacker: wrong guesses against the eight newest records of the shared pool (so that
/// records do lock while faults happen).
async fn attacker(run: Arc<Run>, client: u32, seed: u64, until: Instant) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0xa77a_0000 + client as u64));
    let n = run.clients.len() as u64;
    while Instant::now() < until {
        let target = {
            let pool = run.pool.lock().unwrap();
            if pool.is_empty() {
                None
            } else {
                let recent = pool.len().min(8);
                Some(pool[pool.len() - 1 - (rng.next_u64() % recent as u64) as usize].clone())
            }
        };
        let Some(o) = target else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        run.op(client, (rng.next_u64() % n) as usize, Kind::Guess, &o).await;
    }
}

async fn wait_ready(http: &reqwest::Client, url: &str, deadline: Instant) {
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} not ready in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let trust: Trust =
        bkv_protocol::cbor::from_slice(&std::fs::read(a.dir.join("trust.cbor")).expect("trust.cbor"))
            .expect("trust.cbor decodes");
    let http = bkv_client::http::builder().timeout(Duration::from_secs(2)).build().expect("client");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut clients = Vec::new();
    for url in &a.nodes {
        wait_ready(&http, url, deadline).await;
        let c = FleetClient::connect(
            url,
            &trust,
            &Persisted::default(),
            KsfParams::TEST,
            bkv_client::clock::system_now(),
        )
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
        .0;
        clients.push(c);
    }
    let limit = clients[0].keyset().guess_limit;
    let run = Arc::new(Run { clients, pool: Mutex::new(Vec::new()), out: Mutex::new(std::io::stdout()) });
    run.line("ready");
    let until = Instant::now() + Duration::from_secs(a.secs);
    let mut tasks = Vec::new();
    for c in 0..a.owners {
        tasks.push(tokio::spawn(owner(run.clone(), c as u32, a.seed, until, limit)));
    }
    for c in 0..a.attackers {
        tasks.push(tokio::spawn(attacker(run.clone(), (a.owners + c) as u32, a.seed, until)));
    }
    for t in tasks {
        t.await.expect("a client task panicked");
    }
    run.line("done");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    assert_eq!(line.trim(), "restore", "expected `restore`, got {line:?}");
    let pool = run.pool.lock().unwrap().clone();
    let client = (a.owners + a.attackers) as u32;
    // Eight restores at a time; each record with bounded retries while nodes catch up.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pool = Arc::new(pool);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (run, next, pool) = (run.clone(), next.clone(), pool.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(o) = pool.get(i) else { return };
                    for attempt in 0..5 {
                        let answer = run.op(client, (i + attempt) % run.clients.len(), Kind::Restore, o).await;
                        let retry = matches!(&answer, Answer::Failed(c) if bkv_tests::history::INDETERMINATE.contains(&c.as_str()));
                        if !retry {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("a restore task panicked");
    }
    run.line("finished");
}

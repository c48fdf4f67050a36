//! The vault end to end over HTTP against a replicated local fleet (spec/vault.md,
//! spec/session.md, spec/backup-envelope.md): every request is sealed to a node of a
//! bundle the client verified, and every counted guess is committed by a majority.

use bkv_client::{FleetClient, Persisted, Recovery};
use bkv_fleet::fleet::{FleetConfig, LocalFleet};
use bkv_node::replication::raft::Timing;
use bkv_protocol::backup_envelope;
use bkv_protocol::cbor;
use bkv_protocol::session::{self, SessionTarget};
use bkv_protocol::vault::{BackupKey, KsfParams};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

const FLEET: &str = "test.bkv.example/vault";

struct Scratch(std::path::PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!(
        "bkv-vault-http-{name}-{}-{}",
        std::process::id(),
        OsRng.next_u64()
    ));
    Scratch(d)
}

async fn fleet(dir: &Scratch, nodes: usize) -> LocalFleet {
    let mut config = FleetConfig::new(FLEET, nodes);
    config.timing = Timing::fast();
    LocalFleet::create(&dir.0, &config, |_| {}).await.expect("fleet starts")
}

async fn client(fleet: &LocalFleet, node: usize) -> FleetClient {
    let now = bkv_client::clock::system_now();
    FleetClient::connect(&fleet.nodes[node].url, &fleet.trust, &Persisted::default(), KsfParams::TEST, now)
        .await
        .expect("bundle verifies")
        .0
}

fn record(n: u8) -> Vec<u8> {
    vec![n; 32]
}

fn remaining_after_wrong(r: Recovery) -> u32 {
    match r {
        Recovery::WrongCode { remaining } => remaining,
        Recovery::Recovered { .. } => panic!("a wrong code recovered the key"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_backup_restore_through_another_node() {
    let dir = scratch("e2e");
    let fleet = fleet(&dir, 3).await;
    let a = client(&fleet, 0).await;
    let key = BackupKey::generate(&mut OsRng);
    assert_eq!(a.register(&record(1), b"correct horse", &key).await.unwrap(), 10);

    let mut history = vec![0u8; 200_000];
    ChaCha20Rng::seed_from_u64(7).fill_bytes(&mut history);
    let mut sealed = Vec::new();
    backup_envelope::seal(&key, FLEET, &record(1), &mut OsRng, &history[..], &mut sealed, |_| {}).unwrap();

    // A new phone, talking to another node, knows only the code.
    let b = client(&fleet, 2).await;
    let Recovery::Recovered { backup_key, remaining } =
        b.recover(&record(1), b"correct horse").await.unwrap()
    else {
        panic!("the right code must recover")
    };
    assert_eq!(remaining, 10);
    let mut restored = Vec::new();
    backup_envelope::open(&backup_key, Some((FLEET, &record(1))), &sealed[..], &mut restored, |_| {})
        .unwrap();
    assert_eq!(restored, history);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_codes_count_down_by_one_reset_on_success_and_lock_at_the_limit() {
    let dir = scratch("limit");
    let fleet = fleet(&dir, 3).await;
    let c = client(&fleet, 1).await;
    let key = BackupKey::generate(&mut OsRng);
    c.register(&record(2), b"1234", &key).await.unwrap();

    assert_eq!(remaining_after_wrong(c.recover(&record(2), b"0000").await.unwrap()), 9);
    assert_eq!(remaining_after_wrong(c.recover(&record(2), b"0001").await.unwrap()), 8);
    let Recovery::Recovered { backup_key, remaining } = c.recover(&record(2), b"1234").await.unwrap() else {
        panic!("the right code must recover")
    };
    assert_eq!(remaining, 10, "a successful recovery resets the counter");
    assert_eq!(backup_key.as_bytes(), key.as_bytes());

    for expected in (0..10).rev() {
        assert_eq!(remaining_after_wrong(c.recover(&record(2), b"9999").await.unwrap()), expected);
    }
    let err = c.recover(&record(2), b"1234").await.unwrap_err();
    assert_eq!(err.code(), "vault.record.locked", "the right code after the limit-th wrong one");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_through_every_node_never_exceed_the_limit() {
    let dir = scratch("concurrent");
    let fleet = fleet(&dir, 3).await;
    let owner = client(&fleet, 0).await;
    owner.register(&record(3), b"secret", &BackupKey::generate(&mut OsRng)).await.unwrap();

    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(client(&fleet, i).await);
    }
    let mut tasks = Vec::new();
    for g in 0..30u32 {
        let c = clients[g as usize % 3].clone();
        tasks.push(tokio::spawn(async move { c.recover(&record(3), format!("guess-{g}").as_bytes()).await }));
    }
    // A loaded machine may answer some attempts `fleet.unavailable`: their fate is unknown
    // (committed or not), so they are counted apart, and the record is then guessed on
    // until it locks, which spends exactly what the indeterminate attempts left.
    let (mut counted, mut locked, mut unknown, mut seen) = (0, 0, 0, Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                counted += 1;
                seen.push(remaining_after_wrong(r));
            }
            Err(e) if bkv_tests::history::INDETERMINATE.contains(&e.code()) => unknown += 1,
            Err(e) => {
                assert_eq!(e.code(), "vault.record.locked");
                locked += 1;
            }
        }
    }
    let mut later = 0;
    for _ in 0..40 {
        match clients[0].recover(&record(3), b"probe").await {
            Ok(r) => {
                later += 1;
                seen.push(remaining_after_wrong(r));
            }
            Err(e) if bkv_tests::history::INDETERMINATE.contains(&e.code()) => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                assert_eq!(e.code(), "vault.record.locked");
                break;
            }
        }
    }
    eprintln!(
        "{counted} KE2s, {locked} locked, {unknown} indeterminate, then {later} more KE2s until locked"
    );
    assert!(counted + later <= 10, "at most guess_limit attempts got a KE2: {counted} + {later}");
    assert!(counted + later + unknown >= 10, "the record locked with fewer than guess_limit attempts");
    if unknown == 0 {
        assert_eq!((counted, locked, later), (10, 20, 0), "exactly guess_limit attempts got a KE2");
    }
    seen.sort_unstable();
    let distinct = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), distinct, "each counted attempt saw a distinct counter value");
    assert!(seen.iter().all(|r| *r < 10));
    fleet.shutdown().await;
}

/// Seal a recover_start body for `record` to `target` with request id `id`.
fn recover_start(target: &SessionTarget, record: &[u8], id: [u8; 16]) -> (Vec<u8>, session::AwaitResponse) {
    let (body, _) = bkv_protocol::vault::RecoveryClient::start(&mut OsRng, record, b"code").unwrap();
    session::seal_request_with_id(&mut OsRng, target, bkv_client::clock::system_now(), id, &body).unwrap()
}

/// The shape of a response body: map keys and the length of every byte string.
fn shape(body: &[u8]) -> Vec<(String, String)> {
    let v: ciborium::Value = cbor::value_from_slice(body, &[]).unwrap();
    fn walk(v: &ciborium::Value, path: String, out: &mut Vec<(String, String)>) {
        use ciborium::Value;
        match v {
            Value::Map(m) => m.iter().for_each(|(k, v)| walk(v, format!("{path}.{k:?}"), out)),
            Value::Bytes(b) => out.push((path, format!("bytes[{}]", b.len()))),
            Value::Integer(_) => out.push((path, "int".into())),
            Value::Text(t) => out.push((path, format!("text {t}"))),
            other => out.push((path, format!("{other:?}"))),
        }
    }
    let mut out = Vec::new();
    walk(&v, String::new(), &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_record_and_wrong_code_get_the_same_response_shape() {
    let dir = scratch("unknown");
    let fleet = fleet(&dir, 3).await;
    let c = client(&fleet, 0).await;
    c.register(&record(4), b"right", &BackupKey::generate(&mut OsRng)).await.unwrap();

    let mut ids = [[0u8; 16]; 2];
    ids.iter_mut().for_each(|id| OsRng.fill_bytes(id));
    let (known, k_wait) = recover_start(c.target(), &record(4), ids[0]);
    let (unknown, u_wait) = recover_start(c.target(), &record(5), ids[1]);
    let known_raw = c.post(known).await.unwrap();
    let unknown_raw = c.post(unknown).await.unwrap();
    assert_eq!(known_raw.len(), unknown_raw.len(), "sealed responses have one length");
    let (k, u) = (k_wait.open(&known_raw).unwrap(), u_wait.open(&unknown_raw).unwrap());
    assert_eq!(shape(&k), shape(&u));
    // And the client-visible outcome is the same: a counted wrong guess.
    assert_eq!(remaining_after_wrong(c.recover(&record(5), b"any").await.unwrap()), 8);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_request_and_request_for_another_fleet_are_rejected() {
    let dir = scratch("replay");
    let fleet = fleet(&dir, 3).await;
    let c = client(&fleet, 0).await;
    c.register(&record(6), b"right", &BackupKey::generate(&mut OsRng)).await.unwrap();

    let id = [7u8; 16];
    let (first, wait) = recover_start(c.target(), &record(6), id);
    wait.open(&c.post(first.clone()).await.unwrap()).expect("first delivery is served");
    // The same request id again (a replay of a served request).
    let (again, wait) = recover_start(c.target(), &record(6), id);
    let err = wait.open(&c.post(again).await.unwrap()).unwrap_err();
    assert_eq!(err.code(), "session.request.replayed");

    // Sealed to a key that is not this node's (another fleet's node): cannot be opened.
    let mut other = c.target().clone();
    other.session_key = session::SessionSecretKey::generate(&mut OsRng).public_key();
    let (foreign, wait) = recover_start(&other, &record(6), [8u8; 16]);
    assert_eq!(wait.open(&c.post(foreign).await.unwrap()).unwrap_err().code(), "session.open.failed");
    // Naming another fleet.
    let mut other = c.target().clone();
    other.fleet_id = "other.example/vault".into();
    let (foreign, wait) = recover_start(&other, &record(6), [9u8; 16]);
    assert_eq!(wait.open(&c.post(foreign).await.unwrap()).unwrap_err().code(), "session.fleet.mismatch");

    // None of these spent a guess.
    assert_eq!(remaining_after_wrong(c.recover(&record(6), b"wrong").await.unwrap()), 8);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_majority_no_guess_is_served_and_counters_survive_a_full_restart() {
    let dir = scratch("majority");
    let mut fleet = fleet(&dir, 3).await;
    let c = client(&fleet, 0).await;
    c.register(&record(7), b"right", &BackupKey::generate(&mut OsRng)).await.unwrap();
    assert_eq!(remaining_after_wrong(c.recover(&record(7), b"wrong").await.unwrap()), 9);

    fleet.stop_node(1).await;
    fleet.stop_node(2).await;
    let err = c.recover(&record(7), b"wrong").await.unwrap_err();
    assert_eq!(err.code(), "fleet.unavailable", "a minority never hands out a guess");

    let trust = fleet.trust.clone();
    fleet.shutdown().await;
    let fleet = LocalFleet::open(&dir.0, Timing::fast(), |_| {}).await.expect("restart");
    assert_eq!(fleet.trust, trust);
    let c = client(&fleet, 2).await;
    let r = c.recover(&record(7), b"wrong").await.unwrap();
    let left = remaining_after_wrong(r);
    assert!(left == 8 || left == 7, "the refused attempt may or may not have been committed, got {left}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transport_errors_are_statuses_and_change_nothing() {
    let dir = scratch("transport");
    let fleet = fleet(&dir, 1).await;
    let c = client(&fleet, 0).await;
    c.register(&record(9), b"right", &BackupKey::generate(&mut OsRng)).await.unwrap();
    let http = bkv_client::http::client();
    let url = format!("{}/v1/session", fleet.nodes[0].url);
    let (sealed, _) = recover_start(c.target(), &record(9), [1u8; 16]);
    // spec/node-api.md §1 rule 2: wrong media type, oversized body.
    let r = http.post(&url).header("content-type", "text/plain").body(sealed).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let r =
        http.post(&url).header("content-type", "application/cbor").body(vec![0u8; 17 * 1024]).send().await;
    assert_eq!(r.unwrap().status().as_u16(), 413);
    // Garbage of an acceptable size is a protocol error inside a 200 (rule 1).
    let r = http.post(&url).header("content-type", "application/cbor").body(vec![0xffu8; 10]).send().await;
    let r = r.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, wait) = recover_start(c.target(), &record(9), [2u8; 16]);
    assert_eq!(wait.open(&r.bytes().await.unwrap()).unwrap_err().code(), "cbor.malformed");
    // None of it was a guess.
    assert_eq!(remaining_after_wrong(c.recover(&record(9), b"wrong").await.unwrap()), 9);
    fleet.shutdown().await;
}

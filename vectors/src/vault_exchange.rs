//! Vectors for the OPAQUE exchanges of spec/vault.md §6.3, §6.4 (client) and §7.1, §7.3
//! (node): operations `vault_client_register`, `vault_client_recover` and
//! `vault_node_login` of spec/conformance.md §3.1.
//!
//! Every random value of the side a harness plays is an explicit, named input (as in RFC
//! 9807 Appendix C): the generator picks them, hands them to the reference through
//! `bkv_protocol::fixtures::opaque_draws`, runs a real client, node and state machine
//! against each other, checks the outcome each rule of the spec names (the backup key comes
//! back, a wrong code fails at L3, ...), and writes one side's view: the harness plays that
//! side and the vector gives the other side's messages.

use crate::fixed_rng::FixedRng;
use crate::format::{FileBuilder, map};
use bkv_protocol::Error;
use bkv_protocol::cbor;
use bkv_protocol::fixtures::opaque_draws;
use bkv_protocol::node_api::{CommitEvidence, VaultBegun, VaultStep};
use bkv_protocol::session::RequestId;
use bkv_protocol::state_machine::StateMachine;
use bkv_protocol::vault::{
    BackupKey, ClientAction, KsfParams, RecoveryClient, RegistrationClient, VaultContext, VaultResponse,
    VaultServer, VaultServerSetup, VaultStateMachine,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const FLEET: &str = "vectors.bkv.example/vault";
const T: u64 = 1_800_000_000;
const LIMIT: u32 = 10;
const RECORD: &[u8] = b"vector-record-0123456789abcdef";
const UNKNOWN_RECORD: &[u8] = b"vector-record-never-registered";
const CODE: &[u8] = b"482913";
const WRONG_CODE: &[u8] = b"482914";

fn seed(tag: u8) -> [u8; 32] {
    [tag; 32]
}

fn rid(n: u8) -> RequestId {
    [n; 16]
}

fn h(b: &[u8]) -> Value {
    json!(hex::encode(b))
}

fn ksf() -> Value {
    let k = KsfParams::TEST;
    json!({ "m_cost_kib": k.m_cost_kib, "t_cost": k.t_cost, "p_cost": k.p_cost })
}

/// Where the generator picks the named values of one side from (any choice would do: the
/// vector lists them).
fn source(tag: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(seed(tag))
}

fn bytes<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

/// A canonical, non-zero ristretto255 scalar (little-endian, below 2^252 < the group order).
fn scalar(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut b: [u8; 32] = bytes(rng);
    b[31] &= 0x0f;
    b[0] |= 1;
    b
}

/// A client's named inputs (spec/conformance.md §3.1): registration uses `blind` and
/// `envelope_nonce`, a login `blind`, `client_keyshare_seed` and `client_nonce`.
struct ClientDraws {
    blind: [u8; 32],
    envelope_nonce: [u8; 32],
    client_keyshare_seed: [u8; 32],
    client_nonce: [u8; 32],
}

impl ClientDraws {
    fn new(tag: u8) -> Self {
        let mut r = source(tag);
        Self {
            blind: scalar(&mut r),
            envelope_nonce: bytes(&mut r),
            client_keyshare_seed: bytes(&mut r),
            client_nonce: bytes(&mut r),
        }
    }

    fn registration(&self) -> FixedRng {
        opaque_draws::client_registration(&self.blind, &self.envelope_nonce)
    }

    fn login(&self) -> FixedRng {
        opaque_draws::client_login(&self.blind, &self.client_keyshare_seed, &self.client_nonce)
    }

    fn insert_registration(&self, input: &mut BTreeMap<String, Value>) {
        input.insert("blind".into(), h(&self.blind));
        input.insert("envelope_nonce".into(), h(&self.envelope_nonce));
    }

    fn insert_login(&self, input: &mut BTreeMap<String, Value>) {
        input.insert("blind".into(), h(&self.blind));
        input.insert("client_keyshare_seed".into(), h(&self.client_keyshare_seed));
        input.insert("client_nonce".into(), h(&self.client_nonce));
    }
}

/// A node's named inputs (spec/conformance.md §3.1): the `oprf_salt` of a `register_start`,
/// and for a KE2 the fake wrapped key and fake masking key (§5.3), the masking nonce, the
/// server key share seed and the server nonce.
struct NodeDraws {
    oprf_salt: [u8; 32],
    fake_wrapped_key: [u8; 48],
    fake_masking_key: [u8; 64],
    masking_nonce: [u8; 32],
    server_keyshare_seed: [u8; 32],
    server_nonce: [u8; 32],
}

impl NodeDraws {
    fn new(tag: u8) -> Self {
        let mut r = source(tag);
        Self {
            oprf_salt: bytes(&mut r),
            fake_wrapped_key: bytes(&mut r),
            fake_masking_key: bytes(&mut r),
            masking_nonce: bytes(&mut r),
            server_keyshare_seed: bytes(&mut r),
            server_nonce: bytes(&mut r),
        }
    }

    fn login(&self) -> FixedRng {
        opaque_draws::node_login(
            &self.fake_wrapped_key,
            &self.fake_masking_key,
            &self.masking_nonce,
            &self.server_keyshare_seed,
            &self.server_nonce,
        )
    }

    fn insert_login(&self, input: &mut BTreeMap<String, Value>) {
        input.insert("fake_wrapped_key".into(), h(&self.fake_wrapped_key));
        input.insert("fake_masking_key".into(), h(&self.fake_masking_key));
        input.insert("masking_nonce".into(), h(&self.masking_nonce));
        input.insert("server_keyshare_seed".into(), h(&self.server_keyshare_seed));
        input.insert("server_nonce".into(), h(&self.server_nonce));
    }
}

/// A step that draws nothing.
fn no_draws() -> FixedRng {
    FixedRng(Vec::new())
}

/// The fleet of the vectors: its ServerSetup, a node front end and the replicated state.
struct Fleet {
    setup: Vec<u8>,
    server: VaultStep,
    state: VaultStateMachine,
}

impl Fleet {
    fn new() -> Self {
        let setup = VaultServerSetup::generate(&mut ChaCha20Rng::from_seed(seed(0x51)));
        let bytes = setup.to_bytes().to_vec();
        Self {
            setup: bytes,
            server: VaultStep::new(VaultServer::new(setup, FLEET)),
            state: VaultStateMachine::new(LIMIT),
        }
    }

    fn context(&self) -> VaultContext {
        VaultContext {
            fleet_id: FLEET.into(),
            opaque_server_key: self.server.vault().public_key(),
            ksf: KsfParams::TEST,
        }
    }

    /// N1–N4 for one request body: (command committed, its output, the answer).
    fn serve(&mut self, rng: &mut FixedRng, request_id: RequestId, body: &[u8]) -> Served {
        match self.server.begin(rng, request_id, T, body, T).expect("the node accepts the request") {
            VaultBegun::Reply(answer) => Served { command: None, output: None, answer },
            VaultBegun::Commit(p) => {
                let command = p.command().to_vec();
                let output = self.state.apply(&command);
                let answer = p
                    .resume(&self.server, rng, CommitEvidence::host_reported(output.clone()), T)
                    .expect("the node answers");
                assert!(rng.0.is_empty(), "the node drew every value the vector names");
                Served { command: Some(command), output: Some(output), answer }
            }
        }
    }
}

struct Served {
    command: Option<Vec<u8>>,
    output: Option<Vec<u8>>,
    answer: Vec<u8>,
}

/// One recovery attempt run to its end: what each side sent and what the client got.
struct Recovery {
    client: ClientDraws,
    node: NodeDraws,
    login: RequestId,
    start: Vec<u8>,
    attempt: Served,
    remaining: u32,
    /// `None` when the client stopped at L3 or L4.
    finish: Option<(Vec<u8>, RequestId, Served)>,
    client_error: Option<Error>,
    /// The backup key, `export_key` and `session_key` of a finished recovery.
    recovered: Option<(BackupKey, Vec<u8>, Vec<u8>)>,
}

fn recover(fleet: &mut Fleet, tag: u8, record: &[u8], code: &[u8]) -> Recovery {
    let (client, node) = (ClientDraws::new(tag), NodeDraws::new(tag.wrapping_add(0x80)));
    let mut crng = client.login();
    let ctx = fleet.context();
    let (start, state) = RecoveryClient::start(&mut crng, record, code).expect("L1");
    let login = rid(tag);
    let attempt = fleet.serve(&mut node.login(), login, &start);
    let ke2 = state.receive(&attempt.answer).expect("L2");
    let remaining = ke2.remaining();
    let mut out = Recovery {
        client,
        node,
        login,
        start,
        attempt,
        remaining,
        finish: None,
        client_error: None,
        recovered: None,
    };
    match ke2.finish(&mut crng, &ctx, ClientAction::Recover) {
        Err(e) => out.client_error = Some(e),
        Ok((body, awaiting)) => {
            assert!(crng.0.is_empty(), "the client drew every value the vector names");
            let finish_id = rid(tag.wrapping_add(0x40));
            let served = fleet.serve(&mut no_draws(), finish_id, &body);
            let (export_key, session_key) = awaiting.opaque_keys();
            let (export_key, session_key) = (export_key.to_vec(), session_key.to_vec());
            let (backup_key, _) = awaiting.finish_recovered(&served.answer).expect("L6");
            out.recovered = Some((backup_key, export_key, session_key));
            out.finish = Some((body, finish_id, served));
        }
    }
    out
}

fn client_input(server_key: &[u8], record: &[u8], code: &[u8]) -> BTreeMap<String, Value> {
    map([
        ("fleet_id", json!(FLEET)),
        ("opaque_server_key", h(server_key)),
        ("ksf", ksf()),
        ("record", h(record)),
        ("code", h(code)),
    ])
}

fn recover_input(server_key: &[u8], r: &Recovery, code: &[u8]) -> BTreeMap<String, Value> {
    let mut input = client_input(server_key, &record_of(&r.start), code);
    r.client.insert_login(&mut input);
    input.insert("recover_start_response".into(), h(&r.attempt.answer));
    let finish_answer = r.finish.as_ref().map(|(_, _, s)| s.answer.clone());
    input.insert("recover_finish_response".into(), finish_answer.map(|a| h(&a)).unwrap_or(Value::Null));
    input
}

fn record_of(recover_start: &[u8]) -> Vec<u8> {
    match cbor::from_slice(recover_start).expect("a VaultRequest") {
        bkv_protocol::vault::VaultRequest::RecoverStart { record, .. } => record,
        other => panic!("not a recover_start: {other:?}"),
    }
}

/// Replace the `recovered` answer's wrapped key by `f(wrapped_key)`.
fn with_wrapped_key(answer: &[u8], f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    match cbor::from_slice(answer).expect("a VaultResponse") {
        VaultResponse::Recovered { mut wrapped_key, remaining } => {
            f(&mut wrapped_key);
            cbor::to_vec(&VaultResponse::Recovered { wrapped_key, remaining })
        }
        other => panic!("not a recovered answer: {other:?}"),
    }
}

/// Replace the `recover_start` answer's KE2 by `f(ke2)`.
fn with_ke2(answer: &[u8], f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    match cbor::from_slice(answer).expect("a VaultResponse") {
        VaultResponse::RecoverStart { login, mut ke2, remaining } => {
            f(&mut ke2);
            cbor::to_vec(&VaultResponse::RecoverStart { login, ke2, remaining })
        }
        other => panic!("not a recover_start answer: {other:?}"),
    }
}

/// Replace a `recover_finish` request's login handle or KE3.
fn with_finish(body: &[u8], f: impl Fn(&mut Vec<u8>, &mut Vec<u8>)) -> Vec<u8> {
    match cbor::from_slice(body).expect("a VaultRequest") {
        bkv_protocol::vault::VaultRequest::RecoverFinish { mut login, mut ke3, action } => {
            f(&mut login, &mut ke3);
            cbor::to_vec(&bkv_protocol::vault::VaultRequest::RecoverFinish { login, ke3, action })
        }
        other => panic!("not a recover_finish: {other:?}"),
    }
}

/// Add the exchange groups to the vault file.
pub(crate) fn add(f: &mut FileBuilder) {
    let mut fleet = Fleet::new();
    let fleet_key = fleet.server.vault().public_key();
    // Another fleet's OPAQUE key: what a client expects if the answers come from a fleet
    // other than the one its bundle names.
    let other_key = VaultServerSetup::generate(&mut ChaCha20Rng::from_seed(seed(0x52))).public_key();
    let backup_key = BackupKey::from_bytes([0x4b; 32]);

    // Registration (§6.3): the client's view.
    let (client_draws, node_draws) = (ClientDraws::new(0x01), NodeDraws::new(0x81));
    let mut crng = client_draws.registration();
    let (register_start, client) = RegistrationClient::start(&mut crng, RECORD, CODE).expect("R1");
    let start_answer = fleet.serve(&mut FixedRng(node_draws.oprf_salt.to_vec()), rid(0x01), &register_start);
    let new = client.finish(&mut crng, &fleet.context(), &backup_key, &start_answer.answer).expect("R2–R4");
    assert!(crng.0.is_empty(), "the client drew every value the vector names");
    let export_key = new.export_key().to_vec();
    let (register_finish, awaiting) = new.into_request();
    let registered = fleet.serve(&mut no_draws(), rid(0x02), &register_finish);
    assert_eq!(awaiting.finish(&registered.answer).expect("registered"), LIMIT);

    let register_input = |server_key: &[u8]| {
        let mut input = client_input(server_key, RECORD, CODE);
        input.insert("backup_key".into(), h(backup_key.as_bytes()));
        client_draws.insert_registration(&mut input);
        input.insert("register_start_response".into(), h(&start_answer.answer));
        input
    };
    f.group("vault_client_register", "§6.3");
    f.case(
        "registration: R1 blinds the code, R2 finishes OPAQUE, R4 wraps the backup key",
        &["Exchange"],
        register_input(&fleet_key),
        None,
        Some(map([
            ("register_start", h(&register_start)),
            ("register_finish", h(&register_finish)),
            ("export_key", h(&export_key)),
        ])),
    );
    // The check must fail on exactly this input: the same answer succeeds with the right key.
    f.case(
        "R3: the fleet's OPAQUE key is not the one of the verified FleetKeySet",
        &["Exchange", "ServerKey"],
        register_input(&other_key),
        Some(Error::VaultServerKeyMismatch),
        None,
    );

    // Recovery (§6.4): the client's view. Each attempt is counted by the state machine.
    let wrong = recover(&mut fleet, 0x10, RECORD, WRONG_CODE);
    assert_eq!((wrong.remaining, wrong.client_error), (LIMIT - 1, Some(Error::VaultCodeInvalid)));
    let unknown = recover(&mut fleet, 0x11, UNKNOWN_RECORD, CODE);
    assert_eq!(unknown.client_error, Some(Error::VaultCodeInvalid), "§5.3: unknown looks like wrong");
    let good = recover(&mut fleet, 0x12, RECORD, CODE);
    assert_eq!(good.remaining, LIMIT - 2, "the wrong guess is still counted");
    let (good_key, good_export_key, good_session_key) = good.recovered.as_ref().expect("recovered");
    assert_eq!(good_key.as_bytes(), backup_key.as_bytes());
    let (good_finish, good_finish_id, good_finished) = good.finish.as_ref().expect("finished");
    let recovered_remaining = match cbor::from_slice(&good_finished.answer).expect("a VaultResponse") {
        VaultResponse::Recovered { remaining, .. } => remaining,
        other => panic!("not recovered: {other:?}"),
    };
    assert_eq!(recovered_remaining, LIMIT, "§5.2: a success resets the counter");

    f.group("vault_client_recover", "§6.4");
    f.case(
        "recovery with the right code after one wrong guess: the key comes back, the counter is reset",
        &["Exchange"],
        recover_input(&fleet_key, &good, CODE),
        None,
        Some(map([
            ("recover_start", h(&good.start)),
            ("remaining", json!(good.remaining)),
            ("recover_finish", h(good_finish)),
            ("backup_key", h(backup_key.as_bytes())),
            ("remaining_after", json!(recovered_remaining)),
            ("export_key", h(good_export_key)),
            ("session_key", h(good_session_key)),
        ])),
    );
    f.case(
        "L3: a wrong code; the guess was counted at L2 and nothing more is sent",
        &["Exchange"],
        recover_input(&fleet_key, &wrong, WRONG_CODE),
        Some(Error::VaultCodeInvalid),
        None,
    );
    f.case(
        "L3: an id that was never registered answers like a wrong code (§5.3)",
        &["Exchange"],
        recover_input(&fleet_key, &unknown, CODE),
        Some(Error::VaultCodeInvalid),
        None,
    );
    let mut forged = recover_input(&fleet_key, &good, CODE);
    let last = |b: &mut Vec<u8>| *b.last_mut().expect("non-empty") ^= 0x01;
    forged.insert("recover_start_response".into(), h(&with_ke2(&good.attempt.answer, last)));
    f.case(
        "L3: the KE2 server MAC has a flipped bit; indistinguishable from a wrong code",
        &["Exchange"],
        forged,
        Some(Error::VaultCodeInvalid),
        None,
    );
    f.case(
        "L4: the right code, but the fleet's OPAQUE key is not the bundle's",
        &["Exchange", "ServerKey"],
        recover_input(&other_key, &good, CODE),
        Some(Error::VaultServerKeyMismatch),
        None,
    );
    let mut tampered = recover_input(&fleet_key, &good, CODE);
    let first = |b: &mut Vec<u8>| b[20] ^= 0x01;
    tampered.insert("recover_finish_response".into(), h(&with_wrapped_key(&good_finished.answer, first)));
    f.case(
        "L6: the wrapped key in the recovered answer has a flipped bit",
        &["Exchange"],
        tampered,
        Some(Error::VaultWrappedKeyInvalid),
        None,
    );

    // The node's view (§7.1, §7.3), with the node's named values.
    let node_input = |r: &Recovery, finish: Option<(&[u8], &RequestId, &Served)>| {
        let mut input = map([
            ("fleet_id", json!(FLEET)),
            ("server_setup", h(&fleet.setup)),
            ("time", json!(T)),
            ("login", h(&r.login)),
            ("recover_start", h(&r.start)),
            ("attempt_output", h(r.attempt.output.as_deref().expect("attempt_start committed"))),
            ("finish_request_id", finish.map_or(Value::Null, |(_, id, _)| h(id))),
            ("recover_finish", finish.map_or(Value::Null, |(body, _, _)| h(body))),
            (
                "finish_output",
                finish.map_or(Value::Null, |(_, _, s)| h(s.output.as_deref().expect("a command committed"))),
            ),
        ]);
        r.node.insert_login(&mut input);
        input
    };
    let good_node = |finish: &[u8]| node_input(&good, Some((finish, good_finish_id, good_finished)));
    f.group("vault_node_login", "§7.1");
    f.case(
        "a login: attempt_start is committed before KE2, KE3 verifies, attempt_success",
        &["Exchange"],
        good_node(good_finish),
        None,
        Some(map([
            ("attempt_command", h(good.attempt.command.as_deref().expect("a command"))),
            ("recover_start_response", h(&good.attempt.answer)),
            ("finish_command", h(good_finished.command.as_deref().expect("a command"))),
            ("recover_finish_response", h(&good_finished.answer)),
        ])),
    );
    let other_login = |l: &mut Vec<u8>, _: &mut Vec<u8>| l[0] ^= 0x01;
    f.case(
        "N2: the recover_finish names a login this node does not hold (§7.3)",
        &["Exchange"],
        good_node(&with_finish(good_finish, other_login)),
        Some(Error::VaultLoginUnknown),
        None,
    );
    let bad_mac = |_: &mut Vec<u8>, k: &mut Vec<u8>| *k.last_mut().expect("non-empty") ^= 0x01;
    f.case(
        "N2: KE3's client MAC has a flipped bit",
        &["Exchange"],
        good_node(&with_finish(good_finish, bad_mac)),
        Some(Error::VaultLoginFailed),
        None,
    );
    f.case(
        "§5.3: KE2 for an id that was never registered, from the fake record (no recover_finish follows)",
        &["Exchange"],
        node_input(&unknown, None),
        None,
        Some(map([
            ("attempt_command", h(unknown.attempt.command.as_deref().expect("a command"))),
            ("recover_start_response", h(&unknown.attempt.answer)),
        ])),
    );
}

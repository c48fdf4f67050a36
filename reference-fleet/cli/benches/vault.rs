//! Registrations and recoveries per second against a single fleet node over HTTP, and
//! through the bkv vault in process (sessions + vault server + state machine), each
//! against the bare opaque-ke + HPKE work of the same flows measured in the same run
//! (spec/vault.md, spec/session.md).
//!
//! `cargo bench -p bkv-fleet --bench vault`. Every side uses the TEST Argon2id profile
//! (spec/vault.md §2.1) so the KSF does not hide the protocol's own cost. The single node
//! is a one-node fleet of `bkv fleet up` on loopback: HTTP, the session, the vault, and a
//! Raft log on redb that fsyncs every command before the answer.

use bkv_client::{FleetClient, Persisted, Recovery};
use bkv_fleet::fleet::{FleetConfig, LocalFleet};
use bkv_protocol::node_api::{Begun, CommitEvidence, NodeStep};
use bkv_protocol::session::{self, SessionSecretKey, SessionServer, SessionTarget};
use bkv_protocol::state_machine::StateMachine;
use bkv_protocol::vault::{
    BackupKey, ClientAction, KsfParams, OpaqueSuite, Outcome, RecoveryClient, RegistrationClient,
    VaultContext, VaultServer, VaultServerSetup, VaultStateMachine, opaque_context,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration, ClientRegistrationFinishParameters,
    Identifiers, ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::hint::black_box;

const FLEET: &str = "bench-fleet";
const NOW: u64 = 1_800_000_000;

/// The node step of spec/node-api.md §5 with the state machine standing in for the log.
struct Node {
    step: NodeStep,
    state: VaultStateMachine,
    rng: ChaCha20Rng,
}

impl Node {
    fn serve(&mut self, request: &[u8]) -> Vec<u8> {
        match self.step.begin(&mut self.rng, request, NOW) {
            Begun::Reply(sealed) => sealed,
            Begun::Commit(pending) => {
                let output = self.state.apply(pending.command());
                pending.resume(&self.step, &mut self.rng, CommitEvidence::host_reported(output), NOW)
            }
        }
    }
}

struct Fixture {
    node: Node,
    target: SessionTarget,
    ctx: VaultContext,
    rng: ChaCha20Rng,
    key: BackupKey,
}

impl Fixture {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let session_key = SessionSecretKey::generate(&mut rng);
        let setup = VaultServerSetup::generate(&mut rng);
        let target = SessionTarget {
            fleet_id: FLEET.into(),
            epoch: 1,
            node_id: "n1".into(),
            session_key: session_key.public_key(),
        };
        let ctx = VaultContext {
            fleet_id: FLEET.into(),
            opaque_server_key: setup.public_key(),
            ksf: KsfParams::TEST,
        };
        let node = Node {
            step: NodeStep::new(
                SessionServer::new(FLEET, 1, "n1", session_key),
                VaultServer::new(setup, FLEET),
            ),
            state: VaultStateMachine::new(10),
            rng: ChaCha20Rng::seed_from_u64(2),
        };
        let key = BackupKey::generate(&mut rng);
        Self { node, target, ctx, rng, key }
    }

    fn call(&mut self, body: &[u8]) -> Vec<u8> {
        let (req, wait) = session::seal_request(&mut self.rng, &self.target, NOW, body).unwrap();
        let resp = self.node.serve(&req);
        wait.open(&resp).unwrap()
    }

    fn register(&mut self, record: &[u8]) {
        let (body, reg) = RegistrationClient::start(&mut self.rng, record, b"123456").unwrap();
        let resp = self.call(&body);
        let ctx = self.ctx.clone();
        let key = self.key.clone();
        let (body, wait) = reg.finish(&mut self.rng, &ctx, &key, &resp).unwrap().into_request();
        let resp = self.call(&body);
        black_box(wait.finish(&resp).unwrap());
    }

    fn recover(&mut self, record: &[u8]) {
        let (body, rc) = RecoveryClient::start(&mut self.rng, record, b"123456").unwrap();
        let resp = self.call(&body);
        let ctx = self.ctx.clone();
        let (body, wait) =
            rc.receive(&resp).unwrap().finish(&mut self.rng, &ctx, ClientAction::Recover).unwrap();
        let resp = self.call(&body);
        let Outcome::Recovered { backup_key, .. } = wait.finish(&resp).unwrap() else {
            panic!("not recovered")
        };
        assert_eq!(backup_key.as_bytes(), self.key.as_bytes());
    }
}

// ---- baseline: the same cryptography without bkv ------------------------------------

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

struct Bare {
    setup: ServerSetup<OpaqueSuite>,
    sk: <Kem as hpke::kem::Kem>::PrivateKey,
    pk: <Kem as hpke::kem::Kem>::PublicKey,
    rng: ChaCha20Rng,
    ksf: argon2::Argon2<'static>,
    record: Option<ServerRegistration<OpaqueSuite>>,
}

impl Bare {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (sk, pk) = <Kem as hpke::kem::Kem>::gen_keypair(&mut rng);
        let params = argon2::Params::new(64, 1, 1, None).unwrap();
        Self {
            setup: ServerSetup::new(&mut rng),
            sk,
            pk,
            rng,
            ksf: argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
            record: None,
        }
    }

    /// One HPKE request (seal + open) and one exported-key response, like a bkv round trip.
    fn hpke_round_trip(&mut self, msg: &[u8]) -> Vec<u8> {
        let (enc, mut cs) =
            hpke::setup_sender::<Aead, Kdf, Kem, _>(&OpModeS::Base, &self.pk, b"info", &mut self.rng)
                .unwrap();
        let ct = cs.seal(msg, b"").unwrap();
        let enc = <Kem as hpke::kem::Kem>::EncappedKey::from_bytes(&enc.to_bytes()).unwrap();
        let mut cr = hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &self.sk, &enc, b"info").unwrap();
        let pt = cr.open(&ct, b"").unwrap();
        let mut k = [0u8; 32];
        cr.export(b"response", &mut k).unwrap();
        cs.export(b"response", &mut k).unwrap();
        pt
    }

    fn register(&mut self, record: &[u8]) {
        let start = ClientRegistration::<OpaqueSuite>::start(&mut self.rng, b"123456").unwrap();
        self.hpke_round_trip(&start.message.serialize());
        let resp = ServerRegistration::<OpaqueSuite>::start(&self.setup, start.message, record).unwrap();
        let fin = start
            .state
            .finish(
                &mut self.rng,
                b"123456",
                resp.message,
                ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&self.ksf)),
            )
            .unwrap();
        self.hpke_round_trip(&fin.message.serialize());
        self.record = Some(ServerRegistration::finish(fin.message));
    }

    fn recover(&mut self, record: &[u8]) {
        let context = opaque_context(FLEET);
        let start = ClientLogin::<OpaqueSuite>::start(&mut self.rng, b"123456").unwrap();
        self.hpke_round_trip(&start.message.serialize());
        let params = ServerLoginParameters { context: Some(&context), identifiers: Identifiers::default() };
        let s = ServerLogin::start(
            &mut self.rng,
            &self.setup,
            self.record.clone(),
            start.message,
            record,
            params.clone(),
        )
        .unwrap();
        let fin = start
            .state
            .finish(
                &mut self.rng,
                b"123456",
                s.message,
                ClientLoginFinishParameters::new(Some(&context), Identifiers::default(), Some(&self.ksf)),
            )
            .unwrap();
        self.hpke_round_trip(&fin.message.serialize());
        black_box(s.state.finish(fin.message, params).unwrap());
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("vault");
    g.throughput(Throughput::Elements(1));

    let mut bare = Bare::new();
    let mut counter = 0u64;
    g.bench_function("register/bare_opaque_hpke", |b| {
        b.iter(|| {
            counter += 1;
            bare.register(&record_id(counter))
        })
    });
    let mut fx = Fixture::new();
    g.bench_function("register/bkv", |b| {
        b.iter(|| {
            counter += 1;
            fx.register(&record_id(counter))
        })
    });

    let rec = record_id(0);
    bare.register(&rec);
    g.bench_function("recover/bare_opaque_hpke", |b| b.iter(|| bare.recover(&rec)));
    fx.register(&rec);
    g.bench_function("recover/bkv", |b| b.iter(|| fx.recover(&rec)));

    // One node over HTTP.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("bkv-bench-vault-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (fleet, client) = rt.block_on(async {
        let config = FleetConfig::new(FLEET, 1);
        let fleet = LocalFleet::create(&dir, &config, |_| {}).await.unwrap();
        let now = bkv_client::clock::system_now();
        let client = FleetClient::connect(
            &fleet.nodes[0].url,
            &fleet.trust,
            &Persisted::default(),
            KsfParams::TEST,
            now,
        )
        .await
        .unwrap()
        .0;
        (fleet, client)
    });
    let key = BackupKey::generate(&mut ChaCha20Rng::seed_from_u64(9));
    g.bench_function("register/single_node_http", |b| {
        b.iter(|| {
            counter += 1;
            rt.block_on(client.register(&record_id(counter), b"123456", &key)).unwrap()
        })
    });
    rt.block_on(client.register(&rec, b"123456", &key)).unwrap();
    g.bench_function("recover/single_node_http", |b| {
        b.iter(|| match rt.block_on(client.recover(&rec, b"123456")).unwrap() {
            Recovery::Recovered { .. } => {}
            Recovery::WrongCode { .. } => panic!("not recovered"),
        })
    });
    rt.block_on(fleet.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    g.finish();
}

fn record_id(n: u64) -> Vec<u8> {
    let mut id = vec![0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    let mut r = ChaCha20Rng::seed_from_u64(n);
    r.fill_bytes(&mut id[8..]);
    id
}

criterion_group!(benches, bench);
criterion_main!(benches);

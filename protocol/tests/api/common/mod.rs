//! An in-process fleet node for the vault tests: the node step of spec/node-api.md §5, with
//! the state machine's apply standing in for `CommandLog::propose`.
#![allow(dead_code, unreachable_pub)]

use bkv_protocol::node_api::{Begun, CommitEvidence, NodeStep};
use bkv_protocol::session::{self, SessionSecretKey, SessionServer, SessionTarget};
use bkv_protocol::state_machine::StateMachine;
use bkv_protocol::vault::{
    BackupKey, ClientAction, KsfParams, Outcome, RecoveryClient, RegistrationClient, VaultContext,
    VaultServer, VaultServerSetup, VaultStateMachine,
};
use bkv_protocol::{Error, Result};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub const FLEET: &str = "example-fleet";
pub const EPOCH: u64 = 1;
pub const NODE: &str = "node-1";
pub const NOW: u64 = 1_800_000_000;

pub struct Node {
    pub step: NodeStep,
    pub state: VaultStateMachine,
    pub rng: ChaCha20Rng,
    pub now: u64,
    /// Every command committed, in order.
    pub log: Vec<Vec<u8>>,
    setup_bytes: Vec<u8>,
}

impl Node {
    pub fn new(seed: u64, guess_limit: u32) -> Self {
        let setup = VaultServerSetup::generate(&mut ChaCha20Rng::seed_from_u64(seed ^ 0x5e7));
        Self::with_setup(seed, guess_limit, setup)
    }

    pub fn with_setup(seed: u64, guess_limit: u32, setup: VaultServerSetup) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = SessionSecretKey::generate(&mut rng);
        Self {
            setup_bytes: setup.to_bytes().to_vec(),
            step: NodeStep::new(SessionServer::new(FLEET, EPOCH, NODE, key), VaultServer::new(setup, FLEET)),
            state: VaultStateMachine::new(guess_limit),
            rng,
            now: NOW,
            log: Vec::new(),
        }
    }

    pub fn vault_setup_bytes(&self) -> Vec<u8> {
        self.setup_bytes.clone()
    }

    pub fn target(&self) -> SessionTarget {
        SessionTarget {
            fleet_id: FLEET.into(),
            epoch: EPOCH,
            node_id: NODE.into(),
            session_key: self.step.session().public_key(),
        }
    }

    pub fn context(&self) -> VaultContext {
        VaultContext {
            fleet_id: FLEET.into(),
            opaque_server_key: self.step.vault().public_key(),
            ksf: KsfParams::TEST,
        }
    }

    /// spec/vault.md §7.1: the node's request path.
    pub fn serve(&mut self, request: &[u8]) -> Vec<u8> {
        match self.step.begin(&mut self.rng, request, self.now) {
            Begun::Reply(sealed) => sealed,
            Begun::Commit(pending) => {
                let output = self.state.apply(pending.command());
                self.log.push(pending.command().to_vec());
                pending.resume(&self.step, &mut self.rng, CommitEvidence::host_reported(output), self.now)
            }
        }
    }
}

pub struct Client {
    pub rng: ChaCha20Rng,
    pub target: SessionTarget,
    pub ctx: VaultContext,
    pub now: u64,
}

impl Client {
    pub fn new(seed: u64, node: &Node) -> Self {
        Self { rng: ChaCha20Rng::seed_from_u64(seed), target: node.target(), ctx: node.context(), now: NOW }
    }

    /// A sealed `recover_start` (KE1) for `record` with `code`, ready for `Node::serve`.
    pub fn sealed_guess(&mut self, record: &[u8], code: &[u8]) -> Vec<u8> {
        let (body, _) = RecoveryClient::start(&mut self.rng, record, code).unwrap();
        session::seal_request(&mut self.rng, &self.target, self.now, &body).unwrap().0
    }

    /// Seal `body`, let `node` serve it, open the answer.
    pub fn call(&mut self, node: &mut Node, body: &[u8]) -> Result<Vec<u8>> {
        let (req, wait) = session::seal_request(&mut self.rng, &self.target, self.now, body)?;
        let resp = node.serve(&req);
        wait.open(&resp)
    }

    pub fn register(&mut self, node: &mut Node, record: &[u8], code: &[u8], key: &BackupKey) -> Result<u32> {
        let (body, reg) = RegistrationClient::start(&mut self.rng, record, code)?;
        let resp = self.call(node, &body)?;
        let new = reg.finish(&mut self.rng, &self.ctx.clone(), key, &resp)?;
        let (body, wait) = new.into_request();
        let resp = self.call(node, &body)?;
        wait.finish(&resp)
    }

    /// One recovery attempt. Returns the remaining count reported with KE2 and the result.
    pub fn recover_with(
        &mut self,
        node: &mut Node,
        record: &[u8],
        code: &[u8],
        action: ClientAction,
    ) -> (Option<u32>, Result<Outcome>) {
        let (body, rc) = match RecoveryClient::start(&mut self.rng, record, code) {
            Ok(x) => x,
            Err(e) => return (None, Err(e)),
        };
        let resp = match self.call(node, &body) {
            Ok(r) => r,
            Err(e) => return (None, Err(e)),
        };
        let ke2 = match rc.receive(&resp) {
            Ok(k) => k,
            Err(e) => return (None, Err(e)),
        };
        let remaining = ke2.remaining();
        let ctx = self.ctx.clone();
        let (body, wait) = match ke2.finish(&mut self.rng, &ctx, action) {
            Ok(x) => x,
            Err(e) => return (Some(remaining), Err(e)),
        };
        let res = self.call(node, &body).and_then(|resp| wait.finish(&resp));
        (Some(remaining), res)
    }

    pub fn recover(&mut self, node: &mut Node, record: &[u8], code: &[u8]) -> (Option<u32>, Result<Outcome>) {
        self.recover_with(node, record, code, ClientAction::Recover)
    }
}

pub fn expect_key(outcome: Result<Outcome>) -> (BackupKey, u32) {
    match outcome {
        Ok(Outcome::Recovered { backup_key, remaining }) => (backup_key, remaining),
        other => panic!("expected a recovered key, got {other:?}"),
    }
}

pub fn expect_err(outcome: Result<Outcome>) -> Error {
    match outcome {
        Err(e) => e,
        Ok(o) => panic!("expected an error, got {o:?}"),
    }
}

//! The HSM boundary: the only code that spends a guess (spec/hsm.md).
//!
//! A node's host moves bytes; its HSM decides. [`Boundary`] is what a real HSM's firmware
//! runs: it holds the node's session engine, the fleet's OPAQUE setup, the node signing
//! key and the vault state machine; it applies committed [`LogEntry`]s itself, keeps its
//! chain of applied entries (§3), signs acknowledgements only after its monotonic HSM state
//! ([`HsmState`]) covers them (§4), and answers a client only against a quorum of
//! acknowledgements it verifies itself (§5). The host's storage, software and network are
//! adversarial; the HSM state is written through [`HsmStateStore`], which stands for NVRAM.

mod boundary;
mod chain;

#[cfg(test)]
mod tests;

pub use boundary::{Boundary, BoundaryConfig, HsmMachine, HsmStatus, RECENT, Resumed, RpcSigner, Status};
pub use chain::{
    ACK_PURPOSE, Ack, AppliedOutput, HsmSnapshot, HsmState, LogEntry, Mark, SNAPSHOT_PURPOSE, Signed,
    SignedAck, SignedSnapshot, chain_next, genesis,
};

/// spec/hsm.md §1.3: where the HSM keeps its state across restarts (NVRAM). Writes MUST be
/// durable when `write` returns `Ok`.
pub trait HsmStateStore: Send + Sync {
    /// Durably replace the HSM state.
    fn write(&self, state: &HsmState) -> Result<(), String>;
}

/// A store that keeps the state in memory (tests and the in-memory model).
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    state: std::sync::Mutex<Option<HsmState>>,
    writes: std::sync::atomic::AtomicU64,
}

impl MemoryStateStore {
    /// The last state written.
    pub fn state(&self) -> Option<HsmState> {
        self.state.lock().expect("state lock").clone()
    }

    /// How many writes there were.
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl HsmStateStore for MemoryStateStore {
    fn write(&self, state: &HsmState) -> Result<(), String> {
        *self.state.lock().expect("state lock") = Some(state.clone());
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl<T: HsmStateStore + ?Sized> HsmStateStore for std::sync::Arc<T> {
    fn write(&self, state: &HsmState) -> Result<(), String> {
        (**self).write(state)
    }
}

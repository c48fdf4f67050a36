//! The replicated-state-machine boundary between the vault and the fleet.
//!
//! spec/fleet-replication.md (part 4) and spec/vault.md: every vault request that changes
//! state becomes a command (deterministic CBOR bytes) in a replicated log. Applying the
//! same commands in the same order gives the same state and the same outputs on every
//! node, so the vault logic is written once here and replicated by the fleet without
//! being touched. Implementations MUST be deterministic: no RNG, no clock, no I/O.

/// A deterministic state machine driven by committed commands.
pub trait StateMachine: Send + 'static {
    /// Apply one committed command and return its output. Malformed commands MUST
    /// produce an error output and leave the state unchanged, never panic.
    fn apply(&mut self, command: &[u8]) -> Vec<u8>;
    /// Answer a read-only query against the current state.
    fn query(&self, query: &[u8]) -> Vec<u8>;
    /// Serialize the whole state (deterministic CBOR) for snapshots and catch-up.
    fn snapshot(&self) -> Vec<u8>;
    /// Rebuild a state from [`StateMachine::snapshot`] bytes.
    fn restore(snapshot: &[u8]) -> crate::Result<Self>
    where
        Self: Sized;
    /// Replace this state by a snapshot's (catch-up and start-up). Nothing changes on error.
    fn install(&mut self, snapshot: &[u8]) -> crate::Result<()>
    where
        Self: Sized,
    {
        *self = Self::restore(snapshot)?;
        Ok(())
    }
    /// Bytes equal on two nodes exactly when their states are equal (convergence checks):
    /// the snapshot unless a state signs its snapshots (spec/hsm.md §6).
    fn digest(&self) -> Vec<u8> {
        self.snapshot()
    }
}

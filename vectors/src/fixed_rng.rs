//! The randomness a vector fixes: spec/conformance.md §3 (`ikm_e`, response nonces).

use rand_core::{CryptoRng, RngCore};

/// An RNG that hands out the given bytes once and refuses more: proves the protocol drew
/// exactly the randomness the vector names (the sender's ephemeral input `ikm_e`, RFC 9180
/// `DeriveKeyPair(ikm_e)`, or a response nonce). Never for anything but vectors.
pub struct FixedRng(pub Vec<u8>);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("only fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("only fill_bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(dest.len() <= self.0.len(), "the protocol asked for more randomness than the vector gives");
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FixedRng {}

//! Fixtures for vectors and tests (spec/conformance.md §3): randomness a vector fixes.
//!
//! Nothing here is for production: [`FixedRng`] hands out exactly the bytes it was given,
//! so a test or a vector proves the protocol drew exactly the randomness it names. The one
//! copy, used by the vector generator, the reference harness, the protocol's tests and the
//! fuzz properties.

use rand_core::{CryptoRng, RngCore};

/// An RNG that hands out the given bytes once and refuses more: proves the protocol drew
/// exactly the randomness the vector names (the sender's ephemeral input `ikm_e`, RFC 9180
/// `DeriveKeyPair(ikm_e)`, or a response nonce). Never for anything but vectors and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The RNG is deterministic by construction; it is a `CryptoRng` only so the protocol's
/// functions accept it in vectors and tests.
impl CryptoRng for FixedRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "more randomness")]
    fn hands_out_its_bytes_once() {
        let mut rng = FixedRng(vec![1, 2, 3]);
        let mut two = [0u8; 2];
        rng.fill_bytes(&mut two);
        assert_eq!(two, [1, 2]);
        rng.fill_bytes(&mut two);
    }
}

//! The randomness a vector fixes: spec/conformance.md §3 (`ikm_e`, response nonces). The
//! one [`FixedRng`] lives in `bkv_protocol::fixtures`.

pub use bkv_protocol::fixtures::FixedRng;

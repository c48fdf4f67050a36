//! spec/session.md §5: a node opening arbitrary bytes as a SealedRequest never panics.
#![no_main]

use bkv_protocol::session::{SessionSecretKey, SessionServer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let node = SessionServer::new("fuzz.example/vault", 1, "node-1", SessionSecretKey::derive(b"fuzz"));
    let _ = node.open(data, 1_800_000_000);
});

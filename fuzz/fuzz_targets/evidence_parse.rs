//! spec/evidence.md §1 and spec/rotation.md §4: the signed-object parser and the export
//! opener never panic on arbitrary bytes.
#![no_main]

use bkv_protocol::evidence::{CT_EVIDENCE, Evidence, Sign1};
use bkv_protocol::rotation::{Importer, open_export};
use bkv_protocol::session::SessionSecretKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Sign1::parse(data, CT_EVIDENCE) {
        let _ = s.decode::<Evidence>();
    }
    let me = Importer { fleet_id: "f", epoch: 2, node_id: "n", bundle_digest: [0; 32], guess_limit: 10 };
    let _ = open_export(data, &SessionSecretKey::derive(b"fuzz"), &me);
});

//! spec/backup-envelope.md §5: reading arbitrary bytes as a backup file never panics, and
//! memory stays bounded by one chunk whatever lengths the input claims.
#![no_main]

use bkv_protocol::backup_envelope::open;
use bkv_protocol::vault::BackupKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = open(&BackupKey::from_bytes([7; 32]), None, data, &mut out, |_| {});
});

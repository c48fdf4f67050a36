//! spec/vault.md §8: applying arbitrary command sequences never panics, a failed command
//! changes nothing, and the state always survives a snapshot round trip.
#![no_main]

use bkv_protocol::state_machine::StateMachine;
use bkv_protocol::vault::{VaultOutput, VaultStateMachine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|commands: Vec<Vec<u8>>| {
    let mut sm = VaultStateMachine::new(3);
    for c in commands.iter().take(16) {
        let before = sm.snapshot();
        let out = sm.apply(c);
        if VaultOutput::decode(&out).is_err() {
            assert_eq!(sm.snapshot(), before, "a failed command changed the state");
        }
        let snap = sm.snapshot();
        assert_eq!(VaultStateMachine::restore(&snap).expect("own snapshot restores").snapshot(), snap);
    }
});

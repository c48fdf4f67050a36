//! Vectors for spec/vault.md §8 (the vault state machine) and §2.3 (the ServerSetup
//! encoding), plus the phases of spec/rotation.md §3–§6. Operation `vault_apply`: a fresh
//! state machine applies the `setup` commands (each succeeds), then `command`, whose
//! output is the case's result. Each expected result follows from the rule of §8.2 named
//! in the comment.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::cbor;
use bkv_protocol::rotation::{ExportedRecord, ExportedState};
use bkv_protocol::vault::STORED_REGISTRATION_LEN;
use bkv_protocol::vault::{VaultCommand, VaultOutput, VaultServerSetup, WRAPPED_KEY_LEN};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOTES: &[(&str, &str)] = &[
    ("Counter", "the guess counter: decrement, reset, lockout"),
    ("Record", "record ids and record state"),
    ("Replay", "request ids and times (spec/session.md §6)"),
    ("Shape", "lengths and encodings of command fields"),
    ("Rotation", "phases of spec/rotation.md"),
    ("Setup", "the ServerSetup encoding"),
    (
        "Exchange",
        "one OPAQUE exchange with explicit inputs (spec/conformance.md §3.1): the harness plays one side",
    ),
    ("ServerKey", "the fleet's OPAQUE key is not the one of the verified FleetKeySet"),
    ("Code", "a typed recovery code and its normal form (spec/vault.md §2.4)"),
];

const T: u64 = 1_800_000_000;
const LIMIT: u32 = 3;

fn id(n: u8) -> Vec<u8> {
    vec![n; 16]
}

fn rec(n: u8) -> Vec<u8> {
    vec![n; 32]
}

fn register(rid: u8, record: u8) -> VaultCommand {
    VaultCommand::Register {
        request_id: id(rid),
        time: T,
        record: rec(record),
        registration: vec![record; STORED_REGISTRATION_LEN],
        wrapped_key: vec![record; WRAPPED_KEY_LEN],
    }
}

fn attempt(rid: u8, record: u8) -> VaultCommand {
    VaultCommand::AttemptStart { request_id: id(rid), time: T, record: rec(record) }
}

fn success(rid: u8, record: u8, generation: u64) -> VaultCommand {
    VaultCommand::AttemptSuccess { request_id: id(rid), time: T, record: rec(record), generation }
}

fn hexes(cs: &[VaultCommand]) -> Value {
    json!(cs.iter().map(|c| hex::encode(cbor::to_vec(c))).collect::<Vec<_>>())
}

fn input(awaiting_import: bool, setup: &[VaultCommand], command: &[u8]) -> BTreeMap<String, Value> {
    map([
        ("guess_limit", json!(LIMIT)),
        ("awaiting_import", json!(awaiting_import)),
        ("setup", hexes(setup)),
        ("command", json!(hex::encode(command))),
    ])
}

fn ok(out: VaultOutput) -> Option<BTreeMap<String, Value>> {
    Some(map([("output", json!(hex::encode(cbor::to_vec(&out))))]))
}

fn enc(c: &VaultCommand) -> Vec<u8> {
    cbor::to_vec(c)
}

/// A `vault_apply` case whose command gives `out`.
fn applies(flags: &'static [&'static str], input: BTreeMap<String, Value>, out: VaultOutput) -> Case {
    Case::valid(flags, input, ok(out))
}

/// The attempt output of record 1 as registered by [`register`], with `remaining` left.
fn attempt_of_record_1(remaining: u32) -> VaultOutput {
    VaultOutput::Attempt {
        registration: Some(vec![1; STORED_REGISTRATION_LEN]),
        wrapped_key: Some(vec![1; WRAPPED_KEY_LEN]),
        remaining,
        generation: 1,
    }
}

/// Record 1 registered, then three attempts: the last guess destroyed it.
fn locked() -> [VaultCommand; 4] {
    [register(1, 1), attempt(2, 1), attempt(3, 1), attempt(4, 1)]
}

fn retire(rid: u8, s: u8) -> VaultCommand {
    VaultCommand::Retire { request_id: id(rid), time: T, successor: vec![s; 32] }
}

fn import(rid: u8, records: Vec<ExportedRecord>) -> VaultCommand {
    VaultCommand::Import { request_id: id(rid), time: T, from_epoch: 1, records }
}

/// What a fleet of the rotation cases exports: record 1 with one guess left, record 2 locked.
fn exported() -> Vec<ExportedRecord> {
    vec![
        ExportedRecord {
            id: rec(1),
            state: ExportedState::Registered,
            registration: Some(vec![1; STORED_REGISTRATION_LEN]),
            wrapped_key: Some(vec![1; WRAPPED_KEY_LEN]),
            remaining: 1,
        },
        ExportedRecord {
            id: rec(2),
            state: ExportedState::Locked,
            registration: None,
            wrapped_key: None,
            remaining: 0,
        },
    ]
}

/// The commands that leave [`exported`] in the state machine.
fn retired_setup() -> Vec<VaultCommand> {
    vec![
        register(1, 1),
        attempt(2, 1),
        attempt(3, 1),
        register(4, 2),
        attempt(5, 2),
        attempt(6, 2),
        attempt(7, 2),
    ]
}

/// [`retired_setup`], then the retirement for successor 7.
fn after_retirement() -> Vec<VaultCommand> {
    let mut after = retired_setup();
    after.push(retire(8, 7));
    after
}

/// The state machine's commands carry everything; the cases share nothing else.
struct Commands;

cases! { Commands, VAULT_APPLY;
    /// register a new id: full counter
    fn register_new(_w) {
        applies(&["Record"], input(false, &[], &enc(&register(1, 1))), VaultOutput::Registered { remaining: LIMIT })
    }
    /// first attempt: the counter goes down by one, the registration is handed to the node
    fn first_attempt(_w) {
        applies(&["Counter"], input(false, &[register(1, 1)], &enc(&attempt(2, 1))), attempt_of_record_1(LIMIT - 1))
    }
    /// attempt on an unknown id: counted like a registered one, nothing handed out
    fn attempt_on_unknown_id(_w) {
        let out = VaultOutput::Attempt { registration: None, wrapped_key: None, remaining: LIMIT - 1, generation: 0 };
        applies(&["Counter", "Record"], input(false, &[], &enc(&attempt(2, 9))), out)
    }
    /// a verified KE3 resets the counter to the limit
    fn success_resets(_w) {
        let setup = [register(1, 1), attempt(2, 1), attempt(3, 1)];
        applies(&["Counter"], input(false, &setup, &enc(&success(4, 1, 1))), VaultOutput::Released { remaining: LIMIT })
    }
    /// the success of an attempt whose record the last guess destroyed: remaining 0
    fn success_after_last_guess(_w) {
        applies(&["Counter"], input(false, &locked(), &enc(&success(5, 1, 1))), VaultOutput::Released { remaining: 0 })
    }
    /// an attempt after the limit-th
    fn attempt_after_limit(_w) {
        Case::invalid(&["Counter"], input(false, &locked(), &enc(&attempt(5, 1))), Error::VaultRecordLocked)
    }
    /// register over a locked id: a fresh record
    fn register_over_locked(_w) {
        applies(&["Record"], input(false, &locked(), &enc(&register(5, 1))), VaultOutput::Registered { remaining: LIMIT })
    }
    /// register over a registered id
    fn register_over_registered(_w) {
        Case::invalid(&["Record"], input(false, &[register(1, 1)], &enc(&register(2, 1))), Error::VaultRecordExists)
    }
    /// rekey for a generation the record no longer has
    fn rekey_stale_generation(_w) {
        let rekey = VaultCommand::Rekey {
            request_id: id(3),
            time: T,
            record: rec(1),
            generation: 0,
            registration: vec![7; STORED_REGISTRATION_LEN],
            wrapped_key: vec![7; WRAPPED_KEY_LEN],
        };
        Case::invalid(&["Record"], input(false, &[register(1, 1)], &enc(&rekey)), Error::VaultRecordChanged)
    }
    /// delete at the record's generation
    fn delete(_w) {
        let delete = VaultCommand::Delete { request_id: id(3), time: T, record: rec(1), generation: 1 };
        applies(&["Record"], input(false, &[register(1, 1)], &enc(&delete)), VaultOutput::Deleted)
    }
    /// a 15-byte record id
    fn record_id_15_bytes(_w) {
        let short = VaultCommand::AttemptStart { request_id: id(2), time: T, record: vec![1; 15] };
        Case::invalid(&["Record", "Shape"], input(false, &[], &enc(&short)), Error::VaultRecordIdInvalid)
    }
    /// a stored registration one byte short
    fn registration_one_byte_short(_w) {
        let VaultCommand::Register { request_id, time, record, registration, wrapped_key } = register(2, 2) else {
            unreachable!("register() is a Register")
        };
        let bad = VaultCommand::Register { request_id, time, record, registration: registration[1..].to_vec(), wrapped_key };
        Case::invalid(&["Shape"], input(false, &[], &enc(&bad)), Error::VaultMessageInvalid)
    }
    /// a 47-byte wrapped key
    fn wrapped_key_47_bytes(_w) {
        let VaultCommand::Register { request_id, time, record, registration, .. } = register(2, 2) else {
            unreachable!("register() is a Register")
        };
        let bad = VaultCommand::Register { request_id, time, record, registration, wrapped_key: vec![2; 47] };
        Case::invalid(&["Shape"], input(false, &[], &enc(&bad)), Error::VaultWrappedKeyInvalid)
    }
    /// a request id already applied
    fn request_id_replayed(_w) {
        Case::invalid(&["Replay"], input(false, &[register(1, 1)], &enc(&attempt(1, 1))), Error::SessionRequestReplayed)
    }
    /// a time 601 s before the latest applied
    fn time_601_s_old(_w) {
        let old = VaultCommand::AttemptStart { request_id: id(9), time: T - 601, record: rec(1) };
        Case::invalid(&["Replay"], input(false, &[register(1, 1)], &enc(&old)), Error::SessionRequestStale)
    }
    /// a time exactly 600 s before the latest applied
    fn time_600_s_old(_w) {
        let edge = VaultCommand::AttemptStart { request_id: id(9), time: T - 600, record: rec(1) };
        applies(&["Replay"], input(false, &[register(1, 1)], &enc(&edge)), attempt_of_record_1(LIMIT - 1))
    }
    /// not a command
    fn not_a_command(_w) {
        Case::invalid(&["Shape"], input(false, &[], &cbor::to_vec(&"attempt")), Error::CborSchema)
    }
    /// retire: every record with its counter, in id order
    fn retire_exports_every_record(_w) {
        let input = input(false, &retired_setup(), &enc(&retire(8, 7)));
        applies(&["Rotation", "Counter"], input, VaultOutput::Retired { records: exported() })
    }
    /// an attempt on a retired fleet
    fn attempt_after_retirement(_w) {
        Case::invalid(&["Rotation"], input(false, &after_retirement(), &enc(&attempt(9, 1))), Error::RotationFleetRetired)
    }
    /// retire for another successor
    fn retire_again(_w) {
        Case::invalid(&["Rotation"], input(false, &after_retirement(), &enc(&retire(9, 8))), Error::RotationFleetRetired)
    }
    /// import into a successor
    fn import_into_successor(_w) {
        applies(&["Rotation"], input(true, &[], &enc(&import(1, exported()))), VaultOutput::Imported { records: 2 })
    }
    /// after the import, the moved counter: one guess was left
    fn moved_counter(_w) {
        let input = input(true, &[import(1, exported())], &enc(&attempt(2, 1)));
        applies(&["Rotation", "Counter"], input, attempt_of_record_1(0))
    }
    /// a locked record stays locked
    fn locked_stays_locked(_w) {
        let input = input(true, &[import(1, exported())], &enc(&attempt(2, 2)));
        Case::invalid(&["Rotation", "Counter"], input, Error::VaultRecordLocked)
    }
    /// an attempt before the import
    fn attempt_before_import(_w) {
        Case::invalid(&["Rotation"], input(true, &[], &enc(&attempt(1, 1))), Error::RotationImportPending)
    }
    /// a second import
    fn second_import(_w) {
        let input = input(true, &[import(1, exported())], &enc(&import(2, vec![])));
        Case::invalid(&["Rotation"], input, Error::RotationImportRefused)
    }
    /// import records out of order
    fn import_unsorted(_w) {
        let mut unsorted = exported();
        unsorted.reverse();
        Case::invalid(&["Rotation"], input(true, &[], &enc(&import(1, unsorted))), Error::RotationExportMismatch)
    }
}

/// The setup cases: one generated ServerSetup to change.
struct Setups {
    setup: VaultServerSetup,
    good: Vec<u8>,
}

impl Setups {
    fn new() -> Self {
        let setup = VaultServerSetup::generate(&mut ChaCha20Rng::seed_from_u64(0x5e7));
        let good = setup.to_bytes().to_vec();
        Setups { setup, good }
    }

    /// The generated setup with 32 bytes at `at` replaced by `bytes`: invalid.
    fn with(&self, at: usize, bytes: &[u8]) -> Case {
        let mut b = self.good.clone();
        b[at..at + 32].copy_from_slice(bytes);
        invalid_setup(&b)
    }
}

fn setup_input(b: &[u8]) -> BTreeMap<String, Value> {
    map([("setup", json!(hex::encode(b)))])
}

fn invalid_setup(b: &[u8]) -> Case {
    Case::invalid(&["Setup"], setup_input(b), Error::VaultSetupInvalid)
}

cases! { Setups, VAULT_SETUP_DECODE;
    /// a ServerSetup one byte short
    fn one_byte_short(_w) {
        invalid_setup(&[0u8; 127])
    }
    /// a generated ServerSetup: its public key is the server private key times the generator
    fn generated(w) {
        let out = map([("public_key", json!(hex::encode(w.setup.public_key())))]);
        Case::valid(&["Setup"], setup_input(&w.good), Some(out))
    }
    /// a byte after the fake-record key
    fn trailing_byte(w) {
        let mut long = w.good.clone();
        long.push(0);
        invalid_setup(&long)
    }
    /// server private key zero
    fn private_key_zero(w) {
        // Bytes 64..96: the server private key, a ristretto255 scalar (little-endian).
        w.with(64, &[0; 32])
    }
    /// server private key equal to the group order (not reduced)
    fn private_key_group_order(w) {
        let order = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").expect("hex");
        w.with(64, &order)
    }
    /// fake-record public key: the identity element
    fn fake_key_identity(w) {
        // Bytes 96..128: the fake-record public key, a ristretto255 element.
        w.with(96, &[0; 32])
    }
    /// fake-record public key: a negative field element (RFC 9496 A.2), not an encoding
    fn fake_key_negative(w) {
        let mut p = [0u8; 32];
        p[0] = 1;
        w.with(96, &p)
    }
    /// fake-record public key: a value of at least p, not an encoding
    fn fake_key_not_reduced(w) {
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        w.with(96, &p)
    }
}

/// The vault vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("vault", "spec/vault.md", NOTES);
    f.group("vault_apply", "§8.2");
    f.cases(&mut Commands, VAULT_APPLY);
    f.group("vault_setup_decode", "§2.3");
    f.cases(&mut Setups::new(), VAULT_SETUP_DECODE);
    // The OPAQUE exchanges (spec/conformance.md §3.1): one real exchange, each case one view
    // of it, so they are built together rather than as independent case functions.
    crate::vault_exchange::add(&mut f);
    f.group("code_normalise", "§2.4");
    f.cases(&mut (), CODE_NORMALISE);
    f.finish()
}

/// A `code_normalise` case for `text`: the normal form `want`, or the error. The reference
/// must agree, so the generator cannot write a case it would fail.
fn code_case(text: &str, want: Result<&str, Error>) -> Case {
    let got =
        bkv_protocol::vault::normalise_code(text).map(|c| String::from_utf8(c.to_vec()).expect("ASCII"));
    assert_eq!(got.as_deref().map_err(|e| *e), want, "{text:?}");
    let input = map([("text", json!(text))]);
    match want {
        Ok(code) => Case::valid(&["Code"], input, Some(map([("code", json!(hex::encode(code)))]))),
        Err(e) => Case::invalid(&["Code"], input, e),
    }
}

cases! { (), CODE_NORMALISE;
    /// six digits as typed: the normal form is their ASCII bytes
    fn digits(_w) { code_case("482916", Ok("482916")) }
    /// spaces between groups are removed
    fn grouped_with_spaces(_w) { code_case("482 916", Ok("482916")) }
    /// hyphens between groups are removed
    fn grouped_with_hyphens(_w) { code_case("4829-1635-0072", Ok("482916350072")) }
    /// leading, trailing and repeated spaces and hyphens are removed wherever they are
    fn separators_anywhere(_w) { code_case(" -48 29--16 ", Ok("482916")) }
    /// full-width digits (U+FF10–U+FF19) become ASCII digits under NFKC
    fn full_width_digits(_w) { code_case("\u{ff14}\u{ff18}\u{ff12}\u{ff19}\u{ff11}\u{ff16}", Ok("482916")) }
    /// the ideographic space and the full-width hyphen become a space and a hyphen under NFKC
    fn ideographic_space_and_full_width_hyphen(_w) { code_case("482\u{3000}916\u{ff0d}35", Ok("48291635")) }
    /// the no-break space becomes a space under NFKC
    fn no_break_space(_w) { code_case("482\u{a0}916", Ok("482916")) }
    /// 64 digits, the most a code may have
    fn sixty_four_digits(_w) { code_case(&"31".repeat(32), Ok(&"31".repeat(32))) }
    /// 65 digits
    fn sixty_five_digits(_w) { code_case(&format!("{}4", "31".repeat(32)), Err(Error::VaultCodeMalformed)) }
    /// a letter
    fn letter(_w) { code_case("48291a", Err(Error::VaultCodeMalformed)) }
    /// a tab is not a separator
    fn tab(_w) { code_case("482\t916", Err(Error::VaultCodeMalformed)) }
    /// a line ending is not stripped by the normalisation (the client strips it when it reads a line)
    fn line_ending(_w) { code_case("482916\n", Err(Error::VaultCodeMalformed)) }
    /// an en dash (U+2013) is not a hyphen
    fn en_dash(_w) { code_case("482\u{2013}916", Err(Error::VaultCodeMalformed)) }
    /// Arabic-Indic digits (U+0660–U+0669) are not mapped by NFKC
    fn arabic_indic_digits(_w) { code_case("\u{664}\u{668}\u{662}\u{669}\u{661}\u{666}", Err(Error::VaultCodeMalformed)) }
    /// an empty code
    fn empty(_w) { code_case("", Err(Error::VaultCodeWeak)) }
    /// separators only
    fn separators_only(_w) { code_case(" - ", Err(Error::VaultCodeWeak)) }
    /// five digits
    fn five_digits(_w) { code_case("48291", Err(Error::VaultCodeWeak)) }
    /// one digit six times
    fn one_digit_repeated(_w) { code_case("777 777", Err(Error::VaultCodeWeak)) }
    /// an ascending run
    fn ascending_run(_w) { code_case("123456", Err(Error::VaultCodeWeak)) }
    /// an ascending run that wraps from 9 to 0
    fn ascending_run_wrapping(_w) { code_case("7890123", Err(Error::VaultCodeWeak)) }
    /// a descending run that wraps from 0 to 9
    fn descending_run_wrapping(_w) { code_case("210987", Err(Error::VaultCodeWeak)) }
    /// an ascending run with one digit out of place is not a run
    fn almost_a_run(_w) { code_case("123457", Ok("123457")) }
    /// a malformed character is reported before the length: step 3 comes before step 4
    fn malformed_before_weak(_w) { code_case("12a", Err(Error::VaultCodeMalformed)) }
}

//! `live_backup_roundtrip` (spec/conformance.md §6): the harness's side of live mode, a
//! client of the fleet the runner started, through `bkv-client`.

use bkv_protocol::Error;
use bkv_protocol::crypto::sha256;
use serde_json::{Map, Value};

/// The live fleet's guess limit (the runner's `bkv_conformance::live::LIMIT`).
const LIMIT: u32 = 10;

fn text(input: &Map<String, Value>, k: &str) -> Result<String, String> {
    input
        .get(k)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("input {k} is missing or not a string"))
}

fn bytes(input: &Map<String, Value>, k: &str) -> Result<Vec<u8>, String> {
    hex::decode(text(input, k)?).map_err(|_| format!("input {k} is not hex"))
}

/// What the reference harness does for `live_backup_roundtrip`: register on
/// `register_url`, seal `plaintext`, make `wrong_attempts` (default 1) wrong guesses and
/// restore on `restore_url`. Returns the remaining count after the last wrong guess and
/// the SHA-256 of the restored plaintext.
/// A missing or malformed input is the `Err(String)` of the outer result (the harness
/// answers it as bad input), never an empty value.
pub(crate) async fn roundtrip(input: &Map<String, Value>) -> Result<Result<(u32, [u8; 32]), Error>, String> {
    let (trust, record) = (bytes(input, "trust")?, bytes(input, "record_id")?);
    let (code, wrong) = (text(input, "code")?, text(input, "wrong_code")?);
    let (register_url, restore_url) = (text(input, "register_url")?, text(input, "restore_url")?);
    let plaintext = bytes(input, "plaintext")?;
    let attempts = match input.get("wrong_attempts") {
        None => 1,
        Some(v) => v.as_u64().ok_or("input wrong_attempts is not an unsigned integer")?,
    };
    Ok(run(&trust, &record, &code, &wrong, &register_url, &restore_url, &plaintext, attempts).await)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    trust: &[u8],
    record: &[u8],
    code: &str,
    wrong: &str,
    register_url: &str,
    restore_url: &str,
    plaintext: &[u8],
    attempts: u64,
) -> Result<(u32, [u8; 32]), Error> {
    use bkv_client::{FleetClient, Persisted, Recovery, Trust};
    use bkv_protocol::vault::{BackupKey, KsfParams};
    let trust: Trust = bkv_protocol::cbor::from_slice(trust)?;
    // As a phone: the typed codes' normal forms (spec/vault.md §2.4).
    let (code, wrong) =
        (bkv_protocol::vault::normalise_code(code)?, bkv_protocol::vault::normalise_code(wrong)?);
    let now = bkv_client::clock::system_now();
    let connect = |url: &str| {
        let trust = trust.clone();
        let url = url.to_owned();
        async move {
            FleetClient::connect(&url, &trust, &Persisted::default(), KsfParams::TEST, now)
                .await
                .map(|c| c.0)
                .map_err(proto)
        }
    };
    let phone = connect(register_url).await?;
    let key = BackupKey::from_bytes(rand_key());
    phone.register(record, &code, &key).await.map_err(proto)?;
    let mut sealed = Vec::new();
    let fleet_id = phone.keyset().fleet_id.clone();
    bkv_protocol::backup_envelope::seal(
        &key,
        &fleet_id,
        record,
        &mut rand_core::OsRng,
        plaintext,
        &mut sealed,
        |_| {},
    )?;
    let other = connect(restore_url).await?;
    let mut remaining = LIMIT;
    for _ in 0..attempts {
        match other.recover(record, &wrong).await.map_err(proto)? {
            Recovery::WrongCode { remaining: r } => remaining = r,
            Recovery::Recovered { .. } => return Err(Error::VaultCodeInvalid),
        }
    }
    match other.recover(record, &code).await.map_err(proto)? {
        Recovery::Recovered { backup_key, .. } => {
            let mut out = Vec::new();
            bkv_protocol::backup_envelope::open(
                &backup_key,
                Some((&fleet_id, record)),
                &sealed[..],
                &mut out,
                |_| {},
            )?;
            Ok((remaining, sha256(&out)))
        }
        Recovery::WrongCode { .. } => Err(Error::VaultCodeInvalid),
    }
}

fn rand_key() -> [u8; 32] {
    use rand_core::RngCore;
    let mut k = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut k);
    k
}

/// A client failure as the protocol outcome the case expects: a transport failure is
/// `fleet.unavailable`.
fn proto(e: bkv_client::Error) -> Error {
    match e {
        bkv_client::Error::Protocol(p) => p,
        _ => Error::FleetUnavailable,
    }
}

//! The OPAQUE exchange operations of spec/conformance.md §3.1 over `bkv_protocol::vault`:
//! the harness plays one side of spec/vault.md §6.3, §6.4 or §7.1 with the randomness of
//! the vector's seed, and the vector supplies the other side's messages.

use super::{BadInput, CaseOutcome, array, hex_field, obj, str_field, u64_field};
use bkv_protocol::Error;
use bkv_protocol::node_api::{CommitEvidence, VaultBegun, VaultStep};
use bkv_protocol::session::RequestId;
use bkv_protocol::vault::{
    BackupKey, ClientAction, KsfParams, Outcome, RecoveryClient, RegistrationClient, VaultContext,
    VaultServer, VaultServerSetup,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Map, Value, json};

fn rng(input: &Map<String, Value>, key: &str) -> Result<ChaCha20Rng, BadInput> {
    Ok(ChaCha20Rng::from_seed(array(input, key)?))
}

fn context(input: &Map<String, Value>) -> Result<VaultContext, BadInput> {
    let ksf = input.get("ksf").and_then(Value::as_object).ok_or_else(|| BadInput("missing ksf".into()))?;
    let param = |k: &str| u64_field(ksf, k).and_then(|v| u32::try_from(v).map_err(|_| BadInput(k.into())));
    Ok(VaultContext {
        fleet_id: str_field(input, "fleet_id")?.to_owned(),
        opaque_server_key: array(input, "opaque_server_key")?,
        ksf: KsfParams {
            m_cost_kib: param("m_cost_kib")?,
            t_cost: param("t_cost")?,
            p_cost: param("p_cost")?,
        },
    })
}

/// `vault_client_register`: R1–R4 of spec/vault.md §6.3.
pub(super) fn client_register(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let ctx = context(input)?;
    let mut rng = rng(input, "client_seed")?;
    let (record, code) = (hex_field(input, "record")?, hex_field(input, "code")?);
    let backup_key = BackupKey::from_bytes(array(input, "backup_key")?);
    let answer = hex_field(input, "register_start_response")?;
    Ok((|| {
        let (start, client) = RegistrationClient::start(&mut rng, &record, &code)?;
        let (finish, _) = client.finish(&mut rng, &ctx, &backup_key, &answer)?.into_request();
        Ok(Some(obj(json!({ "register_start": hex::encode(start), "register_finish": hex::encode(finish) }))))
    })())
}

/// `vault_client_recover`: L1–L6 of spec/vault.md §6.4, action `recover`.
pub(super) fn client_recover(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let ctx = context(input)?;
    let mut rng = rng(input, "client_seed")?;
    let (record, code) = (hex_field(input, "record")?, hex_field(input, "code")?);
    let start_answer = hex_field(input, "recover_start_response")?;
    // Absent when the vector expects the client to stop before it sends KE3.
    let finish_answer = match input.get("recover_finish_response") {
        None | Some(Value::Null) => None,
        Some(_) => Some(hex_field(input, "recover_finish_response")?),
    };
    Ok((|| {
        let (start, client) = RecoveryClient::start(&mut rng, &record, &code)?;
        let ke2 = client.receive(&start_answer)?;
        let remaining = ke2.remaining();
        let (finish, awaiting) = ke2.finish(&mut rng, &ctx, ClientAction::Recover)?;
        // The vector has no answer only for a client that fails before this point.
        let answer = finish_answer.as_deref().ok_or(Error::CborSchema)?;
        let Outcome::Recovered { backup_key, remaining: after } = awaiting.finish(answer)? else {
            return Err(Error::CborSchema);
        };
        Ok(Some(obj(json!({
            "recover_start": hex::encode(start),
            "remaining": remaining,
            "recover_finish": hex::encode(finish),
            "backup_key": hex::encode(backup_key.as_bytes()),
            "remaining_after": after,
        }))))
    })())
}

/// `vault_node_login`: N2–N4 of spec/vault.md §7.1 for one `recover_start` and its
/// `recover_finish`, with the vector's state-machine outputs standing in for the log.
pub(super) fn node_login(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let fleet_id = str_field(input, "fleet_id")?;
    let setup = hex_field(input, "server_setup")?;
    let mut rng = rng(input, "node_seed")?;
    let time = u64_field(input, "time")?;
    let login: RequestId = array(input, "login")?;
    let finish_id: RequestId = array(input, "finish_request_id")?;
    let (start, finish) = (hex_field(input, "recover_start")?, hex_field(input, "recover_finish")?);
    let (attempt_output, finish_output) =
        (hex_field(input, "attempt_output")?, hex_field(input, "finish_output")?);
    Ok((|| {
        let server = VaultStep::new(VaultServer::new(VaultServerSetup::from_bytes(&setup)?, fleet_id));
        let VaultBegun::Commit(attempt) = server.begin(&mut rng, login, time, &start, time)? else {
            return Err(Error::CborSchema);
        };
        let attempt_command = attempt.command().to_vec();
        let start_answer =
            attempt.resume(&server, &mut rng, CommitEvidence::host_reported(attempt_output), time)?;
        let VaultBegun::Commit(success) = server.begin(&mut rng, finish_id, time, &finish, time)? else {
            return Err(Error::CborSchema);
        };
        let finish_command = success.command().to_vec();
        let finish_answer =
            success.resume(&server, &mut rng, CommitEvidence::host_reported(finish_output), time)?;
        Ok(Some(obj(json!({
            "attempt_command": hex::encode(attempt_command),
            "recover_start_response": hex::encode(start_answer),
            "finish_command": hex::encode(finish_command),
            "recover_finish_response": hex::encode(finish_answer),
        }))))
    })())
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    /// spec/conformance.md §3.1 says a seed's stream is the ChaCha20 keystream with the
    /// seed as key and a zero nonce and counter: RFC 8439 Appendix A.1, test vector #1.
    #[test]
    fn seed_stream_is_the_chacha20_keystream_of_rfc_8439() {
        let mut out = [0u8; 64];
        ChaCha20Rng::from_seed([0; 32]).fill_bytes(&mut out);
        assert_eq!(
            hex::encode(out),
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7\
             da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
        );
    }
}

//! The OPAQUE exchange operations of spec/conformance.md §3.1 over `bkv_protocol::vault`:
//! the harness plays one side of spec/vault.md §6.3, §6.4 or §7.1 with the vector's named
//! random values, and the vector supplies the other side's messages. opaque-ke takes its
//! randomness only from an RNG, so the values go in through
//! `bkv_protocol::fixtures::opaque_draws` (opaque-ke 4.0's draw order, a detail of this
//! harness, not of the spec or the vectors).

use super::{BadInput, CaseOutcome, array, hex_field, obj, optional_hex, str_field, u64_field};
use bkv_protocol::Error;
use bkv_protocol::fixtures::{FixedRng, opaque_draws};
use bkv_protocol::node_api::{CommitEvidence, VaultBegun, VaultStep};
use bkv_protocol::session::RequestId;
use bkv_protocol::vault::{
    BackupKey, ClientAction, KsfParams, RecoveryClient, RegistrationClient, VaultContext, VaultServer,
    VaultServerSetup,
};
use serde_json::{Map, Value, json};

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
    let mut rng =
        opaque_draws::client_registration(&array(input, "blind")?, &array(input, "envelope_nonce")?);
    let (record, code) = (hex_field(input, "record")?, hex_field(input, "code")?);
    let backup_key = BackupKey::from_bytes(array(input, "backup_key")?);
    let answer = hex_field(input, "register_start_response")?;
    Ok((|| {
        let (start, client) = RegistrationClient::start(&mut rng, &record, &code)?;
        let new = client.finish(&mut rng, &ctx, &backup_key, &answer)?;
        let export_key = hex::encode(new.export_key());
        let (finish, _) = new.into_request();
        Ok(Some(obj(json!({
            "register_start": hex::encode(start),
            "register_finish": hex::encode(finish),
            "export_key": export_key,
        }))))
    })())
}

/// `vault_client_recover`: L1–L6 of spec/vault.md §6.4, action `recover`.
pub(super) fn client_recover(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let ctx = context(input)?;
    let mut rng = opaque_draws::client_login(
        &array(input, "blind")?,
        &array(input, "client_keyshare_seed")?,
        &array(input, "client_nonce")?,
    );
    let (record, code) = (hex_field(input, "record")?, hex_field(input, "code")?);
    let start_answer = hex_field(input, "recover_start_response")?;
    // Absent when the vector expects the client to stop before it sends KE3.
    let finish_answer = optional_hex(input, "recover_finish_response")?;
    Ok((|| {
        let (start, client) = RecoveryClient::start(&mut rng, &record, &code)?;
        let ke2 = client.receive(&start_answer)?;
        let remaining = ke2.remaining();
        let (finish, awaiting) = ke2.finish(&mut rng, &ctx, ClientAction::Recover)?;
        // The vector has no answer only for a client that fails before this point.
        let answer = finish_answer.as_deref().ok_or(Error::CborSchema)?;
        let (export_key, session_key) = awaiting.opaque_keys();
        let (export_key, session_key) = (hex::encode(export_key), hex::encode(session_key));
        let (backup_key, after) = awaiting.finish_recovered(answer)?;
        Ok(Some(obj(json!({
            "recover_start": hex::encode(start),
            "remaining": remaining,
            "recover_finish": hex::encode(finish),
            "backup_key": hex::encode(backup_key.as_bytes()),
            "remaining_after": after,
            "export_key": export_key,
            "session_key": session_key,
        }))))
    })())
}

/// `vault_node_login`: N2–N4 of spec/vault.md §7.1 for one `recover_start` and, unless
/// `recover_finish` is null, its `recover_finish`, with the vector's state-machine outputs
/// standing in for the log.
pub(super) fn node_login(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let fleet_id = str_field(input, "fleet_id")?;
    let setup = hex_field(input, "server_setup")?;
    let mut rng = opaque_draws::node_login(
        &array(input, "fake_wrapped_key")?,
        &array(input, "fake_masking_key")?,
        &array(input, "masking_nonce")?,
        &array(input, "server_keyshare_seed")?,
        &array(input, "server_nonce")?,
    );
    let time = u64_field(input, "time")?;
    let login: RequestId = array(input, "login")?;
    let start = hex_field(input, "recover_start")?;
    let attempt_output = hex_field(input, "attempt_output")?;
    let finish = match optional_hex(input, "recover_finish")? {
        None => None,
        Some(body) => {
            Some((array::<16>(input, "finish_request_id")?, body, hex_field(input, "finish_output")?))
        }
    };
    Ok((|| {
        let server = VaultStep::new(VaultServer::new(VaultServerSetup::from_bytes(&setup)?, fleet_id));
        let VaultBegun::Commit(attempt) = server.begin(&mut rng, login, time, &start, time)? else {
            return Err(Error::CborSchema);
        };
        let attempt_command = attempt.command().to_vec();
        let start_answer =
            attempt.resume(&server, &mut rng, CommitEvidence::host_reported(attempt_output), time)?;
        let mut out = json!({
            "attempt_command": hex::encode(attempt_command),
            "recover_start_response": hex::encode(start_answer),
        });
        if let Some((finish_id, finish, finish_output)) = finish {
            // KE3 and the commit draw nothing.
            let mut none = FixedRng(Vec::new());
            let VaultBegun::Commit(success) = server.begin(&mut none, finish_id, time, &finish, time)? else {
                return Err(Error::CborSchema);
            };
            let finish_command = success.command().to_vec();
            let finish_answer =
                success.resume(&server, &mut none, CommitEvidence::host_reported(finish_output), time)?;
            out["finish_command"] = json!(hex::encode(finish_command));
            out["recover_finish_response"] = json!(hex::encode(finish_answer));
        }
        Ok(Some(obj(out)))
    })())
}

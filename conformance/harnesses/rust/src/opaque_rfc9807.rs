//! RFC 9807's own vectors (spec/conformance.md §3.2, `opaque_rfc9807_real` and
//! `opaque_rfc9807_fake`): opaque-ke 4.0 with bkv's suite (spec/vault.md §2) but the
//! Identity KSF of RFC 9807 Appendix C, both sides played by this harness. The named random
//! values go in as in `vault_exchange`, through `bkv_protocol::fixtures::opaque_draws`.

use super::{BadInput, CaseOutcome, array, hex_field, obj, optional_hex};
use bkv_protocol::Error;
use bkv_protocol::fixtures::opaque_draws;
use opaque_ke::ksf::Identity;
use opaque_ke::{
    CipherSuite, ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialRequest, Identifiers, Ristretto255, ServerLogin,
    ServerLoginParameters, ServerRegistration, ServerSetup, TripleDh,
};
use serde_json::{Map, Value, json};

/// bkv's suite with the KSF of RFC 9807 Appendix C.
struct Rfc9807Suite;

impl CipherSuite for Rfc9807Suite {
    type OprfCs = Ristretto255;
    type KeyExchange = TripleDh<Ristretto255, sha2::Sha512>;
    type Ksf = Identity;
}

/// Any opaque-ke failure: the RFC's vectors are all valid, so this only reports that the
/// harness could not reproduce one.
fn failed<E>(_: E) -> Error {
    Error::VaultMessageInvalid
}

/// The server's setup from the vector's OPRF seed and key pair; `fake_public_key` is the
/// public key opaque-ke gives a fake record (RFC 9807 §6.3.2.2 `client_public_key`).
fn setup(
    input: &Map<String, Value>,
    fake_public_key: &[u8],
) -> Result<Result<ServerSetup<Rfc9807Suite>, Error>, BadInput> {
    let bytes =
        [hex_field(input, "oprf_seed")?, hex_field(input, "server_private_key")?, fake_public_key.to_vec()]
            .concat();
    let public = hex_field(input, "server_public_key")?;
    Ok(ServerSetup::<Rfc9807Suite>::deserialize(&bytes).map_err(failed).and_then(|s| {
        // The vector's public key must be the one of its private key.
        (s.keypair().public().serialize().as_slice() == public.as_slice())
            .then_some(s)
            .ok_or(Error::VaultSetupInvalid)
    }))
}

/// `opaque_rfc9807_real`: registration, then login, both sides.
pub(super) fn real(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let password = hex_field(input, "password")?;
    let credential_identifier = hex_field(input, "credential_identifier")?;
    let context = hex_field(input, "context")?;
    let (client_id, server_id) =
        (optional_hex(input, "client_identity")?, optional_hex(input, "server_identity")?);
    let public = hex_field(input, "server_public_key")?;
    let setup = setup(input, &public)?;
    let mut reg_rng = opaque_draws::client_registration(
        &array(input, "blind_registration")?,
        &array(input, "envelope_nonce")?,
    );
    let mut login_rng = opaque_draws::client_login(
        &array(input, "blind_login")?,
        &array(input, "client_keyshare_seed")?,
        &array(input, "client_nonce")?,
    );
    // A registered client: the fake record's masking key is drawn but not used.
    let mut server_rng = opaque_draws::server_login(
        &[0; 64],
        &array(input, "masking_nonce")?,
        &array(input, "server_keyshare_seed")?,
        &array(input, "server_nonce")?,
    );
    Ok((|| {
        let setup = setup?;
        let ids = Identifiers { client: client_id.as_deref(), server: server_id.as_deref() };
        let params = || ServerLoginParameters { context: Some(&context), identifiers: ids };
        let reg = ClientRegistration::<Rfc9807Suite>::start(&mut reg_rng, &password).map_err(failed)?;
        let request = reg.message.serialize();
        let response =
            ServerRegistration::start(&setup, reg.message, &credential_identifier).map_err(failed)?;
        let response_bytes = response.message.serialize();
        let finish = reg
            .state
            .finish(
                &mut reg_rng,
                &password,
                response.message,
                ClientRegistrationFinishParameters::new(ids, None),
            )
            .map_err(failed)?;
        let upload = finish.message.serialize();
        let password_file = ServerRegistration::finish(finish.message);
        let login = ClientLogin::<Rfc9807Suite>::start(&mut login_rng, &password).map_err(failed)?;
        let ke1 = login.message.serialize();
        let server = ServerLogin::start(
            &mut server_rng,
            &setup,
            Some(password_file),
            login.message,
            &credential_identifier,
            params(),
        )
        .map_err(failed)?;
        let ke2 = server.message.serialize();
        let client = login
            .state
            .finish(
                &mut login_rng,
                &password,
                server.message,
                ClientLoginFinishParameters::new(Some(&context), ids, None),
            )
            .map_err(failed)?;
        let ke3 = client.message.serialize();
        let server_done = server.state.finish(client.message, params()).map_err(failed)?;
        if server_done.session_key != client.session_key || client.export_key != finish.export_key {
            return Err(Error::VaultLoginFailed);
        }
        Ok(Some(obj(json!({
            "registration_request": hex::encode(request),
            "registration_response": hex::encode(response_bytes),
            "registration_upload": hex::encode(upload),
            "KE1": hex::encode(ke1),
            "KE2": hex::encode(ke2),
            "KE3": hex::encode(ke3),
            "export_key": hex::encode(client.export_key),
            "session_key": hex::encode(client.session_key),
        }))))
    })())
}

/// `opaque_rfc9807_fake`: the server's KE2 for a client it holds no record of.
pub(super) fn fake(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let credential_identifier = hex_field(input, "credential_identifier")?;
    let context = hex_field(input, "context")?;
    let (client_id, server_id) =
        (optional_hex(input, "client_identity")?, optional_hex(input, "server_identity")?);
    let setup = setup(input, &hex_field(input, "client_public_key")?)?;
    let ke1 = hex_field(input, "KE1")?;
    let mut rng = opaque_draws::server_login(
        &array(input, "masking_key")?,
        &array(input, "masking_nonce")?,
        &array(input, "server_keyshare_seed")?,
        &array(input, "server_nonce")?,
    );
    Ok((|| {
        let setup = setup?;
        let request = CredentialRequest::<Rfc9807Suite>::deserialize(&ke1).map_err(failed)?;
        let ids = Identifiers { client: client_id.as_deref(), server: server_id.as_deref() };
        let params = ServerLoginParameters { context: Some(&context), identifiers: ids };
        let server = ServerLogin::start(&mut rng, &setup, None, request, &credential_identifier, params)
            .map_err(failed)?;
        Ok(Some(obj(json!({ "KE2": hex::encode(server.message.serialize()) }))))
    })())
}

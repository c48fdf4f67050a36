//! One client request of a fault run and the [`Answer`] the history checker judges
//! ([`crate::history`]): shared by `bkv-fault-client` and the process rollback runs.

use crate::history::{Answer, Kind};
use bkv_client::{FleetClient, Recovery};
use bkv_protocol::vault::BackupKey;
use rand_core::{OsRng, RngCore};

/// Send one request of `kind` for `record` (registered, or to register, under `code` and
/// `key`) through `client`: a registration, a guess with a fresh wrong code, or a recovery
/// with the right code.
pub async fn op(client: &FleetClient, kind: Kind, record: &[u8], code: &[u8], key: &BackupKey) -> Answer {
    match kind {
        Kind::Register => match client.register(record, code, key).await {
            Ok(n) => Answer::Registered(n),
            Err(e) => failed(e.code()),
        },
        Kind::Guess => {
            let wrong = format!("wrong-{}", OsRng.next_u64());
            match client.recover(record, wrong.as_bytes()).await {
                Ok(Recovery::WrongCode { remaining }) => Answer::WrongCode(remaining),
                Ok(Recovery::Recovered { .. }) => Answer::WrongKey,
                Err(e) => failed(e.code()),
            }
        }
        Kind::Recover | Kind::Restore => match client.recover(record, code).await {
            Ok(Recovery::Recovered { backup_key, remaining }) if backup_key.as_bytes() == key.as_bytes() => {
                Answer::Recovered(remaining)
            }
            Ok(Recovery::Recovered { .. }) => Answer::WrongKey,
            Ok(Recovery::WrongCode { remaining }) => Answer::RightCodeRefused(remaining),
            Err(e) => failed(e.code()),
        },
    }
}

/// The answer of a failed request with `code`.
pub fn failed(code: &str) -> Answer {
    if code == "vault.record.locked" { Answer::Locked } else { Answer::Failed(code.to_owned()) }
}

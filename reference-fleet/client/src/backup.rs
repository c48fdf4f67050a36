//! Backups over the streaming envelope (spec/backup-envelope.md) with a key the fleet
//! protects (spec/vault.md §6.3, §6.4).
//!
//! A file output is written to a temporary file beside it, synced, and renamed into place
//! only on success, so a failed or tampered restore never leaves partial plaintext under
//! the output name; a memory output is filled only on success (spec/backup-envelope.md §5:
//! plaintext of a failed read is never used). Whether an existing output may be replaced is
//! the caller's decision.

use crate::error::{Error, Result};
use crate::fleet::{FleetClient, Recovery};
use bkv_protocol::backup_envelope::{self, BackupHeader as Header};
use bkv_protocol::vault::BackupKey;
use rand_core::OsRng;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

/// A backup written by [`create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Guesses the new record allows.
    pub remaining: u32,
    /// Plaintext bytes encrypted.
    pub bytes: u64,
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The right code: the file is restored; the record allows `remaining` guesses now
    /// (0 when this was the last guess and the record is gone, spec/vault.md §5.4).
    Restored {
        /// Guesses left.
        remaining: u32,
    },
    /// The wrong code: the guess is spent and nothing was written.
    WrongCode {
        /// Guesses left.
        remaining: u32,
    },
}

/// Where [`create`] and [`restore`] write.
#[derive(Debug)]
pub enum Output<'a> {
    /// A file, replaced atomically on success.
    File(&'a Path),
    /// Memory: the bytes are appended only on success (for a caller that writes them to
    /// standard output once they are verified).
    Memory(&'a mut Vec<u8>),
}

impl Output<'_> {
    /// Fill the output through `fill`; nothing is kept on failure.
    fn write<T>(self, fill: impl FnOnce(&mut dyn std::io::Write) -> bkv_protocol::Result<T>) -> Result<T> {
        match self {
            Output::File(path) => write_atomically(path, |w| fill(w)),
            Output::Memory(out) => {
                let mut buffer = Vec::new();
                let v = fill(&mut buffer)?;
                out.extend_from_slice(&buffer);
                Ok(v)
            }
        }
    }
}

fn temp_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".partial-{}", std::process::id()));
    output.with_file_name(name)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io { path: path.to_owned(), detail: e.to_string() }
}

/// Write `output` through `fill` into a temporary file, sync it and rename it into place;
/// on any failure the temporary file is removed and `output` is untouched.
fn write_atomically<T>(
    output: &Path,
    fill: impl FnOnce(&mut BufWriter<&std::fs::File>) -> bkv_protocol::Result<T>,
) -> Result<T> {
    let tmp = temp_path(output);
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut writer = BufWriter::new(&file);
    let result = fill(&mut writer).and_then(|v| {
        use std::io::Write as _;
        writer.flush().map_err(|_| bkv_protocol::Error::EnvelopeIo)?;
        drop(writer);
        file.sync_all().map(|_| v).map_err(|_| bkv_protocol::Error::EnvelopeIo)
    });
    match result {
        Ok(v) => {
            std::fs::rename(&tmp, output).map_err(io(output))?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.into())
        }
    }
}

/// Register a fresh backup key for `record` under `code` with the fleet, then encrypt
/// `input` into `output`.
pub async fn create(
    client: &FleetClient,
    record: &[u8],
    code: &[u8],
    input: impl Read,
    output: Output<'_>,
) -> Result<Created> {
    let key = BackupKey::generate(&mut OsRng);
    let remaining = client.register(record, code, &key).await?;
    let fleet_id = client.keyset().fleet_id.clone();
    let bytes = output.write(|w| {
        backup_envelope::seal(&key, &fleet_id, record, &mut OsRng, BufReader::new(input), w, |_| {})
    })?;
    Ok(Created { remaining, bytes })
}

/// Read the header of a backup (which fleet and record it belongs to).
pub fn read_header(input: &mut impl Read) -> Result<Header> {
    Ok(backup_envelope::read_header(input)?.0)
}

/// Recover the backup key of `header`'s record with `code`, then decrypt `input` (the
/// whole backup, header included) into `output`.
pub async fn restore(
    client: &FleetClient,
    header: &Header,
    code: &[u8],
    input: impl Read,
    output: Output<'_>,
) -> Result<Restored> {
    if header.fleet_id != client.keyset().fleet_id {
        return Err(bkv_protocol::Error::EnvelopeHeaderMismatch.into());
    }
    match client.recover(&header.record_id, code).await? {
        Recovery::WrongCode { remaining } => Ok(Restored::WrongCode { remaining }),
        Recovery::Recovered { backup_key, remaining } => {
            output.write(|w| {
                backup_envelope::open(
                    &backup_key,
                    Some((&header.fleet_id, &header.record_id)),
                    BufReader::new(input),
                    w,
                    |_| {},
                )
            })?;
            Ok(Restored::Restored { remaining })
        }
    }
}

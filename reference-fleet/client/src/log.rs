//! A client of an audit log's HTTP API (spec/audit-log.md §8.1): checkpoints, proofs,
//! entries, and [`LogClient::fetch_entries`], the one paginated fetch with a progress
//! callback that the auditor and the monitor use.

use crate::error::{Error, Result};
use crate::http;
use bkv_protocol::audit_log::merkle::Hash;
use bkv_protocol::audit_log::note::Note;
use bkv_protocol::audit_log::tiles::{self, TilePath};
use bkv_protocol::audit_log::{Checkpoint, InclusionProof};
use serde::{Deserialize, Serialize};

/// The most entries one `GET /entries/{start}/{end}` returns (spec/audit-log.md §8.1).
pub const MAX_ENTRIES_PER_REQUEST: u64 = 1024;

/// JSON of `GET /proof/inclusion/{index}/{size}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InclusionJson {
    /// Tree size.
    pub tree_size: u64,
    /// Leaf index.
    pub leaf_index: u64,
    /// Hex hashes.
    pub path: Vec<String>,
}

/// JSON of `GET /proof/consistency/{size1}/{size2}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConsistencyJson {
    /// Smaller size.
    pub size1: u64,
    /// Larger size.
    pub size2: u64,
    /// Hex hashes.
    pub path: Vec<String>,
}

/// JSON of `POST /add`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IndexJson {
    /// The index of the appended entry.
    pub index: u64,
}

/// An HTTP client of a log server.
#[derive(Debug, Clone)]
pub struct LogClient {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    http: reqwest::Client,
    /// The admin listener's URL and bearer token, for the writes (spec/audit-log.md §8.1).
    admin: Option<(String, zeroize::Zeroizing<String>)>,
}

fn hashes(hex_list: &[String]) -> Result<Vec<Hash>> {
    hex_list
        .iter()
        .map(|h| hex::decode(h).ok().and_then(|b| Hash::try_from(b).ok()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::Http("bad hash in proof".into()))
}

fn json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Http(e.to_string()))
}

fn utf8(b: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(b).map_err(|_| Error::Http(format!("{what} is not UTF-8")))
}

impl From<http::HttpError> for Error {
    fn from(e: http::HttpError) -> Self {
        Error::Http(e.0)
    }
}

/// What [`LogClient::fetch_entries`] got.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The entries from `start`, in index order.
    pub entries: Vec<Vec<u8>>,
    /// Where the fetch stopped short of `end`, and why (the log did not serve the entry).
    pub gap: Option<(u64, String)>,
}

impl LogClient {
    /// A client of the log at `base`.
    pub fn new(base: &str) -> Self {
        LogClient { base: base.trim_end_matches('/').to_owned(), http: http::client(), admin: None }
    }

    /// This client, also writing (`POST /add`, `POST /checkpoint`) to the log's admin
    /// listener at `admin` with the bearer `token` (spec/audit-log.md §8.1): what the
    /// third-party signer holds, and nobody else.
    pub fn with_admin(mut self, admin: &str, token: &str) -> Self {
        self.admin =
            Some((admin.trim_end_matches('/').to_owned(), zeroize::Zeroizing::new(token.to_owned())));
        self
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>> {
        Ok(http::get(&self.http, &format!("{}{path}", self.base)).await?)
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>> {
        let Some((admin, token)) = &self.admin else {
            return Err(Error::Http(format!(
                "{}: writes go to the log's admin listener with its token, and this client has neither",
                self.base
            )));
        };
        let url = format!("{admin}{path}");
        let media = Some((body, "application/octet-stream"));
        match http::request_authorized(
            &self.http,
            reqwest::Method::POST,
            &url,
            media,
            http::MAX_SMALL,
            Some(token),
        )
        .await?
        {
            (200, body) => Ok(body),
            (status, body) => {
                Err(Error::Http(format!("POST {url}: {status} {}", String::from_utf8_lossy(&body))))
            }
        }
    }

    /// Append an entry; returns its index once durable.
    pub async fn append(&self, entry: &[u8]) -> Result<u64> {
        Ok(json::<IndexJson>(&self.post("/add", entry.to_vec()).await?)?.index)
    }

    /// Ask the log to publish a (cosigned) checkpoint at its current size.
    pub async fn publish_checkpoint(&self) -> Result<String> {
        utf8(self.post("/checkpoint", Vec::new()).await?, "checkpoint")
    }

    /// The latest published checkpoint note.
    pub async fn checkpoint(&self) -> Result<String> {
        utf8(self.get("/checkpoint").await?, "checkpoint")
    }

    /// The size of the latest published checkpoint (its signatures are not checked).
    pub async fn checkpoint_size(&self) -> Result<(String, u64)> {
        let note = self.checkpoint().await?;
        let size = Checkpoint::parse_body(&Note::parse(&note)?.text)?.size;
        Ok((note, size))
    }

    /// Inclusion proof of `index` in the tree of `size`.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof> {
        let j: InclusionJson = json(&self.get(&format!("/proof/inclusion/{index}/{size}")).await?)?;
        Ok(InclusionProof { tree_size: j.tree_size, leaf_index: j.leaf_index, path: hashes(&j.path)? })
    }

    /// Consistency proof from `size1` to `size2`.
    pub async fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>> {
        let j: ConsistencyJson = json(&self.get(&format!("/proof/consistency/{size1}/{size2}")).await?)?;
        hashes(&j.path)
    }

    /// The consistency proof between `size1` and `size2`, or `None` when the log answers
    /// that it has no such range (404: a size above its tree, or `size1` above `size2`).
    pub async fn consistency_proof_in_range(&self, size1: u64, size2: u64) -> Result<Option<Vec<Hash>>> {
        let url = format!("{}/proof/consistency/{size1}/{size2}", self.base);
        match http::request(&self.http, reqwest::Method::GET, &url, None).await? {
            (200, body) => Ok(Some(hashes(&json::<ConsistencyJson>(&body)?.path)?)),
            (404 | 400, _) => Ok(None),
            (status, body) => {
                Err(Error::Http(format!("GET {url}: {status} {}", String::from_utf8_lossy(&body))))
            }
        }
    }

    /// Entries `start..end` (at most [`MAX_ENTRIES_PER_REQUEST`]).
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let list: Vec<String> = json(&self.get(&format!("/entries/{start}/{end}")).await?)?;
        list.iter().map(|h| hex::decode(h).map_err(|_| Error::Http("bad entry hex".into()))).collect()
    }

    /// The hash tile of `level` and `index`, of `width` hashes (C2SP tlog-tiles).
    pub async fn hash_tile(&self, level: u32, index: u64, width: u64) -> Result<Vec<Hash>> {
        let path = TilePath { level: Some(level), index, width }.to_path();
        let bytes = self.get(&format!("/tile/{path}")).await?;
        tiles::parse_hash_tile(&bytes, width)
            .ok_or_else(|| Error::Http(format!("tile/{path}: not {width} hashes")))
    }

    /// The entry bundle `index` of `width` entries (C2SP tlog-tiles).
    pub async fn entry_bundle(&self, index: u64, width: u64) -> Result<Vec<Vec<u8>>> {
        let path = TilePath { level: None, index, width }.to_path();
        let bytes = self.get(&format!("/tile/{path}")).await?;
        match tiles::parse_entry_bundle(&bytes) {
            Some(entries) if entries.len() as u64 == width => Ok(entries),
            _ => Err(Error::Http(format!("tile/{path}: not an entry bundle of {width} entries"))),
        }
    }

    /// Every entry `start..end`, in batches of [`MAX_ENTRIES_PER_REQUEST`]; `progress(done,
    /// end)` is called after each batch. A batch the log does not serve (an error, or an
    /// empty answer) ends the fetch: [`Fetched::gap`] says where, and the entries before
    /// it are kept.
    pub async fn fetch_entries(&self, start: u64, end: u64, progress: &mut dyn FnMut(u64, u64)) -> Fetched {
        let mut out = Fetched::default();
        let mut next = start;
        while next < end {
            let stop = end.min(next + MAX_ENTRIES_PER_REQUEST);
            match self.entries(next, stop).await {
                Ok(batch) if batch.is_empty() => {
                    out.gap = Some((next, "entry not served".into()));
                    break;
                }
                Ok(batch) => {
                    let take = usize::try_from(stop - next).unwrap_or(usize::MAX).min(batch.len());
                    next += take as u64;
                    out.entries.extend(batch.into_iter().take(take));
                }
                Err(e) => {
                    out.gap = Some((next, e.to_string()));
                    break;
                }
            }
            progress(next, end);
        }
        out
    }

    /// The latest checkpoint and every entry up to its size; fails on a gap.
    pub async fn fetch_all(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<(String, Vec<Vec<u8>>)> {
        let (checkpoint, size) = self.checkpoint_size().await?;
        progress(0, size);
        let fetched = self.fetch_entries(0, size, progress).await;
        match fetched.gap {
            None => Ok((checkpoint, fetched.entries)),
            Some((index, why)) => Err(Error::Http(format!("{}: entry {index}: {why}", self.base))),
        }
    }
}

//! The harness contract messages. spec/conformance.md §2.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Protocol version of the harness contract.
pub const CONTRACT_VERSION: u32 = 1;

/// The runner's first line, and the harness's answer (with `harness` and `features`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always `"hello"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Contract version, 1.
    pub version: u32,
    /// The harness's name (answer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<String>,
    /// Areas or operations the harness implements (answer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// The profiles the harness claims to pass (answer only, optional; spec/conformance.md §3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<String>>,
}

/// One case sent to the harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRequest {
    /// Always `"case"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `<area>::<tcId>`.
    pub id: String,
    /// The operation (spec/conformance.md §3).
    pub operation: String,
    /// The vector's input.
    pub input: Map<String, Value>,
}

/// What the harness did with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActualResult {
    /// Accepted.
    Valid,
    /// Rejected (with an error code).
    Invalid,
    /// Not implemented by the harness.
    Skipped,
}

/// The harness's answer to one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The case id.
    pub id: String,
    /// Accepted, rejected or skipped.
    pub actual_result: ActualResult,
    /// Registry code of the failure, for `invalid`.
    pub error_code: Option<String>,
    /// Free text.
    #[serde(default)]
    pub context: String,
    /// Outputs of a valid case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Map<String, Value>>,
}

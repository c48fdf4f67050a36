//! The vector file format. spec/conformance.md §1.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `vectors/v1/<area>.json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VectorFile {
    /// Always 1.
    pub format_version: u32,
    /// The spec area, e.g. `validation_bundle`.
    pub area: String,
    /// The spec file the vectors test.
    pub spec: String,
    /// The command that regenerates the file.
    pub generator: String,
    /// Number of test cases in all groups.
    pub number_of_tests: usize,
    /// Flag name => meaning.
    pub notes: BTreeMap<String, String>,
    /// Groups of cases sharing an operation.
    pub test_groups: Vec<TestGroup>,
}

/// Cases that share an operation. spec/conformance.md §1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestGroup {
    /// What the harness must do (spec/conformance.md §3).
    pub operation: String,
    /// The spec section, e.g. `§5.1`.
    pub spec_section: String,
    /// The cases.
    pub tests: Vec<TestCase>,
}

/// Expected outcome of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// The input must be accepted.
    Valid,
    /// The input must be rejected with `errorCode`.
    Invalid,
}

/// One case. spec/conformance.md §1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestCase {
    /// Unique in the file, from 1.
    pub tc_id: usize,
    /// What the case checks.
    pub comment: String,
    /// Keys of the file's `notes`.
    pub flags: Vec<String>,
    /// Operation input; byte strings as lowercase hex.
    pub input: BTreeMap<String, serde_json::Value>,
    /// Expected result.
    pub result: Expected,
    /// The registry code an invalid case must produce.
    pub error_code: Option<String>,
    /// Expected outputs of a valid case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<BTreeMap<String, serde_json::Value>>,
}

/// Builds a [`VectorFile`], numbering cases as they are added.
#[derive(Debug)]
pub struct FileBuilder {
    file: VectorFile,
}

impl FileBuilder {
    /// A new file for `area`, testing `spec`.
    pub fn new(area: &str, spec: &str, notes: &[(&str, &str)]) -> Self {
        FileBuilder {
            file: VectorFile {
                format_version: 1,
                area: area.into(),
                spec: spec.into(),
                generator: "cargo run -p bkv-vectors".into(),
                number_of_tests: 0,
                notes: notes.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
                test_groups: Vec::new(),
            },
        }
    }

    /// Start a group of cases for `operation`.
    pub fn group(&mut self, operation: &str, spec_section: &str) {
        self.file.test_groups.push(TestGroup {
            operation: operation.into(),
            spec_section: spec_section.into(),
            tests: Vec::new(),
        });
    }

    /// Add a case to the current group. `error` is `None` for a valid case.
    pub fn case(
        &mut self,
        comment: &str,
        flags: &[&str],
        input: BTreeMap<String, serde_json::Value>,
        error: Option<bkv_protocol::Error>,
        output: Option<BTreeMap<String, serde_json::Value>>,
    ) {
        for f in flags {
            assert!(self.file.notes.contains_key(*f), "flag {f} has no note");
        }
        self.file.number_of_tests += 1;
        let tc_id = self.file.number_of_tests;
        let group = self.file.test_groups.last_mut().expect("group() before case()");
        group.tests.push(TestCase {
            tc_id,
            comment: comment.into(),
            flags: flags.iter().map(|f| (*f).into()).collect(),
            input,
            result: if error.is_some() { Expected::Invalid } else { Expected::Valid },
            error_code: error.map(|e| e.code().into()),
            output,
        });
    }

    /// The finished file.
    pub fn finish(self) -> VectorFile {
        self.file
    }
}

/// Build an input or output map from `(key, value)` pairs.
pub fn map<const N: usize>(pairs: [(&str, serde_json::Value); N]) -> BTreeMap<String, serde_json::Value> {
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

/// A case as its generator function builds it. Its comment is not here: it is the doc
/// line of the function ([`CaseFn`]), as x509-limbo takes a case's description from its
/// docstring.
#[derive(Debug, Clone)]
pub struct Case {
    /// The flags (each has a note in the file).
    pub flags: &'static [&'static str],
    /// The input.
    pub input: BTreeMap<String, serde_json::Value>,
    /// The registry error of an invalid case; `None` for a valid one.
    pub error: Option<bkv_protocol::Error>,
    /// The output a valid case expects, if it names one.
    pub output: Option<BTreeMap<String, serde_json::Value>>,
}

impl Case {
    /// A case every implementation must accept, with the output it must produce.
    pub fn valid(
        flags: &'static [&'static str],
        input: BTreeMap<String, serde_json::Value>,
        output: Option<BTreeMap<String, serde_json::Value>>,
    ) -> Self {
        Case { flags, input, error: None, output }
    }

    /// A case every implementation must refuse with `error`.
    pub fn invalid(
        flags: &'static [&'static str],
        input: BTreeMap<String, serde_json::Value>,
        error: bkv_protocol::Error,
    ) -> Self {
        Case { flags, input, error: Some(error), output: None }
    }
}

/// One case's generator: a named function of the world `W` of its file, and its doc
/// comment, which is the case's `comment`. Written by [`cases!`](crate::cases).
pub struct CaseFn<W> {
    /// The function's name (the case's stable name in the generator).
    pub name: &'static str,
    /// The doc comment's lines.
    pub doc: &'static [&'static str],
    /// Build the case.
    pub build: fn(&mut W) -> Case,
}

impl<W> CaseFn<W> {
    /// The case's comment: the doc lines, trimmed, joined by a space.
    pub fn comment(&self) -> String {
        self.doc.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

impl FileBuilder {
    /// Add every case of `cases` to the current group, in order, built from `world`.
    pub fn cases<W>(&mut self, world: &mut W, cases: &[CaseFn<W>]) {
        for c in cases {
            let case = (c.build)(world);
            self.case(&c.comment(), case.flags, case.input, case.error, case.output);
        }
    }
}

/// Define vector cases as one named function each, with a doc line that is the case's
/// comment, and the list `$list` of them in file order (spec/conformance.md §1):
///
/// ```text
/// cases! { World, CASES;
///     /// a vote request from node 0 to node 1
///     fn valid_vote(w) { Case::valid(&["Valid"], w.input(&w.valid), Some(output(&w.base))) }
/// }
/// ```
#[macro_export]
macro_rules! cases {
    ($world:ty, $list:ident; $( $(#[doc = $doc:literal])+ fn $name:ident($w:ident) $body:block )+) => {
        $(
            $(#[doc = $doc])+
            fn $name($w: &mut $world) -> $crate::format::Case $body
        )+

        /// Every case of this list, in the order of the vector file.
        const $list: &[$crate::format::CaseFn<$world>] = &[$(
            $crate::format::CaseFn { name: stringify!($name), doc: &[$($doc),+], build: $name }
        ),+];
    };
}

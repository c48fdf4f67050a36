//! Conformance reports: table, JSON, self-contained HTML, regressions and deviations.
//! spec/conformance.md §4 and §5.

use crate::contract::ActualResult;
use crate::profiles::{ProfileResult, Verdict};
use bkv_vectors::{Expected, TestCase};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The verdict on one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The harness answered as the vector requires.
    Pass,
    /// It did not (wrong result, wrong code, timeout, or skipped a claimed feature).
    Fail,
    /// The harness does not claim the case's feature.
    Skipped,
    /// A failure listed in the harness's reviewed deviations table.
    Deviation,
}

/// One case in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseReport {
    /// `<area>::<tcId>`.
    pub id: String,
    /// Spec area.
    pub area: String,
    /// Operation.
    pub operation: String,
    /// The vector's comment.
    pub comment: String,
    /// Expected result.
    pub expected_result: Expected,
    /// Expected error code.
    pub expected_error_code: Option<String>,
    /// What the harness answered (None if not asked).
    pub actual_result: Option<ActualResult>,
    /// The harness's error code.
    pub actual_error_code: Option<String>,
    /// Harness context or runner explanation.
    pub context: String,
    /// Verdict.
    pub status: Status,
}

impl CaseReport {
    /// A case not yet run.
    pub fn new(id: &str, area: &str, operation: &str, t: &TestCase) -> Self {
        CaseReport {
            id: id.into(),
            area: area.into(),
            operation: operation.into(),
            comment: t.comment.clone(),
            expected_result: t.result,
            expected_error_code: t.error_code.clone(),
            actual_result: None,
            actual_error_code: None,
            context: String::new(),
            status: Status::Skipped,
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The harness's name.
    pub harness: String,
    /// What it claims.
    pub features: Vec<String>,
    /// The profiles its hello claims (spec/conformance.md §3.3).
    #[serde(default)]
    pub claimed_profiles: Vec<String>,
    /// Every case.
    pub cases: Vec<CaseReport>,
    /// What the harness wrote on standard error.
    pub harness_stderr: String,
    /// Every profile's result ([`Report::judge_profiles`]).
    #[serde(default)]
    pub profiles: Vec<ProfileResult>,
}

/// Counts of one area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Known deviations.
    pub deviations: usize,
}

/// An entry of a harness's deviations table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deviation {
    /// Case id.
    pub id: String,
    /// Why the harness deviates (reviewed).
    pub reason: String,
}

impl Report {
    /// Counts per area, and the total under `"all"`.
    pub fn counts(&self) -> BTreeMap<String, Counts> {
        let mut m: BTreeMap<String, Counts> = BTreeMap::new();
        for c in &self.cases {
            for key in [c.area.as_str(), "all"] {
                let e = m.entry(key.to_owned()).or_default();
                match c.status {
                    Status::Pass => e.passed += 1,
                    Status::Fail => e.failed += 1,
                    Status::Skipped => e.skipped += 1,
                    Status::Deviation => e.deviations += 1,
                }
            }
        }
        m
    }

    /// Mark failing cases listed in `deviations`; return the ids of stale entries
    /// (listed but not failing).
    pub fn apply_deviations(&mut self, deviations: &[Deviation]) -> Vec<String> {
        let listed: BTreeSet<&str> = deviations.iter().map(|d| d.id.as_str()).collect();
        let mut stale: BTreeSet<String> = listed.iter().map(|s| (*s).to_owned()).collect();
        for c in &mut self.cases {
            if listed.contains(c.id.as_str()) && c.status == Status::Fail {
                c.status = Status::Deviation;
                stale.remove(&c.id);
            }
        }
        stale.into_iter().collect()
    }

    /// Cases that passed in `baseline` and do not pass now.
    pub fn regressions(&self, baseline: &Report) -> Vec<String> {
        let before: BTreeSet<&str> =
            baseline.cases.iter().filter(|c| c.status == Status::Pass).map(|c| c.id.as_str()).collect();
        self.cases
            .iter()
            .filter(|c| before.contains(c.id.as_str()) && c.status != Status::Pass)
            .map(|c| c.id.clone())
            .collect()
    }

    /// Judge every profile over the cases as they stand now (after deviations); the
    /// results are kept in the report.
    pub fn judge_profiles(&mut self) -> &[ProfileResult] {
        self.profiles = crate::profiles::results(self);
        &self.profiles
    }

    /// The profiles the harness claims that do not pass, with their verdicts (an unknown
    /// profile name is reported as not run).
    pub fn claimed_profile_failures(&self) -> Vec<(String, Verdict)> {
        self.claimed_profiles
            .iter()
            .filter_map(|name| {
                let verdict =
                    self.profiles.iter().find(|p| &p.profile == name).map_or(Verdict::NotRun, |p| p.verdict);
                (verdict != Verdict::Pass).then(|| (name.clone(), verdict))
            })
            .collect()
    }

    /// The failing cases.
    pub fn failures(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases.iter().filter(|c| c.status == Status::Fail)
    }

    /// A plain-text table per area.
    pub fn table(&self) -> String {
        let mut s = format!("harness {} (features: {})\n", self.harness, self.features.join(", "));
        s += &format!(
            "{:<20} {:>7} {:>7} {:>8} {:>10}\n",
            "area", "passed", "failed", "skipped", "deviations"
        );
        for (area, c) in self.counts() {
            s += &format!(
                "{:<20} {:>7} {:>7} {:>8} {:>10}\n",
                area, c.passed, c.failed, c.skipped, c.deviations
            );
        }
        s += &format!(
            "{:<20} {:>7} {:>7} {:>8} {:>10}\n",
            "profile", "passed", "failed", "skipped", "verdict"
        );
        for p in &self.profiles {
            let claimed = if self.claimed_profiles.contains(&p.profile) { " (claimed)" } else { "" };
            s += &format!(
                "{:<20} {:>7} {:>7} {:>8} {:>10}{claimed}\n",
                p.profile,
                p.passed,
                p.failed,
                p.skipped,
                p.verdict.label()
            );
        }
        for f in self.failures() {
            s += &format!(
                "FAIL {} ({}): expected {:?} {} got {:?} {}; {}\n",
                f.id,
                f.comment,
                f.expected_result,
                f.expected_error_code.as_deref().unwrap_or("-"),
                f.actual_result,
                f.actual_error_code.as_deref().unwrap_or("-"),
                f.context
            );
        }
        s
    }

    /// A self-contained HTML report (no external resources).
    pub fn html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
        };
        let mut rows = String::new();
        for (area, c) in self.counts() {
            rows += &format!(
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&area),
                c.passed,
                if c.failed > 0 { "fail" } else { "pass" },
                c.failed,
                c.skipped,
                c.deviations
            );
        }
        let mut profiles = String::new();
        for p in &self.profiles {
            profiles += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{:?}</td></tr>\n",
                esc(&p.profile),
                p.passed,
                p.failed,
                p.skipped,
                if p.verdict == Verdict::Pass { "pass" } else { "fail" },
                p.verdict
            );
        }
        let mut cases = String::new();
        for c in &self.cases {
            cases += &format!(
                "<tr class=\"{:?}\"><td>{}</td><td>{}</td><td>{:?} {}</td><td>{} {}</td><td>{:?}</td><td>{}</td></tr>\n",
                c.status,
                esc(&c.id),
                esc(&c.comment),
                c.expected_result,
                esc(c.expected_error_code.as_deref().unwrap_or("")),
                c.actual_result.map(|r| format!("{r:?}")).unwrap_or_default(),
                esc(c.actual_error_code.as_deref().unwrap_or("")),
                c.status,
                esc(&c.context)
            );
        }
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>bkv conformance: {name}</title>\n<style>\
             body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}\
             .fail,.Fail{{background:#fdd}}.pass{{background:#dfd}}.Skipped{{color:#888}}.Deviation{{background:#ffd}}\
             </style></head><body>\n<h1>bkv conformance: {name}</h1>\n<p>Features: {features}</p>\n\
             <table><tr><th>area</th><th>passed</th><th>failed</th><th>skipped</th><th>deviations</th></tr>\n{rows}</table>\n\
             <h2>Profiles</h2>\n<table><tr><th>profile</th><th>passed</th><th>failed</th><th>skipped</th><th>verdict</th></tr>\n{profiles}</table>\n\
             <h2>Cases</h2>\n<table><tr><th>id</th><th>comment</th><th>expected</th><th>actual</th><th>status</th><th>context</th></tr>\n{cases}</table>\n\
             <h2>Harness stderr</h2><pre>{stderr}</pre>\n</body></html>\n",
            name = esc(&self.harness),
            features = esc(&self.features.join(", ")),
            stderr = esc(&self.harness_stderr),
        )
    }
}

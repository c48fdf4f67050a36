//! The reference harness: answers spec/conformance.md §2 cases with `bkv-protocol`.
#![forbid(unsafe_code)]

use bkv_conformance::contract::{CONTRACT_VERSION, CaseRequest, Hello};
use bkv_reference_harness::{FEATURES, execute};
use std::io::{BufRead, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return ExitCode::from(2) };
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("unparsable line: {e}");
                return ExitCode::from(2);
            }
        };
        let answer = if v["type"] == "hello" {
            let hello = Hello {
                kind: "hello".into(),
                version: CONTRACT_VERSION,
                harness: Some("bkv-reference (Rust, bkv-protocol)".into()),
                features: Some(FEATURES.iter().map(|s| (*s).to_owned()).collect()),
                // Every profile of spec/conformance.md §3.3.
                profiles: Some(
                    bkv_conformance::profiles::PROFILES.iter().map(|p| p.name.to_owned()).collect(),
                ),
            };
            serde_json::to_string(&hello)
        } else {
            let req: CaseRequest = match serde_json::from_value(v) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("bad case: {e}");
                    return ExitCode::from(2);
                }
            };
            match execute(&req.id, &req.operation, &req.input) {
                Ok(r) => serde_json::to_string(&r),
                Err(e) => {
                    eprintln!("{}: {e}", req.id);
                    return ExitCode::from(2);
                }
            }
        };
        let Ok(answer) = answer else { return ExitCode::from(2) };
        if writeln!(out, "{answer}").and_then(|()| out.flush()).is_err() {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

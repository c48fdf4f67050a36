//! `bkv-check-history FILE [--limit N]`: judge a recorded fault-run history (JSON lines of
//! [`bkv_tests::history::Entry`], as the namespace fault run saves it under `target/tmp/`)
//! with the history checker, print what it counted and every violation, and exit 1 if there
//! is one.
#![forbid(unsafe_code)]

use bkv_tests::history::{Entry, History, check};
use std::io::BufRead;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut file, mut limit) = (None, 10u32);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--limit" => limit = args.next().and_then(|n| n.parse().ok()).expect("--limit N"),
            _ => file = Some(a),
        }
    }
    let file = file.expect("usage: bkv-check-history FILE [--limit N]");
    let reader =
        std::io::BufReader::new(std::fs::File::open(&file).unwrap_or_else(|e| panic!("{file}: {e}")));
    let mut h = History { limit, entries: Vec::new() };
    for (i, line) in reader.lines().enumerate() {
        let line = line.unwrap_or_else(|e| panic!("{file}:{}: {e}", i + 1));
        h.push(serde_json::from_str::<Entry>(&line).unwrap_or_else(|e| panic!("{file}:{}: {e}", i + 1)));
    }
    let (summary, violations) = check(&h);
    println!("{} entries: {summary:?}", h.entries.len());
    for v in &violations {
        println!("violation: {v}");
    }
    println!("violations: {}", violations.len());
    if violations.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) }
}

//! `bkv-conformance`: run the vectors through a harness and report.
#![forbid(unsafe_code)]

use bkv_conformance::report::{Deviation, Report};
use bkv_conformance::runner::{RunOptions, run};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Run bkv's test vectors through an implementation's harness (spec/conformance.md).
#[derive(Debug, Parser)]
#[command(name = "bkv-conformance", version, about)]
struct Args {
    /// The harness command, e.g. `python3 conformance/harnesses/python/bkv_harness.py`.
    #[arg(long)]
    harness: String,
    /// Directory holding `v1/*.json` (default: the committed vectors, built into the runner).
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Only these areas (repeatable).
    #[arg(long)]
    area: Vec<String>,
    /// Per-case time limit in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// A previous JSON report: any case that passed there and not now is a regression.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The harness's reviewed deviations table (JSON list of {id, reason}).
    #[arg(long)]
    deviations: Option<PathBuf>,
    /// Fail unless exactly this many cases pass.
    #[arg(long)]
    expect_passed: Option<usize>,
    /// Fail unless exactly this many cases are skipped.
    #[arg(long)]
    expect_skipped: Option<usize>,
    /// Run only the operations of this profile (spec/conformance.md §3.3: client, node,
    /// auditor, log, witness, operator) and fail unless every one of its cases passes.
    #[arg(long)]
    profile: Option<String>,
    /// Live mode: also start a reference fleet on loopback and run the `live` cases
    /// (register, back up, guess, restore) against it (spec/conformance.md §6).
    #[arg(long)]
    live: bool,
}

/// The vector files of `areas` (all when empty): from `dir`, or the ones built into the
/// runner (`bkv_vectors::EMBEDDED`) when no directory is given.
fn load_files(
    dir: Option<&std::path::Path>,
    areas: &[String],
) -> Result<Vec<bkv_vectors::VectorFile>, String> {
    let mut texts: Vec<(String, String)> = Vec::new();
    match dir {
        None => texts.extend(
            bkv_vectors::EMBEDDED.iter().map(|(a, t)| (format!("(built in) {a}.json"), (*t).to_owned())),
        ),
        Some(dir) => {
            let v1 = dir.join("v1");
            let mut entries: Vec<_> = std::fs::read_dir(&v1)
                .map_err(|e| format!("{}: {e}", v1.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            entries.sort();
            for p in entries {
                let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                texts.push((p.display().to_string(), text));
            }
        }
    }
    let mut files = Vec::new();
    for (name, text) in texts {
        let f: bkv_vectors::VectorFile = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        if areas.is_empty() || areas.contains(&f.area) {
            files.push(f);
        }
    }
    if let Some(unknown) = areas.iter().find(|a| !files.iter().any(|f| &f.area == *a)) {
        return Err(format!("--area {unknown}: no vector file has this area"));
    }
    Ok(files)
}

fn read_json<T: serde::de::DeserializeOwned>(p: &std::path::Path) -> Result<T, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

fn write(p: &std::path::Path, s: &str) -> Result<(), String> {
    std::fs::write(p, s).map_err(|e| format!("{}: {e}", p.display()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Live mode: the fleet runs on this runtime's threads while the harness is driven.
#[cfg(feature = "live")]
fn run_live(
    files: &mut Vec<bkv_vectors::VectorFile>,
    opts: &RunOptions,
) -> Result<Result<Report, String>, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let live_dir = std::env::temp_dir().join(format!("bkv-conformance-live-{}", std::process::id()));
    println!("live mode: starting a 3-node reference fleet in {}", live_dir.display());
    let (fleet, cases) = runtime.block_on(bkv_conformance::live::start(&live_dir))?;
    files.push(cases);
    let result = run(files, opts).map_err(|e| e.to_string());
    runtime.block_on(fleet.shutdown());
    let _ = std::fs::remove_dir_all(&live_dir);
    Ok(result)
}

#[cfg(not(feature = "live"))]
fn run_live(_: &mut Vec<bkv_vectors::VectorFile>, _: &RunOptions) -> Result<Result<Report, String>, String> {
    Err("--live needs a runner built with the `live` feature (cargo build -p bkv-conformance --features live)".into())
}

fn real_main(args: &Args) -> Result<bool, String> {
    let mut files = load_files(args.vectors.as_deref(), &args.area)?;
    let only = match &args.profile {
        None => None,
        Some(name) => Some(bkv_conformance::profiles::profile(name).ok_or_else(|| {
            let names: Vec<_> = bkv_conformance::profiles::PROFILES.iter().map(|p| p.name).collect();
            format!("--profile {name}: no such profile (spec/conformance.md §3.3: {})", names.join(", "))
        })?),
    };
    if let Some(p) = only {
        for f in &mut files {
            f.test_groups.retain(|g| p.operations.contains(&g.operation.as_str()));
        }
        files.retain(|f| !f.test_groups.is_empty());
    }
    let opts = RunOptions { harness: args.harness.clone(), timeout: Duration::from_secs(args.timeout) };
    let result =
        if args.live { run_live(&mut files, &opts)? } else { run(&files, &opts).map_err(|e| e.to_string()) };
    let mut report: Report = result?;
    let mut ok = true;
    if let Some(p) = &args.deviations {
        let devs: Vec<Deviation> = read_json(p)?;
        for id in report.apply_deviations(&devs) {
            println!("STALE DEVIATION {id}: listed in {} but the case does not fail", p.display());
            ok = false;
        }
    }
    report.judge_profiles();
    print!("{}", report.table());
    let all = report.counts().get("all").copied().unwrap_or_default();
    ok &= all.failed == 0;
    if let Some(p) = only {
        let verdict = report.profiles.iter().find(|r| r.profile == p.name).map(|r| r.verdict);
        if verdict != Some(bkv_conformance::profiles::Verdict::Pass) {
            println!("PROFILE {} does not pass: {}", p.name, verdict.map_or("not run", |v| v.label()));
            ok = false;
        }
    }
    // A full run judges every profile the harness claims; a run of some areas or of one
    // profile cannot, and judges only what it selected.
    if only.is_none() && args.area.is_empty() {
        for (name, verdict) in report.claimed_profile_failures() {
            println!("CLAIMED PROFILE {name} does not pass: {}", verdict.label());
            ok = false;
        }
    }
    if let Some(p) = &args.baseline {
        let base: Report = read_json(p)?;
        for id in report.regressions(&base) {
            println!("REGRESSION {id}: passed in {} and does not now", p.display());
            ok = false;
        }
    }
    if let Some(n) = args.expect_passed
        && all.passed != n
    {
        println!("EXPECTED {n} passed cases, got {}", all.passed);
        ok = false;
    }
    if let Some(n) = args.expect_skipped
        && all.skipped != n
    {
        println!("EXPECTED {n} skipped cases, got {}", all.skipped);
        ok = false;
    }
    if let Some(p) = &args.json {
        write(p, &serde_json::to_string_pretty(&report).expect("json"))?;
    }
    if let Some(p) = &args.html {
        write(p, &report.html())?;
    }
    println!("{}", if ok { "CONFORMANT" } else { "NOT CONFORMANT" });
    println!("conformance: {} passed, {} failed, {} skipped", all.passed, all.failed, all.skipped);
    Ok(ok)
}

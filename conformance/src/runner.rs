//! The conformance runner. spec/conformance.md §2 and §4.
//!
//! The runner owns the harness process (killed on drop), the handshake, the per-case
//! time limit and the comparison; a harness only answers cases.

use crate::contract::{ActualResult, CONTRACT_VERSION, CaseRequest, CaseResult, Hello};
use crate::report::{CaseReport, Report, Status};
use bkv_vectors::{Expected, VectorFile};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fault of the runner or the harness process itself (not a failed case).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The harness could not be started.
    #[error("cannot start harness `{0}`: {1}")]
    Spawn(String, std::io::Error),
    /// The harness broke the contract (bad handshake, unparsable line, wrong id).
    #[error("harness broke the contract: {0}")]
    Contract(String),
    /// The harness exited or closed its output early.
    #[error("harness stopped: {0}")]
    Stopped(String),
}

/// A running harness. The process is killed when this is dropped.
struct Harness {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Harness {
    fn start(cmd: &str) -> Result<Self, RunnerError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RunnerError::Spawn(cmd.to_owned(), e))?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr_pipe = child.stderr.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = stderr_pipe.read_to_string(&mut buf);
            if let Ok(mut s) = sink.lock() {
                s.push_str(&buf);
            }
        });
        Ok(Harness { stdin: child.stdin.take(), child, lines, stderr })
    }

    fn send(&mut self, line: &str) -> Result<(), RunnerError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| RunnerError::Stopped("stdin closed".into()))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| RunnerError::Stopped(e.to_string()))
    }

    fn recv(&self, timeout: Duration) -> Result<Option<String>, RunnerError> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Ok(Some(l)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                Err(RunnerError::Stopped("harness closed its output".into()))
            }
        }
    }
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The harness command (run with `sh -c "exec CMD"`).
    pub harness: String,
    /// Per-case time limit.
    pub timeout: Duration,
}

/// Run every case of `files` whose area the harness claims, and compare.
pub fn run(files: &[VectorFile], opts: &RunOptions) -> Result<Report, RunnerError> {
    let mut h = Harness::start(&opts.harness)?;
    let hello = Hello {
        kind: "hello".into(),
        version: CONTRACT_VERSION,
        harness: None,
        features: None,
        profiles: None,
    };
    h.send(&serde_json::to_string(&hello).expect("json"))?;
    let line = h
        .recv(opts.timeout)?
        .ok_or_else(|| RunnerError::Contract("no hello within the time limit".into()))?;
    let answer: Hello =
        serde_json::from_str(&line).map_err(|e| RunnerError::Contract(format!("hello: {e}: {line}")))?;
    if answer.kind != "hello" || answer.version != CONTRACT_VERSION {
        return Err(RunnerError::Contract(format!("unexpected hello {line}")));
    }
    let features = answer.features.unwrap_or_default();
    let claimed_profiles = answer.profiles.unwrap_or_default();
    let name = answer.harness.unwrap_or_else(|| opts.harness.clone());

    let mut cases = Vec::new();
    let mut dead = false;
    for f in files {
        for g in &f.test_groups {
            let claimed = features.iter().any(|x| *x == f.area || *x == g.operation);
            for t in &g.tests {
                let id = format!("{}::{}", f.area, t.tc_id);
                let mut report = CaseReport::new(&id, &f.area, &g.operation, t);
                if !claimed {
                    report.status = Status::Skipped;
                    report.context = "feature not claimed by the harness".into();
                } else if dead {
                    report.status = Status::Fail;
                    report.context = "harness stopped before this case".into();
                } else {
                    let req = CaseRequest {
                        kind: "case".into(),
                        id: id.clone(),
                        operation: g.operation.clone(),
                        input: t.input.clone().into_iter().collect(),
                    };
                    h.send(&serde_json::to_string(&req).expect("json"))?;
                    match h.recv(opts.timeout)? {
                        None => {
                            report.status = Status::Fail;
                            report.context = "timeout".into();
                            dead = true; // the harness is now out of step: stop feeding it
                        }
                        Some(line) => {
                            let r: CaseResult = serde_json::from_str(&line)
                                .map_err(|e| RunnerError::Contract(format!("{id}: {e}: {line}")))?;
                            if r.id != id {
                                return Err(RunnerError::Contract(format!(
                                    "answer for {} while waiting for {id}",
                                    r.id
                                )));
                            }
                            if g.operation.starts_with("produce_") {
                                report.judge_produced(&g.operation, t, &r);
                            } else {
                                report.judge(t, &r);
                            }
                        }
                    }
                }
                cases.push(report);
            }
        }
    }
    drop(h.stdin.take());
    let stderr = h.stderr.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(Report {
        harness: name,
        features,
        claimed_profiles,
        cases,
        harness_stderr: stderr,
        profiles: Vec::new(),
    })
}

impl CaseReport {
    /// spec/conformance.md §3.4: a `produce_*` case passes when the harness answers
    /// `valid` with an output the reference accepts ([`crate::produce::check`]).
    pub fn judge_produced(&mut self, operation: &str, t: &bkv_vectors::TestCase, r: &CaseResult) {
        self.actual_result = Some(r.actual_result);
        self.actual_error_code = r.error_code.clone();
        self.context = r.context.clone();
        let input: serde_json::Map<String, serde_json::Value> = t.input.clone().into_iter().collect();
        self.status = match (r.actual_result, &r.output) {
            (ActualResult::Valid, Some(output)) => match crate::produce::check(operation, &input, output) {
                Ok(()) => Status::Pass,
                Err(e) => {
                    self.context = format!("{e}; {}", self.context);
                    Status::Fail
                }
            },
            (ActualResult::Valid, None) => {
                self.context = format!("no output to check; {}", self.context);
                Status::Fail
            }
            _ => Status::Fail,
        };
    }

    /// spec/conformance.md §4: compare a harness answer with the vector.
    pub fn judge(&mut self, t: &bkv_vectors::TestCase, r: &CaseResult) {
        self.actual_result = Some(r.actual_result);
        self.actual_error_code = r.error_code.clone();
        self.context = r.context.clone();
        let pass = match (t.result, r.actual_result) {
            (Expected::Valid, ActualResult::Valid) => match &t.output {
                None => true,
                Some(want) => {
                    let got = r.output.clone().unwrap_or_default();
                    let missing: Vec<_> =
                        want.iter().filter(|(k, v)| got.get(*k) != Some(v)).map(|(k, _)| k).collect();
                    if !missing.is_empty() {
                        self.context = format!("output differs in {missing:?}; {}", self.context);
                    }
                    missing.is_empty()
                }
            },
            (Expected::Invalid, ActualResult::Invalid) => r.error_code == t.error_code,
            _ => false,
        };
        self.status = if pass { Status::Pass } else { Status::Fail };
    }
}

//! `bkv fleet up` (the default; `--in-process` runs every node in one process): the supervisor of a local fleet whose nodes are separate
//! processes (`bkv-node run`, one per node), and `bkv fleet kill|stop|start` to exercise
//! failover by hand.
//!
//! The supervisor keeps the fleet's audit log in its own process (for now), writes each
//! node's `node.toml`, and runs every node as a child with a pipe on its standard input:
//! when the supervisor exits, or is killed, the pipe closes and every child stops, so no
//! node outlives it. It serves a control API on loopback, whose address it writes to
//! `DIR/supervisor.json`: `POST /nodes/{id}/kill` (SIGKILL), `/stop` (SIGTERM, then wait),
//! `/start`, and `POST /stop` (the whole fleet). On a new fleet's first start every node
//! binds port 0 and reports the ports it got (`bkv-node run --announce`), is sent its peers'
//! and the supervisor stores them in `fleet.json` and every `node.toml`; from then on a
//! (re)started node binds its stored ports or fails clearly. The log keeps its ports in
//! its own directory (`ports.json`).

use crate::error::{Error, Result, write_file};
use crate::fleet::{LocalFleet, store_node_addrs, write_first_start_configs, write_node_configs};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, Notify};

/// A running node process.
#[derive(Debug)]
pub struct Child {
    /// Its process id.
    pub pid: u32,
    /// Its client URL.
    pub url: String,
    process: tokio::process::Child,
}

/// A child that has not reported ready yet.
struct Spawned {
    id: String,
    pid: u32,
    process: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Spawned {
    /// The child's next JSON line on standard output (`what` names it in errors), within 60 s.
    async fn line(&mut self, what: &str) -> Result<serde_json::Value> {
        let id = &self.id;
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), self.lines.next_line())
            .await
            .map_err(|_| Error::Runtime(format!("{id} did not report {what} within 60 s")))?
            .map_err(|e| Error::Runtime(format!("{id}: {e}")))?;
        let Some(line) = line else {
            let status = self.process.wait().await.map(|s| s.to_string()).unwrap_or_default();
            return Err(Error::Runtime(format!(
                "{id} exited before it was {what} ({status}); see its error above"
            )));
        };
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| Error::Runtime(format!("{id}: {what} line {line:?}: {e}")))?;
        if v["ok"] == false {
            return Err(Error::Runtime(format!(
                "{id} could not start: [{}] {}",
                v["error"]["code"].as_str().unwrap_or("?"),
                v["error"]["message"].as_str().unwrap_or("?")
            )));
        }
        Ok(v)
    }

    /// Wait for the readiness line (both listeners bound, consensus started).
    async fn ready(mut self) -> Result<Child> {
        let ready = self.line("ready").await?;
        let url = ready["result"]["client"].as_str().unwrap_or_default().to_owned();
        // Keep reading its standard output so that the child never blocks on a full pipe.
        let mut lines = self.lines;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        tracing::info!(node = %self.id, pid = self.pid, "node process started");
        Ok(Child { pid: self.pid, url, process: self.process })
    }
}

/// The node processes of one fleet.
pub struct Supervisor {
    dir: PathBuf,
    ids: Vec<String>,
    children: Mutex<BTreeMap<String, Child>>,
    stop: Notify,
}

/// `DIR/supervisor.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ControlFile {
    /// The supervisor's process id.
    pub pid: u32,
    /// Its control API, `http://127.0.0.1:PORT`.
    pub control: String,
}

impl Supervisor {
    /// The supervisor of the fleet in `dir` whose nodes are `ids`.
    pub fn new(dir: &Path, ids: Vec<String>) -> Arc<Self> {
        Arc::new(Supervisor {
            dir: dir.to_owned(),
            ids,
            children: Mutex::new(BTreeMap::new()),
            stop: Notify::new(),
        })
    }

    fn config(&self, id: &str) -> PathBuf {
        self.dir.join(id).join("node.toml")
    }

    /// Start node `id` as a child and wait for its readiness line.
    pub async fn start(&self, id: &str) -> Result<(u32, String)> {
        if !self.ids.iter().any(|i| i == id) {
            return Err(Error::Usage(format!("{id} is not a node of this fleet ({})", self.ids.join(", "))));
        }
        let mut children = self.children.lock().await;
        if let Some(c) = children.get_mut(id)
            && c.process.try_wait().ok().flatten().is_none()
        {
            return Ok((c.pid, c.url.clone()));
        }
        let spawned = self.spawn(id, false)?;
        let child = spawned.ready().await?;
        let out = (child.pid, child.url.clone());
        children.insert(id.to_owned(), child);
        Ok(out)
    }

    /// The first start of a new fleet, whose configurations give every node port 0: each
    /// child binds, reports its real addresses, and is then sent every peer's; `persist` is
    /// given those addresses (id, client, peer) to store before the nodes serve, so that a
    /// restart binds the same ports. No port is picked by one process and bound by another.
    pub async fn start_first(
        &self,
        persist: impl FnOnce(&[(String, SocketAddr, SocketAddr)]) -> Result<()>,
    ) -> Result<()> {
        let mut children = self.children.lock().await;
        let mut spawned = Vec::new();
        let mut bound = Vec::new();
        for id in &self.ids {
            let mut s = self.spawn(id, true)?;
            let line = s.line("bound").await?;
            let addr = |k: &str| -> Result<SocketAddr> {
                line["result"]["bound"][k]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| Error::Runtime(format!("{id}: the bound line has no {k} address: {line}")))
            };
            bound.push((id.clone(), addr("client")?, addr("peer")?));
            spawned.push(s);
        }
        let peers: BTreeMap<&str, SocketAddr> = bound.iter().map(|(id, _, p)| (id.as_str(), *p)).collect();
        let line = format!("{}\n", serde_json::json!({ "peers": peers }));
        for s in &mut spawned {
            let stdin = s.process.stdin.as_mut().expect("piped");
            stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| Error::Runtime(format!("{}: cannot send the peer addresses: {e}", s.id)))?;
        }
        persist(&bound)?;
        for s in spawned {
            let id = s.id.clone();
            children.insert(id, s.ready().await?);
        }
        Ok(())
    }

    fn spawn(&self, id: &str, announce: bool) -> Result<Spawned> {
        let mut command = tokio::process::Command::new(crate::third_party::node_binary()?);
        command.args(["run", "--supervised", "--json", "--log-format"]);
        command.arg(super::LOG_FORMAT.get().copied().unwrap_or(super::LogFormat::Text).arg());
        if announce {
            command.arg("--announce");
        }
        let mut process = command
            .arg("--config")
            .arg(self.config(id))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Runtime(format!("cannot start {id}: {e}")))?;
        let pid = process.id().unwrap_or(0);
        let lines = BufReader::new(process.stdout.take().expect("piped")).lines();
        Ok(Spawned { id: id.to_owned(), pid, process, lines })
    }

    /// SIGKILL node `id` (a crash: nothing is flushed that was not already durable).
    pub async fn kill(&self, id: &str) -> Result<()> {
        let mut children = self.children.lock().await;
        let c = children.get_mut(id).ok_or_else(|| Error::Usage(format!("{id} is not running")))?;
        c.process.start_kill().map_err(|e| Error::Runtime(format!("kill {id}: {e}")))?;
        let _ = c.process.wait().await;
        children.remove(id);
        tracing::info!(node = %id, "node process killed");
        Ok(())
    }

    /// Stop node `id` cleanly: close its standard input and wait for it to exit.
    pub async fn stop(&self, id: &str) -> Result<()> {
        let mut children = self.children.lock().await;
        let mut c = children.remove(id).ok_or_else(|| Error::Usage(format!("{id} is not running")))?;
        drop(c.process.stdin.take());
        match tokio::time::timeout(std::time::Duration::from_secs(15), c.process.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = c.process.start_kill();
                let _ = c.process.wait().await;
            }
        }
        Ok(())
    }

    /// The running children: id, pid, url.
    pub async fn running(&self) -> Vec<(String, u32, String)> {
        let mut children = self.children.lock().await;
        let mut out = Vec::new();
        for (id, c) in children.iter_mut() {
            if c.process.try_wait().ok().flatten().is_none() {
                out.push((id.clone(), c.pid, c.url.clone()));
            }
        }
        out
    }

    /// Stop every node.
    pub async fn stop_all(&self) {
        let ids: Vec<String> = self.children.lock().await.keys().cloned().collect();
        for id in ids {
            let _ = self.stop(&id).await;
        }
    }

    /// Serve the control API on loopback and write `DIR/supervisor.json`.
    pub async fn serve_control(self: &Arc<Self>) -> Result<tokio::task::JoinHandle<()>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Runtime(format!("control listener: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::Runtime(e.to_string()))?;
        let file = ControlFile { pid: std::process::id(), control: format!("http://{addr}") };
        write_file(
            &self.dir.join("supervisor.json"),
            &serde_json::to_vec_pretty(&file).expect("serializable"),
        )?;
        let app = axum::Router::new()
            .route("/nodes/{id}/{action}", post(control))
            .route(
                "/stop",
                post(|State(s): State<Arc<Supervisor>>| async move {
                    s.stop.notify_one();
                    "stopping\n"
                }),
            )
            .with_state(self.clone());
        Ok(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }))
    }

    /// Wait until the control API or a signal asks the fleet to stop.
    pub async fn wait_stop(&self) {
        tokio::select! {
            _ = self.stop.notified() => {}
            _ = super::node::wait_for_termination() => {}
        }
    }
}

async fn control(
    State(s): State<Arc<Supervisor>>,
    UrlPath((id, action)): UrlPath<(String, String)>,
) -> (StatusCode, String) {
    let done = match action.as_str() {
        "kill" => s.kill(&id).await.map(|_| format!("{id} killed\n")),
        "stop" => s.stop(&id).await.map(|_| format!("{id} stopped\n")),
        "start" => s.start(&id).await.map(|(pid, url)| format!("{id} started: pid {pid}, {url}\n")),
        other => return (StatusCode::NOT_FOUND, format!("no action {other}: kill, stop or start\n")),
    };
    match done {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => (StatusCode::CONFLICT, format!("error [{}]: {e}\n", e.code())),
    }
}

/// Wait until every node at `urls` answers `/readyz` with 200: its vote gate is open and
/// it knows a leader (bounded by `within`).
pub async fn wait_ready(urls: &[String], within: std::time::Duration) -> Result<()> {
    let http = bkv_client::http::client();
    let deadline = std::time::Instant::now() + within;
    for url in urls {
        loop {
            let ready = http.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200);
            if ready {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Runtime(format!("{url} not ready within {} s", within.as_secs())));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Run `bkv fleet up` (one process per node) for the fleet `fleet` (its log serving in this process).
pub async fn run_processes(mut fleet: LocalFleet, json: bool) -> Result<()> {
    // The ports a new fleet's creation bound are its nodes' now: let them go to the
    // children, which bind them at once.
    fleet.release_listeners();
    let log = fleet.log.as_ref().map(|l| l.client.base.clone());
    let sup = Supervisor::new(&fleet.dir, fleet.nodes.iter().map(|n| n.id.clone()).collect());
    // A node that never ran has no storage: on a new fleet every node binds port 0 and
    // reports its port, which is stored for every later start.
    let first = fleet.nodes.iter().all(|n| !fleet.dir.join(&n.id).join("raft").exists());
    let started = if first {
        write_first_start_configs(&fleet.dir, log.as_deref())?;
        let mut stored = Vec::new();
        let r = sup
            .start_first(|bound| {
                stored = bound.to_vec();
                store_node_addrs(&fleet.dir, log.as_deref(), bound)
            })
            .await;
        for (id, client, peer) in stored {
            if let Some(n) = fleet.nodes.iter_mut().find(|n| n.id == id) {
                (n.url, n.raft_addr) = (format!("http://{client}"), peer);
            }
        }
        r
    } else {
        write_node_configs(&fleet.dir, log.as_deref())?;
        let mut r = Ok(());
        for n in &fleet.nodes {
            r = sup.start(&n.id).await.map(|_| ());
            if r.is_err() {
                break;
            }
        }
        r
    };
    if let Err(e) = started {
        sup.stop_all().await;
        return Err(e);
    }
    let control = sup.serve_control().await?;
    let running = sup.running().await;
    // Serving means a leader is known: the report is printed once every node is ready.
    let urls: Vec<String> = running.iter().map(|(_, _, url)| url.clone()).collect();
    if let Err(e) = wait_ready(&urls, std::time::Duration::from_secs(60)).await {
        sup.stop_all().await;
        return Err(e);
    }
    let mut report = super::fleet_up::report(&fleet);
    report.supervisor = Some(std::process::id());
    for n in &mut report.nodes {
        n.pid = running.iter().find(|(id, _, _)| *id == n.id).map(|(_, pid, _)| *pid);
    }
    if json {
        super::contract::Envelope::success(&report).print();
    } else {
        super::fleet_up::print_text(&report, &fleet.dir)?;
        println!(
            "\nServing until Ctrl-C or `bkv fleet stop --dir {}`; every node is its own process (pids above).",
            fleet.dir.display()
        );
    }
    sup.wait_stop().await;
    sup.stop_all().await;
    control.abort();
    let _ = std::fs::remove_file(fleet.dir.join("supervisor.json"));
    fleet.shutdown().await;
    Ok(())
}

/// The control file of the supervisor of `dir` when that supervisor is alive; `None` when
/// there is no control file or its process is gone.
pub(crate) fn live_supervisor(dir: &Path) -> Result<Option<ControlFile>> {
    let path = dir.join("supervisor.json");
    if !path.exists() {
        return Ok(None);
    }
    let file: ControlFile = crate::error::read_json(&path)?;
    Ok(Path::new(&format!("/proc/{}", file.pid)).exists().then_some(file))
}

/// Send `action` for `node` (or, with no node, stop the fleet) to the supervisor of `dir`.
pub async fn request(dir: &Path, node: Option<&str>, action: &str) -> Result<String> {
    let file = live_supervisor(dir)?.ok_or_else(|| {
        Error::Usage(format!(
            "no fleet is running in {0}: `bkv fleet up --processes --dir {0}` starts one",
            dir.display()
        ))
    })?;
    let url = match node {
        Some(id) => format!("{}/nodes/{id}/{action}", file.control),
        None => format!("{}/stop", file.control),
    };
    let http = bkv_client::http::client();
    let (status, body) =
        bkv_client::http::request(&http, reqwest::Method::POST, &url, None).await.map_err(|e| {
            Error::Transport(format!("the supervisor of {} ({}): {}", dir.display(), file.pid, e.0))
        })?;
    let text = String::from_utf8_lossy(&body).trim_end().to_owned();
    if status != 200 {
        return Err(Error::Usage(text));
    }
    Ok(text)
}

//! A lab of hosts on one machine: one Linux network namespace per host, joined by veth
//! pairs to a bridge that lives in a namespace of its own (spec/fleet-replication.md §8,
//! multi-host shape).
//!
//! The lab adds nothing to the root namespace: each veth pair is created with one end in
//! the bridge's namespace and the other in the host's; addresses are `10.77.0.0/24` inside
//! the lab only, with no default route. Faults are real: processes started in a host
//! ([`Lab::spawn`]) are killed with signals, and partitions are `nft` drop rules in the
//! receiving host's input hook ([`Lab::block`], [`Lab::heal`]). Dropping the lab kills every
//! process it started and deletes every namespace (which deletes their links), also when a
//! test panics; a new lab first removes what a lab of a dead test process left behind.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); [`Lab::available`] says whether the
//! lab can run here and why not.

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The prefix of every namespace a lab creates: `bkvt<pid>-<tag>-<host>`.
const PREFIX: &str = "bkvt";

/// One host of the lab.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its network namespace.
    pub netns: String,
    /// Its address on the lab's bridge.
    pub addr: std::net::Ipv4Addr,
}

/// The lab: hosts, the bridge namespace, and the processes started in them.
pub struct Lab {
    bridge: String,
    /// The hosts, in the order they were asked for.
    pub hosts: Vec<Host>,
    children: Vec<Child>,
}

fn run(args: &[&str], stdin: Option<&str>) -> io::Result<()> {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]).stdout(Stdio::null()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", args[0])))?;
    if let Some(text) = stdin {
        use std::io::Write as _;
        child.stdin.take().expect("piped").write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect()
}

fn kill_pids_in(netns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", netns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

fn delete(netns: &str) {
    kill_pids_in(netns);
    let _ = Command::new("ip").args(["netns", "del", netns]).stderr(Stdio::null()).status();
}

impl Lab {
    /// Whether a lab can run here: `Err` names what is missing (not root, no `ip`, no `nft`).
    pub fn available() -> Result<(), String> {
        let uid = Command::new("id").arg("-u").output().map_err(|e| format!("id -u: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("network namespaces need root".into());
        }
        for tool in ["ip", "nft"] {
            let found = Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
            if found.is_err() {
                return Err(format!("`{tool}` is not installed (apt-get install iproute2 nftables)"));
            }
        }
        Ok(())
    }

    /// A lab named `tag` with `n` hosts at `10.77.0.11`, `10.77.0.12`, …
    pub fn create(tag: &str, n: usize) -> io::Result<Lab> {
        assert!(n < 200, "the lab's /24 holds fewer hosts");
        // Namespaces of labs whose test process is gone.
        for ns in namespaces() {
            let Some(pid) = ns.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else { continue };
            if !Path::new("/proc").join(pid).exists() {
                delete(&ns);
            }
        }
        let base = format!("{PREFIX}{}-{tag}", std::process::id());
        let bridge = format!("{base}-br");
        let mut lab = Lab { bridge: bridge.clone(), hosts: Vec::new(), children: Vec::new() };
        run(&["ip", "netns", "add", &bridge], None)?;
        run(&["ip", "-n", &bridge, "link", "add", "br0", "type", "bridge"], None)?;
        run(&["ip", "-n", &bridge, "link", "set", "br0", "up"], None)?;
        for k in 0..n {
            let netns = format!("{base}-h{k}");
            let addr = std::net::Ipv4Addr::new(10, 77, 0, 11 + k as u8);
            run(&["ip", "netns", "add", &netns], None)?;
            lab.hosts.push(Host { netns: netns.clone(), addr });
            let port = format!("p{k}");
            run(
                &[
                    "ip", "-n", &bridge, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &netns,
                ],
                None,
            )?;
            run(&["ip", "-n", &bridge, "link", "set", &port, "master", "br0", "up"], None)?;
            run(&["ip", "-n", &netns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"], None)?;
            run(&["ip", "-n", &netns, "link", "set", "eth0", "up"], None)?;
            run(&["ip", "-n", &netns, "link", "set", "lo", "up"], None)?;
            // The partition table: rules are added to its input chain and flushed to heal.
            run(
                &["ip", "netns", "exec", &netns, "nft", "-f", "-"],
                Some(
                    "table inet bkvlab {\n chain input {\n  type filter hook input priority 0; policy accept;\n }\n}\n",
                ),
            )?;
        }
        Ok(lab)
    }

    /// Start `program args` inside host `k`'s namespace; the lab kills it when dropped.
    /// Returns the index of the child for [`Lab::child`].
    pub fn spawn(&mut self, k: usize, program: &Path, args: &[String], stdout: Stdio) -> io::Result<usize> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[k].netns])
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .spawn()?;
        self.children.push(child);
        Ok(self.children.len() - 1)
    }

    /// A child started by [`Lab::spawn`] (`ip netns exec` execs the program, so its pid is
    /// the program's).
    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    /// Drop every packet from host `from` arriving at host `to` (one way).
    pub fn block(&self, from: usize, to: usize) -> io::Result<()> {
        let rule = format!("add rule inet bkvlab input ip saddr {} drop\n", self.hosts[from].addr);
        run(&["ip", "netns", "exec", &self.hosts[to].netns, "nft", "-f", "-"], Some(&rule))
    }

    /// Remove every drop rule.
    pub fn heal(&self) -> io::Result<()> {
        for h in &self.hosts {
            run(
                &["ip", "netns", "exec", &h.netns, "nft", "flush", "chain", "inet", "bkvlab", "input"],
                None,
            )?;
        }
        Ok(())
    }

    /// The namespaces of this lab (for a test that checks the clean-up).
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.bridge.clone()).chain(self.hosts.iter().map(|h| h.netns.clone())).collect()
    }

    /// Whether a namespace of that name exists now.
    pub fn exists(netns: &str) -> bool {
        namespaces().iter().any(|n| n == netns)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for h in &self.hosts {
            delete(&h.netns);
        }
        delete(&self.bridge);
    }
}

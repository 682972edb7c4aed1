//! A `hepstack serve` child process on loopback ports chosen by the kernel, and a small HTTP
//! client for its API. Shared by the serve and interoperability tests.
#![allow(dead_code)]

pub mod peer;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hepstack")
}

pub fn samples() -> PathBuf {
    std::env::var_os("HEPSTACK_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples"))
}

/// A running `hepstack serve`.
pub struct Server {
    pub child: Child,
    pub data_dir: PathBuf,
    /// Announced addresses by kind (`hep-udp`, `hep-tcp`, `http`, `metrics`).
    pub addrs: HashMap<String, SocketAddr>,
    /// Every stderr line so far (announcements, the generated password, logs).
    pub stderr: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    token: Option<String>,
}

impl Server {
    /// Starts serve with everything on 127.0.0.1:0, the admin password set, and extra args/env.
    pub fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--hep-udp", "127.0.0.1:0", "--hep-tcp", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .args(extra)
            .env("HEPSTACK_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "info")
            // The samples keep their capture times (November 2026): with the default 7-day
            // retention a run a week later would expire them while a test reads them.
            .env("HEPSTACK_STORE__SQLITE__RETENTION_DAYS", "0")
            .env("HEPSTACK_STORE__POSTGRES__RETENTION_DAYS", "0")
            .env("HEPSTACK_STORE__CLICKHOUSE__RETENTION_DAYS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::spawn(cmd, data_dir)
    }

    /// Spawns a prepared command and waits until it announced its HTTP address (or hep
    /// listeners when HTTP is off).
    pub fn spawn(mut cmd: Command, data_dir: &Path) -> Server {
        let mut child = cmd.spawn().expect("spawn hepstack serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("HEPSTACK_TEST_VERBOSE").is_some() {
                    eprintln!("[serve] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            data_dir: data_dir.to_path_buf(),
            addrs: HashMap::new(),
            stderr: rx,
            seen: Vec::new(),
            token: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.seen.iter().any(|l| l == "hepstack: ready") {
            assert!(
                Instant::now() < deadline,
                "serve did not start: {:?}",
                server.seen
            );
            if let Ok(Some(status)) = server.child.try_wait() {
                server.drain_stderr();
                panic!("serve exited with {status}: {:#?}", server.seen);
            }
            server.pump(Duration::from_millis(100));
        }
        server
    }

    /// Reads stderr lines available within `wait`, recording announcements.
    pub fn pump(&mut self, wait: Duration) {
        if let Ok(line) = self.stderr.recv_timeout(wait) {
            self.record(line);
        }
        while let Ok(line) = self.stderr.try_recv() {
            self.record(line);
        }
    }

    fn drain_stderr(&mut self) {
        self.pump(Duration::from_millis(500));
    }

    fn record(&mut self, line: String) {
        if let Some(rest) = line.strip_prefix("hepstack: listening ") {
            let mut parts = rest.split_whitespace();
            if let (Some(kind), Some(addr)) = (parts.next(), parts.next()) {
                if let Ok(addr) = addr.parse() {
                    self.addrs.entry(kind.to_string()).or_insert(addr);
                }
            }
        }
        self.seen.push(line);
    }

    pub fn addr(&self, kind: &str) -> SocketAddr {
        *self
            .addrs
            .get(kind)
            .unwrap_or_else(|| panic!("no {kind} listener: {:?}", self.addrs))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr("http"), path)
    }

    /// Logs in as admin (once) and returns the bearer token.
    pub fn token(&mut self) -> String {
        if let Some(t) = &self.token {
            return t.clone();
        }
        let resp: Value = ureq::post(&self.url("/api/v1/login"))
            .send_json(serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .expect("login")
            .into_json()
            .expect("login json");
        let token = resp["token"].as_str().expect("token").to_string();
        self.token = Some(token.clone());
        token
    }

    /// GET an API path with the admin token; returns the JSON body.
    pub fn get(&mut self, path_and_query: &str) -> Value {
        let token = self.token();
        ureq::get(&self.url(path_and_query))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"))
            .into_json()
            .expect("json")
    }

    /// Every message in the time window, following cursors.
    pub fn all_messages(&mut self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = format!("/api/v1/messages?limit=1000&from=0&to=4102444800000{query}");
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&q);
            out.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        out
    }

    /// Total messages stored (all time).
    pub fn total(&mut self, query: &str) -> u64 {
        self.get(&format!(
            "/api/v1/messages?limit=1&from=0&to=4102444800000{query}"
        ))["total"]
            .as_u64()
            .expect("total")
    }

    /// Waits until `total(query)` reaches `want` or `timeout` passes; returns the last total.
    pub fn wait_total(&mut self, query: &str, want: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let total = self.total(query);
            if total >= want || Instant::now() > deadline {
                return total;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The metrics page text.
    pub fn metrics(&self) -> String {
        ureq::get(&format!("http://{}/metrics", self.addr("metrics")))
            .call()
            .expect("metrics")
            .into_string()
            .expect("text")
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(&self.child, libc::SIGTERM);
        let status = wait_timeout(&mut self.child, Duration::from_secs(60));
        self.drain_stderr();
        status
    }

    /// SIGKILL, no chance to drain.
    pub fn kill9(mut self) {
        signal(&self.child, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `hepstack send` with the args and returns its stdout.
pub fn send(args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("send")
        .args(args)
        .output()
        .expect("run send");
    assert!(
        out.status.success(),
        "hepstack send {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The oracle decode of a sample directory.
pub fn oracle(dir: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(samples().join(dir).join("decoded.jsonl")).expect("oracle");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("oracle JSON"))
        .collect()
}

/// The payload text of an oracle line (v3: chunk 0x000f; v2: `payload`).
pub fn oracle_payload(o: &Value) -> Option<String> {
    if let Some(p) = o["payload"].as_str() {
        return Some(p.to_string());
    }
    o["chunks"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "0x000f")
        .and_then(|c| c["value"].as_str().map(String::from))
}

/// A chunk value of an oracle v3 line by name.
pub fn oracle_chunk<'a>(o: &'a Value, name: &str) -> Option<&'a Value> {
    o["chunks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| &c["value"])
}

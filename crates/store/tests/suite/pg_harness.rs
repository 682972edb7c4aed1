//! PostgreSQL for tests: one uniquely named database per test on the shared server at
//! 127.0.0.1:5432 (user `postgres`, trust), dropped afterwards; when that server does not
//! answer, a throwaway cluster (`initdb` + `pg_ctl` from /usr/lib/postgresql/*/bin) on a free
//! port. Throwaway clusters are also what the outage tests stop and restart: the shared
//! server is never stopped. Only std and the `psql` client are used, so any test crate can
//! include this file with `#[path]`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A server tests may create databases on.
pub struct Server {
    pub host: String,
    pub port: u16,
    /// Present when this is a throwaway cluster (stopped and removed on drop).
    cluster: Option<Cluster>,
}

/// Runs `psql` as `postgres` against a database; stdout on success, stderr on failure.
pub fn psql(host: &str, port: u16, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host={host} port={port} user=postgres dbname={db} connect_timeout=3"
        ))
        .args(["-c", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as `postgres` when we are root (initdb and postgres refuse root).
fn as_pg_user(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(55432)
}

/// A private PostgreSQL cluster in a temporary directory.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    running: bool,
}

impl Cluster {
    /// initdb + start on a free port; None when the binaries are missing or fail.
    pub fn start_new() -> Option<Cluster> {
        let bin = pg_bin()?;
        let dir =
            std::env::temp_dir().join(format!("hepstack-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).ok()?;
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return None;
            }
        }
        let data = dir.join("data");
        let status = as_pg_user(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        let mut cluster = Cluster {
            dir,
            bin,
            port: free_port(),
            running: false,
        };
        if cluster.start() {
            Some(cluster)
        } else {
            None
        }
    }

    /// Starts (again) on the same port; waits until it accepts connections.
    pub fn start(&mut self) -> bool {
        let data = self.dir.join("data");
        let ok = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "-t", "30", "start"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        self.running = ok;
        ok
    }

    /// Fast shutdown (clients are disconnected), waits until it is down.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let _ = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        self.running = false;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{nanos}", N.fetch_add(1, Ordering::Relaxed))
}

impl Server {
    /// The shared server if it answers, else a throwaway cluster; None (with a loud message)
    /// when neither is possible.
    pub fn get() -> Option<Arc<Server>> {
        if psql("127.0.0.1", 5432, "postgres", "SELECT 1").is_ok() {
            return Some(Arc::new(Server {
                host: "127.0.0.1".into(),
                port: 5432,
                cluster: None,
            }));
        }
        match Cluster::start_new() {
            Some(c) => Some(Arc::new(Server {
                host: "127.0.0.1".into(),
                port: c.port,
                cluster: Some(c),
            })),
            None => {
                eprintln!(
                    "\n!!!!! SKIPPED: no PostgreSQL on 127.0.0.1:5432 and no initdb/pg_ctl to start one !!!!!\n"
                );
                None
            }
        }
    }

    /// A throwaway cluster of its own (for tests that stop the server).
    pub fn throwaway() -> Option<Server> {
        match Cluster::start_new() {
            Some(c) => Some(Server {
                host: "127.0.0.1".into(),
                port: c.port,
                cluster: Some(c),
            }),
            None => {
                eprintln!("\n!!!!! SKIPPED: cannot start a throwaway PostgreSQL cluster (initdb/pg_ctl) !!!!!\n");
                None
            }
        }
    }

    pub fn cluster(&mut self) -> Option<&mut Cluster> {
        self.cluster.as_mut()
    }

    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        psql(&self.host, self.port, db, sql)
    }
}

/// A database of one test, dropped (with its connections) on drop.
pub struct TestDb {
    pub server: Arc<Server>,
    pub name: String,
}

impl TestDb {
    /// A new empty database named after the test.
    pub fn new(tag: &str) -> Option<TestDb> {
        let server = Server::get()?;
        Self::on(server, tag)
    }

    /// A new database on a given server.
    pub fn on(server: Arc<Server>, tag: &str) -> Option<TestDb> {
        let name = format!("hs_{tag}_{}_{}", std::process::id(), unique()).to_lowercase();
        server
            .psql("postgres", &format!("CREATE DATABASE {name}"))
            .map_err(|e| panic!("CREATE DATABASE {name}: {e}"))
            .ok()?;
        Some(TestDb { server, name })
    }

    /// URL for `user` (trust auth: any password is accepted and must never be printed).
    pub fn url_as(&self, user: &str, password: Option<&str>) -> String {
        let auth = match password {
            Some(p) => format!("{user}:{p}"),
            None => user.to_string(),
        };
        format!(
            "postgres://{auth}@{}:{}/{}?sslmode=disable",
            self.server.host, self.server.port, self.name
        )
    }

    pub fn url(&self) -> String {
        self.url_as("postgres", None)
    }

    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.server.psql(&self.name, sql)
    }

    /// Polls `sql` until it prints `want` or the timeout passes; returns the last output.
    pub fn wait_for(&self, sql: &str, want: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.psql(sql).unwrap_or_else(|e| e);
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self.server.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

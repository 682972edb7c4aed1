//! Real protocol peers (Kamailio, SIPp, sngrep) run as child processes for the interop tests.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The SIP port Kamailio listens on in the samples' `kamailio.cfg`.
pub const KAMAILIO_PORT: u16 = 5060;

/// A peer process started in its own process group; dropping it stops the whole group (Kamailio
/// forks worker children) with SIGTERM, then SIGKILL if it does not exit within 5 s.
pub struct Peer {
    pub name: String,
    pub child: Child,
    log: PathBuf,
}

impl Peer {
    /// Starts `cmd` with its output in `log_dir/NAME.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Peer {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("peer log");
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Peer {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 40 lines of the peer's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn signal_group(&self, sig: i32) {
        let pgid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the process group of a child we started; no memory preconditions.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }

    /// Waits (bounded) for the peer to exit by itself; returns its exit status.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish within {timeout:?}:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panics with the peer's output when it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early with {status}:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            // The leader is gone; its group may still hold workers.
            self.signal_group(libc::SIGKILL);
            return;
        }
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
        // Kamailio's workers leave with their parent; give the kernel a moment to free the ports.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.name == "kamailio" && port_bound(KAMAILIO_PORT) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether anything on this machine has 127.0.0.1:`port` bound (UDP) or listening (TCP), from
/// /proc/net (the fixed SIP ports of the samples' configuration are shared by several tests).
pub fn port_bound(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    let udp = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    udp.lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some(&local))
        || tcp.lines().skip(1).any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1) == Some(&local.as_str()) && cols.get(3) == Some(&"0A")
        })
}

/// Waits up to 15 s for `peer` to bind `port`, failing with its output if it exits first.
pub fn wait_port(peer: &mut Peer, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !port_bound(port) {
        peer.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} never bound port {port}:\n{}",
            peer.name,
            peer.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The full path of a peer binary, looked up in PATH plus the sbin directories (Debian puts
/// kamailio in /usr/sbin, which is not in every user's PATH).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

//! Benchmark receivers: `udp_sinks N [IDLE_SECS]` binds N UDP sockets on 127.0.0.1 (ports
//! chosen by the kernel, printed one per line as `sink ADDR`), counts datagrams with
//! `recvmmsg`, and once traffic has started and then stopped for IDLE_SECS (default 2) prints
//! `total N` and the count per socket, then exits.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const SLOT: usize = 2048;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let idle: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let counts: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for count in &counts {
        let socks =
            ingest::bind_udp("127.0.0.1:0".parse().expect("addr"), 1, 64 << 20).expect("bind");
        let sock: UdpSocket = socks.into_iter().next().expect("socket");
        println!("sink {}", sock.local_addr().expect("addr"));
        let count = count.clone();
        std::thread::spawn(move || receive(&sock, &count));
    }
    let total = || counts.iter().map(|c| c.load(Relaxed)).sum::<u64>();
    let mut last = 0;
    let mut last_change = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = total();
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if now > 0 && last_change.elapsed() >= Duration::from_secs(idle) {
            break;
        }
    }
    println!("total {last}");
    for (i, c) in counts.iter().enumerate() {
        println!("sink{i} {}", c.load(Relaxed));
    }
}

fn receive(sock: &UdpSocket, count: &AtomicU64) {
    let mut data = vec![0u8; BATCH * SLOT];
    loop {
        let mut iovecs: Vec<libc::iovec> = data
            .chunks_exact_mut(SLOT)
            .map(|s| libc::iovec {
                iov_base: s.as_mut_ptr().cast(),
                iov_len: SLOT,
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: an all-zero mmsghdr is valid; the iovec pointer is set below.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: `headers` has BATCH entries whose iovecs point into `data`, alive for the
        // call.
        let got = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got > 0 {
            count.fetch_add(got as u64, Relaxed);
        }
    }
}

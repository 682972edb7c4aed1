//! The Loki exporter against a real HTTP server on loopback that decodes what Loki would:
//! snappy block compression around a protobuf `logproto.PushRequest`. (No Loki package exists
//! on Debian, so the server here plays Loki's distributor: status codes, tenant header,
//! decoding.)

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector::loki::{self, proto, LokiConfig};
use collector::RecordObserver;
use prost::Message;
use store::{Profile, Record, SipFields};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Received {
    headers: String,
    push: proto::PushRequest,
}

/// A minimal HTTP/1.1 server (keep-alive aware) answering each request with the next status
/// from `script` (then 204), recording decoded pushes.
async fn fake_loki(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>, Arc<Mutex<u32>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(Mutex::new(0u32));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let (g, r) = (got.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (g, r, script) = (g.clone(), r.clone(), script.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let headers = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len: usize = headers
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf[head_end..head_end + len].to_vec();
                    buf.drain(..head_end + len);
                    *r.lock().unwrap() += 1;
                    let status = script.lock().unwrap().next().unwrap_or(204);
                    if status == 204 {
                        let raw = snap::raw::Decoder::new()
                            .decompress_vec(&body)
                            .expect("snappy block");
                        let push = proto::PushRequest::decode(raw.as_slice()).expect("PushRequest");
                        g.lock().unwrap().push(Received {
                            headers: headers.clone(),
                            push,
                        });
                    }
                    let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/loki/api/v1/push"), got, requests)
}

fn sip_record(i: u32, method: &str, status: Option<u16>) -> Record {
    let raw = match status {
        None => format!(
            "{method} sip:bob@example.com SIP/2.0\r\nCall-ID: c{i}\r\nCSeq: 1 {method}\r\n\r\n"
        ),
        Some(s) => format!("SIP/2.0 {s} OK\r\nCall-ID: c{i}\r\nCSeq: 1 {method}\r\n\r\n"),
    };
    Record {
        time_us: 1_700_000_000_000_000 + i64::from(i) * 1000,
        received_us: 1_700_000_000_000_000,
        hep_type: 1,
        hep_version: 3,
        ip_family: 2,
        ip_proto: 17,
        src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        src_port: 5060,
        dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        dst_port: 5060,
        capture_id: 2001,
        node: Some("edge-1".into()),
        correlation_id: Some(format!("c{i}")),
        sid: format!("c{i}"),
        profile: Profile::Call,
        sip: Some(SipFields {
            method: status.map_or(method.to_string(), |s| s.to_string()).into(),
            is_request: status.is_none(),
            status,
            cseq: Some(format!("1 {method}").into()),
            cseq_method: Some(method.into()),
            call_id: Some(format!("c{i}").into()),
            ..SipFields::default()
        }),
        payload_json: None,
        raw: raw.into_bytes(),
    }
}

fn log_record(i: u32) -> Record {
    let mut r = sip_record(i, "INVITE", None);
    r.hep_type = 100;
    r.sip = None;
    r.raw = b"a log line".to_vec();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_snappy_protobuf_with_labels_tenant_and_retries() {
    // The first push fails with 500 and is retried; then Loki accepts.
    let (url, got, requests) = fake_loki(vec![500]).await;
    let shutdown = CancellationToken::new();
    let cfg = LokiConfig {
        enabled: true,
        url,
        tenant: "tenant-a".into(),
        batch_entries: 3,
        batch_wait_ms: 50,
        backoff_min_ms: 10,
        ..LokiConfig::default()
    };
    let (observer, stats, task) = loki::start(cfg, shutdown.clone()).unwrap();
    let records = vec![
        sip_record(1, "INVITE", None),
        sip_record(1, "INVITE", Some(200)),
        log_record(2),
        // Type 5 is not configured: skipped.
        {
            let mut r = log_record(3);
            r.hep_type = 5;
            r
        },
        sip_record(4, "BYE", None),
    ];
    observer.on_stored(&records);
    for _ in 0..200 {
        if stats.sent() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.sent(), 4, "dropped {:?}", stats.dropped());
    assert!(stats.retries() >= 1);
    assert!(*requests.lock().unwrap() >= 3);
    let got = got.lock().unwrap().clone();
    let mut lines = Vec::new();
    for r in &got {
        let h = r.headers.to_ascii_lowercase();
        assert!(h.contains("x-scope-orgid: tenant-a"), "{h}");
        assert!(h.contains("content-type: application/x-protobuf"));
        for s in &r.push.streams {
            for e in &s.entries {
                lines.push((
                    s.labels.clone(),
                    e.timestamp.clone().unwrap(),
                    e.line.clone(),
                ));
            }
        }
    }
    // The INVITE and its 200 share a timestamp and travel in different streams: order the
    // request first so the assertions do not depend on stream order.
    lines.sort_by_key(|(labels, t, _)| (t.seconds, t.nanos, labels.contains("response=")));
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0].0,
        r#"{job="heplify-server", method="INVITE", node="edge-1", type="sip"}"#
    );
    assert!(lines[0].2.starts_with("INVITE sip:bob@example.com"));
    assert_eq!(lines[0].1.seconds, 1_700_000_000);
    assert_eq!(lines[0].1.nanos, 1_000_000);
    assert_eq!(
        lines[1].0,
        r#"{job="heplify-server", method="INVITE", node="edge-1", response="200", type="sip"}"#
    );
    assert_eq!(
        lines[2].0,
        r#"{job="heplify-server", node="edge-1", type="log"}"#
    );
    assert_eq!(lines[2].2, "a log line");
    shutdown.cancel();
    task.await.unwrap();
    let mut text = String::new();
    stats.render(&mut text);
    assert!(text.contains("hepstack_loki_entries_sent_total 4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_batches_and_a_full_queue_are_counted_drops() {
    let (url, _got, _requests) = fake_loki(vec![400]).await;
    let shutdown = CancellationToken::new();
    let cfg = LokiConfig {
        enabled: true,
        url,
        batch_entries: 2,
        batch_wait_ms: 20,
        queue_entries: 4,
        ..LokiConfig::default()
    };
    let (observer, stats, task) = loki::start(cfg, shutdown.clone()).unwrap();
    // 2 entries: rejected with 400, never retried.
    observer.on_stored(&[
        sip_record(1, "OPTIONS", None),
        sip_record(2, "OPTIONS", None),
    ]);
    for _ in 0..200 {
        if stats.dropped().2 == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.dropped().2, 2);
    assert_eq!(stats.retries(), 0);
    // A burst larger than the queue: the excess is dropped, counted, never blocking.
    let burst: Vec<Record> = (0..50)
        .map(|i| sip_record(10 + i, "OPTIONS", None))
        .collect();
    observer.on_stored(&burst);
    let (full, _, _) = stats.dropped();
    assert!(full > 0 && full <= 50, "{full}");
    assert_eq!(stats.queued() + full, 52);
    shutdown.cancel();
    task.await.unwrap();
}

#[test]
fn bad_url_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = LokiConfig {
            url: "ftp://x".into(),
            ..LokiConfig::default()
        };
        assert!(loki::start(cfg, CancellationToken::new()).is_err());
    });
}

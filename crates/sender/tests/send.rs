//! Sending for real: UDP, TCP and TLS to loopback receivers, reconnection, rate limiting,
//! dry runs, and replays of the real samples checked against their independent decode.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::net::UdpSocket as StdUdpSocket;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sender::{
    HepDirReader, HepSender, HepSource, HepstreamReader, HepstreamWriter, MessageSource, Overrides,
    Pacing, PcapHepReader, ReplaySource, RunOptions, SenderConfig, Sink, Synth, SynthConfig,
    SynthSource, Target, TlsOptions,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples")
}

fn synth_source(seed: u64, calls: u64) -> SynthSource {
    let synth = Synth::new(SynthConfig {
        seed,
        b_legs: true,
        ..SynthConfig::default()
    });
    SynthSource::new(synth, Some(calls), None).unwrap()
}

/// What a synthetic run sends, collected without the network (through a dry run).
async fn expected_messages(seed: u64, calls: u64) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.hepstream");
    let mut sink = file_sink(&path);
    let mut source = synth_source(seed, calls);
    sender::run(
        &mut source,
        &mut sink,
        RunOptions::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    drop(sink);
    read_hepstream(&path)
}

fn file_sink(path: &Path) -> Sink {
    let file = File::create(path).unwrap();
    Sink::Hepstream {
        writer: HepstreamWriter::new(Box::new(BufWriter::new(file))),
        name: path.display().to_string(),
    }
}

fn read_hepstream(path: &Path) -> Vec<Vec<u8>> {
    let mut reader = HepstreamReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(m) = reader.next_hep().unwrap() {
        out.push(m.bytes);
    }
    out
}

/// A UDP receiver on loopback that collects `expected` datagrams (or stops after 10 s idle).
fn udp_receiver(expected: usize) -> (String, thread::JoinHandle<Vec<Vec<u8>>>) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.set_recv_buffer_size(8 << 20).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let socket: StdUdpSocket = socket.into();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("udp://{}", socket.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while got.len() < expected {
            match socket.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(_) => break,
            }
        }
        got
    });
    (url, handle)
}

/// Accept one connection at a time and return every HEP frame received until `expected`
/// frames arrived (or the peer closed the last connection).
async fn stream_frames<S: tokio::io::AsyncRead + Unpin>(
    mut stream: S,
    framer: &mut hep::StreamFramer,
    out: &mut Vec<Vec<u8>>,
    expected: usize,
) {
    let mut buf = vec![0u8; 1 << 16];
    while out.len() < expected {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Err(e) => {
                eprintln!("server read error: {e}");
                break;
            }
            Ok(n) => n,
        };
        framer.push(&buf[..n]).unwrap();
        while let Some(frame) = framer.next_frame() {
            out.push(frame.to_vec());
        }
    }
}

#[tokio::test]
async fn udp_delivers_every_message_in_order() {
    let expected = expected_messages(11, 60).await;
    let (url, receiver) = udp_receiver(expected.len());
    let target: Target = url.parse().unwrap();
    let mut sink = Sink::Hep(Box::new(
        HepSender::connect(target, SenderConfig::default())
            .await
            .unwrap(),
    ));
    let mut source = synth_source(11, 60);
    // A moderate rate keeps loopback loss out of the picture; the count decides.
    let options = RunOptions {
        pacing: Some(Pacing::Rate {
            per_second: 20_000.0,
            burst: None,
        }),
        ..RunOptions::default()
    };
    let summary = sender::run(&mut source, &mut sink, options, &CancellationToken::new())
        .await
        .unwrap();
    let got = receiver.join().unwrap();
    assert_eq!(summary.messages as usize, expected.len());
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "UDP delivered other bytes");
    assert_eq!(summary.udp_errors, 0);
    assert!(summary.scenarios.as_ref().unwrap().values().sum::<u64>() >= 60);
    let invites: u64 = summary.by_kind["INVITE"];
    // 60 calls, each with an A-leg and a B-leg INVITE.
    assert_eq!(invites, 120);
    assert_eq!(
        summary.bytes,
        expected.iter().map(|m| m.len() as u64).sum::<u64>()
    );
}

#[tokio::test]
async fn tcp_delivers_every_message_in_order() {
    let expected = expected_messages(12, 200).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let n = expected.len();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut framer = hep::StreamFramer::new(hep::FramerConfig::default());
        let mut out = Vec::new();
        stream_frames(stream, &mut framer, &mut out, n).await;
        (out, framer.bytes_skipped())
    });
    let mut sink = Sink::Hep(Box::new(
        HepSender::connect(url.parse().unwrap(), SenderConfig::default())
            .await
            .unwrap(),
    ));
    let mut source = synth_source(12, 200);
    let summary = sender::run(
        &mut source,
        &mut sink,
        RunOptions::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let Sink::Hep(client) = sink else {
        unreachable!()
    };
    client.close().await.unwrap();
    let (got, skipped) = server.await.unwrap();
    assert_eq!(skipped, 0, "the stream is nothing but HEP frames");
    assert_eq!(summary.messages as usize, n);
    assert_eq!(got.len(), n);
    assert!(got == expected, "TCP delivered other bytes");
}

fn tls_server_config() -> (Arc<rustls::ServerConfig>, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key.into())
    .unwrap();
    (Arc::new(config), cert_pem)
}

async fn tls_round(tls: TlsOptions, seed: u64) -> Result<(), sender::SenderError> {
    let (server_config, _) = tls_server_config();
    tls_round_with(server_config, tls, seed).await
}

async fn tls_round_with(
    server_config: Arc<rustls::ServerConfig>,
    tls: TlsOptions,
    seed: u64,
) -> Result<(), sender::SenderError> {
    let expected = expected_messages(seed, 50).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tls://{}", listener.local_addr().unwrap());
    let n = expected.len();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut out = Vec::new();
        if let Ok(tls) = acceptor.accept(stream).await {
            let mut framer = hep::StreamFramer::new(hep::FramerConfig::default());
            stream_frames(tls, &mut framer, &mut out, n).await;
        }
        out
    });
    let cfg = SenderConfig {
        tls,
        reconnect_attempts: 0,
        connect_timeout_ms: 5_000,
        ..SenderConfig::default()
    };
    let mut sink = Sink::Hep(Box::new(
        HepSender::connect(url.parse().unwrap(), cfg).await?,
    ));
    let mut source = synth_source(seed, 50);
    let summary = sender::run(
        &mut source,
        &mut sink,
        RunOptions::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let Sink::Hep(client) = sink else {
        unreachable!()
    };
    client.close().await?;
    let got = server.await.unwrap();
    assert_eq!(summary.messages as usize, n);
    assert_eq!(got.len(), n);
    assert!(got == expected, "TLS delivered other bytes");
    Ok(())
}

#[tokio::test]
async fn tls_with_a_trusted_ca_and_with_insecure() {
    // Trusting the self-signed certificate as CA, name checked against "localhost".
    let (server_config, cert_pem) = tls_server_config();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert_pem).unwrap();
    tls_round_with(
        server_config,
        TlsOptions {
            ca_file: Some(ca.clone()),
            server_name: Some("localhost".into()),
            ..TlsOptions::default()
        },
        21,
    )
    .await
    .unwrap();

    // Lab mode: no verification.
    tls_round(
        TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        },
        22,
    )
    .await
    .unwrap();

    // A CA that did not sign the server's certificate is refused.
    let (_, other_pem) = tls_server_config();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, other_pem).unwrap();
    let (server_config, _) = tls_server_config();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tls://{}", listener.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = acceptor.accept(stream).await;
    });
    let cfg = SenderConfig {
        tls: TlsOptions {
            ca_file: Some(other),
            server_name: Some("localhost".into()),
            ..TlsOptions::default()
        },
        reconnect_attempts: 0,
        ..SenderConfig::default()
    };
    let err = HepSender::connect(url.parse().unwrap(), cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, sender::SenderError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn tcp_reconnects_after_the_collector_drops_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let marker: Vec<u8> = hep::HepMessage {
        proto_type: Some(100),
        payload: Some(b"marker after reconnect".to_vec()),
        ..hep::HepMessage::default()
    }
    .encode_to_vec()
    .unwrap();
    let marker_copy = marker.clone();
    let server = tokio::spawn(async move {
        // First connection: read one message, then hang up.
        let (mut first, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = first.read(&mut buf).await;
        drop(first);
        // Second connection: collect until the marker shows up.
        let (second, _) = listener.accept().await.unwrap();
        let mut framer = hep::StreamFramer::new(hep::FramerConfig::default());
        let mut out = Vec::new();
        let mut stream = second;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            framer.push(&buf[..n]).unwrap();
            while let Some(frame) = framer.next_frame() {
                out.push(frame.to_vec());
            }
            if out.contains(&marker_copy) {
                break;
            }
        }
        out
    });
    let cfg = SenderConfig {
        reconnect_backoff_ms: 10,
        reconnect_attempts: 20,
        ..SenderConfig::default()
    };
    let mut client = HepSender::connect(url.parse().unwrap(), cfg).await.unwrap();
    let filler = hep::HepMessage {
        proto_type: Some(100),
        payload: Some(b"filler".to_vec()),
        ..hep::HepMessage::default()
    }
    .encode_to_vec()
    .unwrap();
    // Keep writing until the broken connection is noticed and replaced (bounded).
    for _ in 0..500 {
        client.send(&filler).await.unwrap();
        client.flush().await.unwrap();
        if client.stats().reconnects > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.stats().reconnects, 1);
    client.send(&marker).await.unwrap();
    client.flush().await.unwrap();
    let got = server.await.unwrap();
    assert_eq!(got.last(), Some(&marker));
    assert!(got[..got.len() - 1].iter().all(|f| *f == filler));
}

#[tokio::test]
async fn connecting_to_nothing_fails_cleanly() {
    // Bind then drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = SenderConfig {
        reconnect_attempts: 0,
        ..SenderConfig::default()
    };
    let err = HepSender::connect(format!("tcp://127.0.0.1:{port}").parse().unwrap(), cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, sender::SenderError::Connect { .. }));
}

#[tokio::test]
async fn rate_limit_bounds_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = file_sink(&dir.path().join("rate.hepstream"));
    let synth = Synth::new(SynthConfig::default());
    let mut source = SynthSource::new(synth, None, None).unwrap();
    let rate = 2_000.0;
    let burst = 20;
    let started = Instant::now();
    let summary = sender::run(
        &mut source,
        &mut sink,
        RunOptions {
            pacing: Some(Pacing::Rate {
                per_second: rate,
                burst: Some(burst),
            }),
            count: Some(100_000),
            duration: Some(Duration::from_millis(400)),
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    // Never more than the bucket allows, however fast or slow the machine is.
    let bound = (rate * elapsed).ceil() as u64 + u64::from(burst);
    assert!(summary.messages <= bound, "{} > {bound}", summary.messages);
    assert!(summary.messages > 0);

    // Without a duration, `count` is exact.
    let mut sink = file_sink(&dir.path().join("count.hepstream"));
    let mut source = SynthSource::new(Synth::new(SynthConfig::default()), None, None).unwrap();
    let summary = sender::run(
        &mut source,
        &mut sink,
        RunOptions {
            count: Some(1234),
            ..RunOptions::default()
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.messages, 1234);
    drop(sink);
    assert_eq!(
        read_hepstream(&dir.path().join("count.hepstream")).len(),
        1234
    );
}

#[tokio::test]
async fn cancellation_stops_an_endless_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = file_sink(&dir.path().join("x.hepstream"));
    let mut source = SynthSource::new(Synth::new(SynthConfig::default()), None, None).unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.cancel();
    });
    let summary = sender::run(
        &mut source,
        &mut sink,
        RunOptions {
            pacing: Some(Pacing::Rate {
                per_second: 100.0,
                burst: None,
            }),
            ..RunOptions::default()
        },
        &cancel,
    )
    .await
    .unwrap();
    assert!(summary.interrupted);
}

/// Payloads of decoded.jsonl, the independent decoder's output, in order.
fn oracle_payloads(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("decoded.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(p) = v.get("payload") {
                return p.as_str().unwrap().to_string();
            }
            v["chunks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "payload")
                .and_then(|c| c["value"].as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

fn find(dir: &Path, pred: impl Fn(&Path) -> bool) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| pred(p))
        .unwrap_or_else(|| panic!("nothing matching in {}", dir.display()))
}

async fn replay_to_file(
    source: Box<dyn HepSource + Send>,
    raw: bool,
    out: &Path,
) -> (sender::Summary, Vec<Vec<u8>>) {
    let mut sink = file_sink(out);
    let mut source = ReplaySource::new(source, raw, Overrides::default());
    let summary = sender::run(
        &mut source,
        &mut sink,
        RunOptions::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    drop(sink);
    (summary, read_hepstream(out))
}

#[tokio::test]
async fn replays_of_the_samples_deliver_exactly_the_recorded_messages() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "kamailio-hep3-udp",
        "kamailio-hep3-tcp",
        "kamailio-hep2-udp",
        "rtpengine-hep3-rtcp",
    ] {
        let dir = samples().join(name);
        let oracle = oracle_payloads(&dir);
        let folder = find(&dir, |p| {
            p.is_dir() && (p.ends_with("datagrams") || p.ends_with("frames"))
        });
        let stream = find(&dir, |p| p.extension().is_some_and(|e| e == "hepstream"));
        let pcap = find(&dir, |p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("hep-") && n.ends_with(".pcap"))
        });
        let mut originals: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "hep"))
            .collect();
        originals.sort();
        let originals: Vec<Vec<u8>> = originals
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert_eq!(originals.len(), oracle.len(), "{name}");

        type Opener<'a> = Box<dyn Fn() -> Box<dyn HepSource + Send> + 'a>;
        let inputs: Vec<(&str, Opener)> = vec![
            (
                "pcap",
                Box::new(|| Box::new(PcapHepReader::open(&pcap).unwrap())),
            ),
            (
                "hep-dir",
                Box::new(|| Box::new(HepDirReader::open(&folder).unwrap())),
            ),
            (
                "hepstream",
                Box::new(|| Box::new(HepstreamReader::open(&stream).unwrap())),
            ),
        ];
        for (kind, open) in &inputs {
            // Re-encoded as HEPv3: same payloads, in the same order.
            let out = tmp.path().join(format!("{name}-{kind}.hepstream"));
            let (summary, sent) = replay_to_file(open(), false, &out).await;
            assert_eq!(summary.messages as usize, oracle.len(), "{name} {kind}");
            assert_eq!(summary.skipped, 0);
            for (i, (bytes, expected)) in sent.iter().zip(&oracle).enumerate() {
                let p = hep::decode(bytes).unwrap();
                assert_eq!(p.version, 3, "{name} {kind} #{i}");
                let payload = String::from_utf8_lossy(p.payload.unwrap());
                assert_eq!(&payload, expected, "{name} {kind} #{i}");
            }
            // Raw: byte-exact as captured.
            let out = tmp.path().join(format!("{name}-{kind}-raw.hepstream"));
            let (summary, sent) = replay_to_file(open(), true, &out).await;
            assert_eq!(summary.messages as usize, originals.len());
            assert!(sent == originals, "{name} {kind} raw: not byte-exact");
        }
    }
}

#[tokio::test]
async fn replay_over_udp_reaches_a_receiver_and_overrides_apply() {
    let dir = samples().join("kamailio-hep3-udp");
    let oracle = oracle_payloads(&dir);
    let (url, receiver) = udp_receiver(oracle.len());
    let mut sink = Sink::Hep(Box::new(
        HepSender::connect(url.parse().unwrap(), SenderConfig::default())
            .await
            .unwrap(),
    ));
    let overrides = Overrides {
        node_name: Some("replayer".into()),
        capture_id: Some(77),
        auth_key: None,
    };
    let mut source = ReplaySource::new(
        Box::new(PcapHepReader::open(&dir.join("hep-udp9060.pcap")).unwrap()),
        false,
        overrides,
    );
    let summary = sender::run(
        &mut source,
        &mut sink,
        RunOptions {
            pacing: Some(Pacing::Original { speed: 1000.0 }),
            ..RunOptions::default()
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let got = receiver.join().unwrap();
    assert_eq!(summary.messages as usize, oracle.len());
    assert_eq!(got.len(), oracle.len());
    assert_eq!(summary.by_kind["LOG"], 23);
    assert_eq!(summary.by_kind.values().sum::<u64>(), 305);
    for (bytes, expected) in got.iter().zip(&oracle) {
        let p = hep::decode(bytes).unwrap();
        assert_eq!(p.node_name, Some(&b"replayer"[..]));
        assert_eq!(p.capture_id, Some(77));
        // The original auth key is kept.
        assert_eq!(p.auth_key, Some(&b"myHep"[..]));
        assert_eq!(String::from_utf8_lossy(p.payload.unwrap()), *expected);
    }
}

#[test]
fn the_hepstream_reader_refuses_bad_records() {
    let bad_len = [0xffu8, 0xff, 0xff, 0xff];
    let mut r = HepstreamReader::new(&bad_len[..], Path::new("x"));
    assert!(r.next_hep().is_err());
    let cut = [0u8, 0, 0, 10, 1, 2];
    let mut r = HepstreamReader::new(&cut[..], Path::new("x"));
    assert!(r.next_hep().is_err());
    let mut r = HepstreamReader::new(&[][..], Path::new("x"));
    assert!(r.next_hep().unwrap().is_none());
    let mut bytes = Vec::new();
    File::open(samples().join("kamailio-hep3-udp/datagrams.hepstream"))
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let mut r = HepstreamReader::new(&bytes[..], Path::new("x"));
    let mut n = 0;
    while r.next_hep().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 305);
}

#[test]
fn synth_source_limits() {
    let mut source = SynthSource::new(
        Synth::new(SynthConfig {
            mix: "call=1,register=1".parse().unwrap(),
            ..SynthConfig::default()
        }),
        Some(10),
        None,
    )
    .unwrap();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        source.fill(&mut out, 100).unwrap();
        if out.len() == before {
            break;
        }
    }
    let scenarios = source.scenarios().unwrap();
    assert_eq!(scenarios["call"], 10);
    let invites = out.iter().filter(|m| m.kind == "INVITE").count();
    assert_eq!(invites, 10);

    let mut source = SynthSource::new(Synth::new(SynthConfig::default()), None, Some(25)).unwrap();
    let mut out = Vec::new();
    source.fill(&mut out, 100_000).unwrap();
    assert_eq!(source.scenarios().unwrap().values().sum::<u64>(), 25);

    let err = SynthSource::new(
        Synth::new(SynthConfig {
            mix: "options=1".parse().unwrap(),
            ..SynthConfig::default()
        }),
        Some(1),
        None,
    );
    assert!(err.is_err());
}

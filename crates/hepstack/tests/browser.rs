//! The web UI end to end in a real headless Chromium: `hepstack serve` fed with the real samples
//! and synthetic A/B-leg calls with RTCP, driven over the W3C WebDriver protocol through
//! `/usr/bin/chromedriver`. Logs in, searches a sample call, opens its flow (both legs, RTCP
//! charts, message detail), exports the PCAP with the browser's session and parses it back.
//!
//! Screenshots of the main pages go to `$CARGO_TARGET_TMPDIR/screenshots/`; with
//! `HEPSTACK_UPDATE_SCREENSHOTS=1` they are also copied to `docs/screenshots/`.
//! Without chromium/chromedriver the test is skipped loudly, or fails when
//! `HEPSTACK_REQUIRE_PEERS=1`.

mod common;

use std::io::Cursor;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use capture::{DefragConfig, Defragmenter, PacketSource, Timestamp};
use common::{samples, send, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// W3C WebDriver's key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(20);

/// A chromedriver child process, killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = ureq::get(&format!("{}/status", driver.base)).call() {
                let status: Value = r.into_json().expect("status json");
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One browser session.
struct Browser {
    url: String,
    shots: PathBuf,
}

fn webdriver_call(req: ureq::Request, body: Option<Value>) -> Value {
    let result = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match result {
        Ok(r) => r.into_json::<Value>().expect("webdriver json")["value"].take(),
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            panic!("webdriver {code}: {text}")
        }
        Err(e) => panic!("webdriver transport: {e}"),
    }
}

impl Browser {
    fn new(driver: &Driver, shots: PathBuf) -> Browser {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1600,1000", "--force-prefers-reduced-motion", "--lang=en-US"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let value = webdriver_call(
            ureq::post(&format!("{}/session", driver.base)).timeout(Duration::from_secs(60)),
            Some(caps),
        );
        let id = value["sessionId"].as_str().expect("session id");
        Browser {
            url: format!("{}/session/{id}", driver.base),
            shots,
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        webdriver_call(
            ureq::post(&format!("{}{path}", self.url)).timeout(Duration::from_secs(60)),
            Some(body),
        )
    }

    fn get(&self, path: &str) -> Value {
        webdriver_call(
            ureq::get(&format!("{}{path}", self.url)).timeout(Duration::from_secs(60)),
            None,
        )
    }

    fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// The element matching `css`, waiting for it: pages render after their API calls answer.
    fn find(&self, css: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = match ureq::post(&format!("{}/element", self.url))
                .timeout(Duration::from_secs(60))
                .send_json(json!({"using": "css selector", "value": css}))
            {
                Ok(r) => r.into_json::<Value>().expect("webdriver json")["value"].take(),
                // 404 "no such element": not rendered yet.
                Err(ureq::Error::Status(404, r)) => {
                    serde_json::from_str(&r.into_string().unwrap_or_default())
                        .unwrap_or(Value::Null)
                }
                Err(e) => panic!("webdriver: {e}"),
            };
            if let Some(id) = v[ELEMENT_KEY].as_str().or_else(|| v["ELEMENT"].as_str()) {
                return id.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no element {css:?} after 20 s: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Fills search fields (`#f-<name>`), searches and waits for the result total `total`.
    fn search_for(&self, fields: &[(&str, &str)], total: &str) {
        for (name, value) in fields {
            self.type_into(&format!("#f-{name}"), value);
        }
        self.click("#search-submit");
        self.wait_for(
            &format!("{total} for {fields:?}"),
            &format!("document.querySelector('#result-total').textContent === '{total}'"),
        );
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/clear"), json!({}));
        self.post(&format!("/element/{id}/value"), json!({ "text": text }));
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    fn js_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({"script": script, "args": args}))
    }

    /// Polls a JS expression until it is truthy; returns its value.
    fn wait_for(&self, what: &str, expr: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.js(&format!("return ({expr});"), json!([]));
            if !(v.is_null() || v == false || v == 0 || v == "") {
                return v;
            }
            if Instant::now() > deadline {
                let body = self.js("return document.body.innerText.slice(0, 2000)", json!([]));
                panic!("timed out waiting for {what} ({expr}); page: {body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.get(&format!("/element/{id}/text"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn screenshot(&self, name: &str) {
        let png = self.get("/screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("screenshot base64"))
            .expect("base64");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).expect("write screenshot");
    }

    /// Browser console errors that are bugs (uncaught exceptions), not expected HTTP 401s.
    fn script_errors(&self) -> Vec<String> {
        let logs = match ureq::post(&format!("{}/se/log", self.url))
            .send_json(json!({"type": "browser"}))
        {
            Ok(r) => r
                .into_json::<Value>()
                .map(|mut v| v["value"].take())
                .unwrap_or_default(),
            Err(e) => {
                eprintln!("browser console log not available from chromedriver: {e}");
                return Vec::new();
            }
        };
        logs.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .filter_map(|e| e["message"].as_str())
                    .filter(|m| !m.contains("Failed to load resource"))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn quit(&self) {
        let _ = ureq::delete(&self.url).call();
    }

    /// Ends the session, fails on script errors in the browser, and with
    /// `HEPSTACK_UPDATE_SCREENSHOTS=1` copies the test's screenshots `names` to
    /// `docs/screenshots/`.
    fn finish(&self, shots: &Path, names: &[&str]) {
        let errors = self.script_errors();
        self.quit();
        assert!(
            errors.is_empty(),
            "script errors in the browser: {errors:#?}"
        );
        if std::env::var("HEPSTACK_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
            std::fs::create_dir_all(&docs).expect("docs/screenshots");
            for name in names {
                let file = format!("{name}.png");
                std::fs::copy(shots.join(&file), docs.join(&file)).expect("copy screenshot");
            }
        }
    }
}

fn peers_present() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("HEPSTACK_REQUIRE_PEERS").as_deref() != Ok("1"),
            "HEPSTACK_REQUIRE_PEERS=1 but {CHROMIUM} or {CHROMEDRIVER} is missing"
        );
        eprintln!(
            "\n*** SKIPPED browser test: {CHROMIUM} or {CHROMEDRIVER} not installed \
             (apt install chromium chromium-driver) ***\n"
        );
    }
    present
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every UDP/TCP payload of a PCAP file, in file order.
fn pcap_payloads(bytes: &[u8]) -> Vec<(Vec<u8>, Option<u16>, Option<u16>)> {
    let mut reader = capture::open(Cursor::new(bytes)).expect("PCAP header");
    let mut defrag = Defragmenter::new(DefragConfig::default());
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet().expect("PCAP record") {
        let decoded = capture::decode_packet(p.link_type, Timestamp::EPOCH, p.data, &mut defrag)
            .expect("decodable frame");
        if let Some(d) = decoded {
            if !d.payload().is_empty() {
                out.push((d.payload().to_vec(), d.src_port(), d.dst_port()));
            }
        }
    }
    out
}

/// The screenshot folder, a data folder and `hepstack serve` on it with B-legs tied to their
/// A-leg by the Call-ID in `X-CID` (as the synthetic traffic and the crafted calls carry it);
/// `None` when the browser is not installed.
fn setup() -> Option<(PathBuf, tempfile::TempDir, Server)> {
    if !peers_present() {
        return None;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let data = tempfile::tempdir().expect("tmp");
    let env = [(
        "HEPSTACK_HEP__PIPELINE__ALEG_HEADERS",
        r#"[{ header = "X-CID" }]"#,
    )];
    let server = Server::start(data.path(), &[], &env);
    Some((shots, data, server))
}

#[test]
fn the_ui_logs_in_searches_shows_every_leg_with_rtcp_and_exports_a_pcap() {
    let Some((shots, _data, mut server)) = setup() else {
        return;
    };
    let udp = format!("udp://{}", server.addr("hep-udp"));
    let tcp = format!("tcp://{}", server.addr("hep-tcp"));
    for dir in ["kamailio-hep3-udp", "rtpengine-hep3-rtcp"] {
        let path = samples().join(dir).join("datagrams");
        send(&[
            "--to",
            &udp,
            "--hep-dir",
            path.to_str().expect("path"),
            "--rate",
            "2000",
        ]);
    }
    let out = send(&[
        "--to", &tcp, "--calls", "8", "--rate", "5000", "--seed", "11", "--b-legs", "--json",
    ]);
    let summary: Value =
        serde_json::from_str(out.lines().last().expect("summary")).expect("json summary");
    let synthetic = summary["messages"].as_u64().expect("messages sent");
    // 298 distinct Kamailio messages of 305 (the collector deduplicates the ACKs Kamailio
    // traces twice), and 6 RTCP reports.
    let want = synthetic + 6 + 298;
    let total = server.wait_total("", want, Duration::from_secs(30));
    assert!(total >= want, "stored {total} of at least {want}");

    // The sample call to search for: an answered Kamailio INVITE (capture time yesterday).
    let calls = server.get("/api/v1/calls?limit=1000&from=0&to=4102444800000&method=INVITE");
    let items = calls["items"].as_array().expect("calls");
    let sample = items
        .iter()
        .find(|c| c["status"] == 200 && c["start_us"].as_i64().unwrap_or(0) < 1_795_400_000_000_000)
        .expect("an answered sample call");
    let sample_id = sample["call_id"].as_str().expect("call id").to_string();
    let sample_flow = server.get(&format!("/api/v1/calls/{}/flow", urlencode(&sample_id)));
    let sample_msgs = sample_flow["messages"].as_array().expect("messages").len();

    // A synthetic call with its B-leg and RTCP.
    let bleg_call = items
        .iter()
        .filter(|c| c["status"] == 200)
        .filter_map(|c| c["call_id"].as_str())
        .find_map(|id| {
            let flow = server.get(&format!("/api/v1/calls/{}/flow", urlencode(id)));
            let legs = flow["legs"].as_array().map_or(0, Vec::len);
            let qos = flow["qos"].as_array().map_or(0, Vec::len);
            (legs >= 2 && qos > 0).then(|| (id.to_string(), flow))
        })
        .expect("a synthetic call with two legs and RTCP");
    let (bleg_id, bleg_flow) = bleg_call;

    let driver = Driver::start();
    let browser = Browser::new(&driver, shots.clone());
    let base = server.url("");

    // Any page without a session lands on the login form.
    browser.goto(&format!("{base}/search"));
    browser.wait_for("login form", "document.querySelector('#login-form')");
    assert!(browser.js("return location.pathname", json!([])) == "/login");
    browser.type_into("#login-username", "admin");
    browser.type_into("#login-password", "not the password");
    browser.click("#login-submit");
    browser.wait_for(
        "login error",
        "document.querySelector('#login-error').textContent.includes('invalid')",
    );
    browser.screenshot("01-login");
    browser.type_into("#login-password", ADMIN_PASSWORD);
    browser.click("#login-submit");
    browser.wait_for("search page", "document.querySelector('#search-form')");

    // The presets count back from now and the sample keeps its capture time (November
    // 2026), so search an absolute range from an hour before it to an hour from now.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let sample_ms = sample["start_us"].as_i64().expect("start") / 1000;
    browser.goto(&format!(
        "{base}/search?from={}&to={}",
        sample_ms - 3_600_000,
        now_ms + 3_600_000
    ));
    browser.wait_for("search page", "document.querySelector('#search-form')");
    browser.type_into("#f-callid", &sample_id);
    browser.click("#search-submit");
    browser.wait_for(
        "one call found",
        "document.querySelector('#result-total').textContent.startsWith('1 call')",
    );
    let row = browser.text("#result-table tbody tr");
    assert!(row.contains("INVITE") && row.contains("200"), "{row}");
    browser.js(
        "document.querySelector('#f-callid').value=''; document.querySelector('#search-submit').click()",
        json!([]),
    );
    browser.wait_for(
        "all calls",
        "document.querySelectorAll('#result-table tbody tr').length > 20",
    );
    browser.screenshot("02-search-calls");
    browser.click("#view-messages");
    browser.wait_for(
        "messages view",
        "document.querySelector('#result-total').textContent.includes('messages')",
    );
    let total_text = browser.text("#result-total");
    let shown: u64 = total_text
        .split_whitespace()
        .next()
        .and_then(|n| n.replace([',', '.', '\u{a0}'], "").parse().ok())
        .expect("a total");
    assert!(shown >= 300, "true total of the range: {total_text}");
    browser.screenshot("03-search-messages");

    // Open the sample call from the calls view and check its ladder.
    browser.click("#view-calls");
    browser.type_into("#f-callid", &sample_id);
    browser.click("#search-submit");
    browser.wait_for(
        "one call found",
        "document.querySelector('#result-total').textContent.startsWith('1 call')",
    );
    browser.click("#result-table tbody tr");
    browser.wait_for("ladder", "document.querySelector('#ladder')");
    let arrows = browser.js(
        "return document.querySelectorAll('#ladder g.msg').length",
        json!([]),
    );
    assert_eq!(
        arrows.as_u64(),
        Some(sample_msgs as u64),
        "one arrow per message"
    );
    let path = browser.js("return location.pathname", json!([]));
    assert_eq!(path, format!("/call/{}", urlencode(&sample_id)));

    // The B-leg call through its shareable link: both legs, message detail, RTCP charts.
    browser.goto(&format!("{base}/call/{}", urlencode(&bleg_id)));
    browser.wait_for("ladder", "document.querySelector('#ladder')");
    let roles = browser.js(
        "return [...document.querySelectorAll('#legs .leg')].map(l => l.dataset.role)",
        json!([]),
    );
    let roles: Vec<&str> = roles
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        roles.contains(&"a-leg") && roles.contains(&"b-leg"),
        "both legs shown: {roles:?}"
    );
    let flow_msgs = bleg_flow["messages"].as_array().expect("messages").len();
    let arrows = browser.js(
        "return document.querySelectorAll('#ladder g.msg').length",
        json!([]),
    );
    assert_eq!(arrows.as_u64(), Some(flow_msgs as u64));
    let leg_of_arrows = browser.js(
        "return new Set([...document.querySelectorAll('#ladder rect.legbar')].map(r => r.getAttribute('fill'))).size",
        json!([]),
    );
    assert!(
        leg_of_arrows.as_u64().unwrap_or(0) >= 2,
        "arrows of both legs: {leg_of_arrows}"
    );
    browser.click("#ladder g.msg");
    browser.wait_for(
        "message detail",
        "document.querySelector('#detail-raw .h-method')",
    );
    let raw = browser.text("#detail-raw");
    assert!(raw.starts_with("INVITE "), "{raw}");
    browser.js(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'j'}))",
        json!([]),
    );
    browser.wait_for(
        "next message selected",
        "document.querySelectorAll('#ladder g.msg.sel').length === 1 && document.querySelector('#ladder g.msg.sel').dataset.i === '1'",
    );
    browser.screenshot("04-call-flow");
    browser.click("#tab-qos");
    browser.wait_for(
        "QoS charts",
        "document.querySelector('#qos .stream svg circle')",
    );
    let streams = browser.js(
        "return document.querySelectorAll('#qos section.stream').length",
        json!([]),
    );
    assert!(streams.as_u64().unwrap_or(0) >= 1, "RTCP streams shown");
    browser.screenshot("05-call-qos");

    // The real rtpengine RTCP (no SIP in the sample): the QoS tab opens by itself.
    browser.goto(&format!(
        "{base}/call/{}",
        urlencode("rtpe-call-0001@127.0.0.1")
    ));
    browser.wait_for("QoS", "document.querySelector('#qos .stream svg circle')");
    let mos = browser.text("#qos .stream .stats");
    assert!(mos.contains("MOS") && mos.contains("Jitter"), "{mos}");

    // Export the PCAP of the B-leg call with the browser's session and parse it back.
    browser.goto(&format!("{base}/call/{}", urlencode(&bleg_id)));
    browser.wait_for("ladder", "document.querySelector('#ladder')");
    let href = browser.js(
        "return document.querySelector('#export-pcap').getAttribute('href')",
        json!([]),
    );
    let href = href.as_str().expect("pcap href").to_string();
    assert_eq!(href, format!("/api/v1/calls/{}/pcap", urlencode(&bleg_id)));
    let fetched = browser.js_async(
        "const done = arguments[arguments.length - 1];
         fetch(arguments[0], {credentials: 'same-origin'})
           .then(async r => {
             const bytes = new Uint8Array(await r.arrayBuffer());
             let bin = '';
             for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
             done({status: r.status, type: r.headers.get('Content-Type'), b64: btoa(bin)});
           })
           .catch(e => done({status: 0, error: String(e)}));",
        json!([href]),
    );
    assert_eq!(fetched["status"], 200, "PCAP export: {fetched}");
    let pcap = base64::engine::general_purpose::STANDARD
        .decode(fetched["b64"].as_str().expect("b64"))
        .expect("base64");
    let payloads = pcap_payloads(&pcap);
    let raws: Vec<&str> = bleg_flow["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["raw"].as_str())
        .collect();
    let mut joined = Vec::new();
    for (p, _, _) in &payloads {
        joined.extend_from_slice(p);
    }
    let joined = String::from_utf8_lossy(&joined);
    for raw in &raws {
        assert!(
            joined.contains(raw),
            "every SIP message of every leg is in the PCAP"
        );
    }

    // The other pages render.
    browser.goto(&format!("{base}/admin/users"));
    browser.wait_for(
        "users table",
        "document.querySelector('#users-table tbody tr')",
    );
    assert!(browser.text("#users-table").contains("admin"));
    browser.screenshot("06-admin-users");
    browser.goto(&format!("{base}/tail"));
    browser.wait_for("tail page", "document.querySelector('#tail-state')");
    browser.screenshot("07-live-tail");
    browser.goto(&format!("{base}/dashboard"));
    browser.wait_for("dashboard", "document.querySelector('#dashboard')");
    browser.screenshot("08-dashboard");

    // Light theme renders too; logging out returns to the login form.
    browser.goto(&format!("{base}/call/{}", urlencode(&bleg_id)));
    browser.wait_for("ladder", "document.querySelector('#ladder')");
    browser.click("#theme-toggle");
    browser.screenshot("09-call-flow-light");
    browser.click("#theme-toggle");
    browser.click("#logout");
    browser.wait_for("login form", "document.querySelector('#login-form')");

    browser.finish(
        &shots,
        &[
            "01-login",
            "02-search-calls",
            "03-search-messages",
            "04-call-flow",
            "05-call-qos",
            "06-admin-users",
            "07-live-tail",
            "08-dashboard",
            "09-call-flow-light",
        ],
    );
    assert!(server.stop().success());
}

/// Sends crafted HEP packets to the collector's UDP listener.
struct HepSender {
    socket: std::net::UdpSocket,
    to: std::net::SocketAddr,
    sent: u64,
}

impl HepSender {
    fn new(to: std::net::SocketAddr) -> HepSender {
        HepSender {
            socket: std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket"),
            to,
            sent: 0,
        }
    }

    /// One packet: HEP type `proto_type` from `src` to `dst` at `time_us`.
    fn send(
        &mut self,
        time_us: i64,
        src: (&str, u16),
        dst: (&str, u16),
        proto_type: u8,
        correlation: Option<&str>,
        payload: &str,
    ) {
        let m = hep::HepMessage {
            ip_family: Some(2),
            ip_proto: Some(17),
            src_ip: Some(src.0.parse().expect("src ip")),
            dst_ip: Some(dst.0.parse().expect("dst ip")),
            src_port: Some(src.1),
            dst_port: Some(dst.1),
            ts_sec: u32::try_from(time_us / 1_000_000).ok(),
            ts_usec: u32::try_from(time_us % 1_000_000).ok(),
            proto_type: Some(proto_type),
            capture_id: Some(31),
            payload: Some(payload.as_bytes().to_vec()),
            correlation_id: correlation.map(|c| c.as_bytes().to_vec()),
            ..hep::HepMessage::default()
        };
        let bytes = m.encode_to_vec().expect("encode HEP");
        self.socket.send_to(&bytes, self.to).expect("send HEP");
        self.sent += 1;
        // Loopback UDP: a short pause keeps the collector's socket buffer from overflowing.
        std::thread::sleep(Duration::from_millis(2));
    }

    /// A SIP message with the dialog headers filled in, extra headers and a body (`extra` then
    /// names its Content-Type).
    #[allow(clippy::too_many_arguments)]
    fn sip(
        &mut self,
        time_us: i64,
        src: (&str, u16),
        dst: (&str, u16),
        start: &str,
        call_id: &str,
        cseq: &str,
        extra: &str,
        body: &str,
    ) {
        let raw = format!(
            "{start}\r\nVia: SIP/2.0/UDP {}:{};branch=z9hG4bK-{}-{}\r\nFrom: <sip:alice@example.com>;tag=a31\r\n\
             To: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            src.0,
            src.1,
            call_id.replace('@', "-"),
            cseq.replace(' ', "-"),
            body.len(),
        );
        self.send(time_us, src, dst, 1, None, &raw);
    }
}

/// Issue 31: method/status lists and the final status in the search form, a Call-ID outside
/// the time range offers its flow, reason phrases stay between their lifelines, a hidden
/// B-leg gives its host columns back, RTCP whose SSRC changes stays one stream with the change
/// marked, distinct chart ticks, unbroken legend entries, plurals, and the exports of a call
/// without SIP (PCAP: 422) and of two legs (SVG: leg marks, the UI's colours).
#[test]
fn the_ui_finds_failed_calls_offers_flows_and_keeps_its_layout() {
    let Some((shots, _data, mut server)) = setup() else {
        return;
    };
    let mut hep = HepSender::new(server.addr("hep-udp"));
    let now_us = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros(),
    )
    .expect("now");
    let base = now_us - 10 * 60 * 1_000_000;
    let s = |ms: i64| base + ms * 1000;
    let (a, b) = (("10.31.0.1", 5060), ("10.31.0.2", 5060));
    let (p_in, p_out, c) = (
        ("10.31.0.3", 5060),
        ("10.31.0.3", 5080),
        ("10.31.0.4", 5060),
    );
    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0";
    const ACK: &str = "ACK sip:bob@example.com SIP/2.0";
    const BYE: &str = "BYE sip:bob@example.com SIP/2.0";
    const REGISTER: &str = "REGISTER sip:example.com SIP/2.0";
    const TRYING: &str = "SIP/2.0 100 trying -- your call is important to us";
    let (long, reg, ua) = ("long-reason@ui31", "reg@ui31", "User-Agent: SIPp/3.7\r\n");
    // (ms after base, from, to, start line, Call-ID, CSeq, extra headers)
    let plain = [
        // A call rejected after a chatty 100 Trying.
        (0, a, b, INVITE, long, "1 INVITE", ""),
        (10, b, a, TRYING, long, "1 INVITE", ""),
        (900, b, a, "SIP/2.0 486 Busy Here", long, "1 INVITE", ""),
        (910, a, b, ACK, long, "1 ACK", ""),
        // A registration challenged, then accepted.
        (10_000, a, b, REGISTER, reg, "1 REGISTER", ua),
        (
            10_010,
            b,
            a,
            "SIP/2.0 401 Unauthorized",
            reg,
            "1 REGISTER",
            "",
        ),
        (10_100, a, b, REGISTER, reg, "2 REGISTER", ua),
        (10_110, b, a, "SIP/2.0 200 OK", reg, "2 REGISTER", ""),
    ];
    for (t, from, to, start, id, cseq, extra) in plain {
        hep.sip(s(t), from, to, start, id, cseq, extra, "");
    }
    // An A-leg through a proxy and its B-leg to a host only the B-leg uses, with SDP.
    let sdp = |ip: &str, port: u16, pts: &str| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pts}\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
    };
    let (offer, answer) = (
        sdp("10.31.0.1", 40000, "8 0 101"),
        sdp("10.31.0.3", 50000, "8 101"),
    );
    let legs = [
        ("a@ui31", a, p_in, "", 20_000),
        ("b@ui31", p_out, c, "X-CID: a@ui31\r\n", 20_050),
    ];
    for (leg, from, to, x, t) in legs {
        let ua = format!("{x}User-Agent: Zoiper 5\r\nContent-Type: application/sdp\r\n");
        let srv = format!("{x}Server: Asterisk PBX 20\r\nContent-Type: application/sdp\r\n");
        hep.sip(s(t), from, to, INVITE, leg, "1 INVITE", &ua, &offer);
        hep.sip(
            s(t + 120),
            to,
            from,
            "SIP/2.0 180 Ringing",
            leg,
            "1 INVITE",
            x,
            "",
        );
        hep.sip(
            s(t + 200),
            to,
            from,
            "SIP/2.0 200 OK",
            leg,
            "1 INVITE",
            &srv,
            &answer,
        );
        hep.sip(s(t + 210), from, to, ACK, leg, "1 ACK", x, "");
        hep.sip(s(t + 5_000), from, to, BYE, leg, "2 BYE", x, "");
        hep.sip(
            s(t + 5_010),
            to,
            from,
            "SIP/2.0 200 OK",
            leg,
            "2 BYE",
            x,
            "",
        );
    }
    // A call three hours ago: outside the default 60-minute window.
    let old = now_us - 3 * 3_600 * 1_000_000;
    hep.sip(old, a, b, INVITE, "old@ui31", "1 INVITE", "", "");
    hep.sip(
        old + 100_000,
        b,
        a,
        "SIP/2.0 200 OK",
        "old@ui31",
        "1 INVITE",
        "",
        "",
    );
    // RTCP only, half a second apart, the reporter's SSRC changing after three reports.
    for i in 0..6i64 {
        let ssrc = if i < 3 { 1111 } else { 2222 };
        let report = format!(
            r#"{{"ssrc":{ssrc},"type":201,"report_count":1,"report_blocks":[{{"source_ssrc":9999,"highest_seq_no":{},"fraction_lost":{},"ia_jitter":{},"packets_lost":{},"lsr":0,"dlsr":0}}]}}"#,
            100 + i * 25,
            i * 3,
            80 + i * 40,
            i
        );
        hep.send(
            s(40_000 + i * 500),
            ("10.31.0.5", 40001),
            ("10.31.0.6", 40001),
            5,
            Some("rtcp-only@ui31"),
            &report,
        );
    }
    let total = server.wait_total("", hep.sent, Duration::from_secs(30));
    assert_eq!(total, hep.sent, "every crafted packet stored");

    // The API answers the searches the form sends.
    let window = format!(
        "from={}&to={}",
        (base - 1_000_000) / 1000,
        now_us / 1000 + 1000
    );
    let count = |server: &mut Server, path: &str| -> u64 {
        server.get(&format!("{path}&{window}"))["total"]
            .as_u64()
            .expect("total")
    };
    assert_eq!(
        count(&mut server, "/api/v1/messages?method=INVITE,%20486"),
        4
    );
    assert_eq!(
        count(&mut server, "/api/v1/messages?method=INVITE&status=486"),
        1
    );
    assert_eq!(count(&mut server, "/api/v1/calls?status=4xx"), 2);
    assert_eq!(
        count(&mut server, "/api/v1/calls?final_status=4xx,5xx,6xx"),
        1
    );
    assert_eq!(count(&mut server, "/api/v1/messages?user_agent=*SIPP*"), 2);

    let driver = Driver::start();
    let browser = Browser::new(&driver, shots.clone());
    let url = server.url("");
    browser.goto(&format!("{url}/login"));
    browser.type_into("#login-username", "admin");
    browser.type_into("#login-password", ADMIN_PASSWORD);
    browser.click("#login-submit");
    browser.wait_for("search page", "document.querySelector('#search-form')");

    // "Show me the failed calls": the final status, not any 4xx on the way.
    browser.goto(&format!("{url}/search?view=calls&range=1h"));
    browser.search_for(&[("final_status", "4xx, 5xx, 6xx")], "1 call");
    let row = browser.text("#result-table tbody tr");
    assert!(
        row.contains("486") && row.contains("long-reason@ui31"),
        "{row}"
    );
    browser.screenshot("10-search-failed-calls");
    browser.search_for(&[("final_status", ""), ("status", "4xx")], "2 calls");
    // Messages: a method list, then a method with a status (the replies to it).
    browser.type_into("#f-status", "");
    browser.click("#view-messages");
    browser.search_for(&[("method", "INVITE, 486")], "4 messages");
    let disabled = browser.js(
        "return document.querySelector('#f-final_status').disabled",
        json!([]),
    );
    assert_eq!(disabled, true, "the final status applies to calls only");
    browser.search_for(&[("method", "INVITE"), ("status", "486")], "1 message");
    // The user agent in any case.
    browser.search_for(
        &[("method", ""), ("status", ""), ("user_agent", "*SIPP*")],
        "2 messages",
    );
    // The search result as CSV: every row, one line each, fields quoted where needed.
    browser.js(
        "window.__csv = []; const make = URL.createObjectURL.bind(URL);
         URL.createObjectURL = (blob) => { blob.text().then(t => window.__csv.push(t)); return make(blob); };",
        json!([]),
    );
    browser.click("#export-csv");
    let csv = browser.wait_for("the CSV file", "window.__csv[0]");
    let csv = csv.as_str().expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("time,method,status,cseq,"), "{csv}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains(",REGISTER,") && l.ends_with(",reg@ui31")),
        "{csv}"
    );
    let fields = browser.js_async(
        "const done = arguments[arguments.length - 1];
         import('/assets/js/search.js').then(m => done([m.csvField('a,\"b\"'), m.csvField('=1+1'), m.csvField(null), m.csvField('x\\ny')]));",
        json!([]),
    );
    assert_eq!(fields, json!(["\"a,\"\"b\"\"\"", "'=1+1", "", "\"x\ny\""]));

    // Several calls ticked in the results open as one ladder.
    browser.goto(&format!("{url}/search?view=calls&range=1h&status=4xx"));
    browser.wait_for(
        "the two calls",
        "document.querySelectorAll('#result-table tbody tr').length === 2",
    );
    browser.click("#result-table tbody tr:nth-child(1) td.pick");
    browser.click("#result-table tbody tr:nth-child(2) td.pick");
    assert_eq!(browser.text("#open-picked"), "Open 2 as one ladder");
    browser.click("#open-picked");
    browser.wait_for(
        "one ladder of both calls",
        "document.querySelectorAll('#ladder g.msg').length === 8 && document.querySelectorAll('#legs .leg').length === 2",
    );
    let search = browser.js("return decodeURIComponent(location.search)", json!([]));
    assert!(
        search.as_str().is_some_and(|q| q.starts_with("?with=")),
        "{search}"
    );
    let pcap = browser.js(
        "return document.querySelector('#export-pcap').getAttribute('href')",
        json!([]),
    );
    assert!(
        pcap.as_str().is_some_and(|h| h.contains("/pcap?with=")),
        "{pcap}"
    );

    // A Call-ID outside the 60-minute window: its flow is offered instead of "Nothing found".
    browser.goto(&format!("{url}/search?view=calls&range=1h"));
    browser.type_into("#f-callid", "old@ui31");
    browser.click("#search-submit");
    browser.wait_for("the flow offered", "document.querySelector('#offer-flow')");
    assert!(browser.text("#results").contains("2 messages"));
    browser.click("#offer-flow");
    browser.wait_for(
        "the old call's ladder",
        "document.querySelectorAll('#ladder g.msg').length === 2",
    );
    assert_eq!(
        browser.js("return decodeURIComponent(location.pathname)", json!([])),
        "/call/old@ui31"
    );

    // Every arrow label stays between its two lifelines.
    browser.goto(&format!("{url}/call/{}", urlencode("long-reason@ui31")));
    browser.wait_for(
        "ladder",
        "document.querySelectorAll('#ladder g.msg').length === 4",
    );
    let spill = browser.js(
        "return [...document.querySelectorAll('#ladder g.msg')].flatMap(g => {
           const line = g.querySelector('line'); const lbl = g.querySelector('text.lbl');
           if (!line || !lbl) return [];
           const lo = Math.min(+line.getAttribute('x1'), +line.getAttribute('x2')) - 9;
           const hi = Math.max(+line.getAttribute('x1'), +line.getAttribute('x2')) + 9;
           const b = lbl.getBBox();
           return (b.x < lo || b.x + b.width > hi) ? [lbl.textContent] : [];
         })",
        json!([]),
    );
    assert_eq!(spill, json!([]), "labels spilling past their lifelines");
    assert!(
        browser
            .js(
                "return document.querySelector('#ladder').textContent",
                json!([])
            )
            .as_str()
            .is_some_and(|t| t.contains("100 trying -- your call is important to us")),
        "the whole reason phrase stays in the tooltip"
    );

    // Hiding the B-leg gives its hosts' columns back.
    browser.goto(&format!("{url}/call/{}", urlencode("a@ui31")));
    browser.wait_for(
        "both legs",
        "document.querySelectorAll('#legs .leg').length === 2",
    );
    let lifelines = "document.querySelectorAll('#ladder line.lifeline').length";
    assert_eq!(browser.js(&format!("return {lifelines}"), json!([])), 4);
    browser.click("#legs .leg[data-role='b-leg']");
    browser.wait_for("A-leg hosts only", &format!("{lifelines} === 2"));
    assert!(browser
        .text("#legs .leg[data-role='a-leg']")
        .contains("6 msgs"));

    // The session-info summary of each leg.
    browser.click("#legs .leg[data-role='b-leg']");
    browser.click("#tab-summary");
    browser.wait_for(
        "summary",
        "document.querySelectorAll('#summary section.summary').length === 2",
    );
    let summary = browser.js(
        "return [...document.querySelectorAll(\"#summary section.summary[data-leg='0'] tr\")]
           .map(r => r.querySelector('th').textContent + ' ' + r.querySelector('td').textContent).join('\\n')",
        json!([]),
    );
    let summary = summary.as_str().expect("summary text");
    for want in [
        "a@ui31",
        "Post-dial delay (to the first 18x) 120 ms",
        "Setup time (to the final reply) 200 ms",
        "Final status 200 OK",
        "talk time 4.8 s (BYE)",
        "Codecs offered audio 40000: PCMA/8000, PCMU/8000, telephone-event/8000",
        "Codecs answered audio 50000: PCMA/8000, telephone-event/8000",
        "Zoiper 5 (10.31.0.1:5060)",
        "Asterisk PBX 20 (10.31.0.3:5060)",
        "Hops (Via entries of the first request) 1",
    ] {
        assert!(summary.contains(want), "{want} in {summary}");
    }
    browser.screenshot("12-call-summary");
    browser.click("#tab-flow");

    // The server-side SVG marks the legs in the UI's colours.
    let svg = browser.js_async(
        "const done = arguments[arguments.length - 1];
         fetch('/api/v1/calls/a%40ui31/flow.svg', {credentials: 'same-origin'})
           .then(async r => done({status: r.status, text: await r.text()}));",
        json!([]),
    );
    assert_eq!(svg["status"], 200);
    let svg = svg["text"].as_str().expect("svg text");
    assert!(
        svg.contains("B-leg of 1") && svg.contains("class=\"legbar\""),
        "{svg}"
    );
    assert!(
        svg.contains("#3b8eea") && svg.contains("#e3b341"),
        "the UI's leg colours"
    );
    assert!(svg.contains("#0969da"), "INVITE in the UI's blue");

    // RTCP whose SSRC changes: one stream, the change marked, distinct ticks; no PCAP.
    browser.goto(&format!("{url}/call/{}", urlencode("rtcp-only@ui31")));
    browser.wait_for("QoS", "document.querySelector('#qos .stream svg circle')");
    assert_eq!(
        browser.js(
            "return document.querySelectorAll('#qos section.stream').length",
            json!([])
        ),
        1
    );
    let change = browser.text("#qos .ssrc-changes");
    assert!(
        change.contains("1111") && change.contains("2222"),
        "{change}"
    );
    assert!(browser
        .text("#qos .stream h3")
        .contains("SSRC changed once"));
    let repeated = browser.js(
        "return [...document.querySelectorAll('#qos .chart svg')].filter(svg => {
           const labels = [...svg.querySelectorAll('text.tick')].map(t => t.textContent);
           return new Set(labels).size !== labels.length || labels.length < 2;
         }).length",
        json!([]),
    );
    assert_eq!(repeated, 0, "every chart has distinct x tick labels");
    browser.screenshot("11-call-qos-ssrc-change");
    assert_eq!(
        browser.js(
            "return document.querySelector('#export-pcap').getAttribute('aria-disabled')",
            json!([])
        ),
        "true"
    );
    let pcap = browser.js_async(
        "const done = arguments[arguments.length - 1];
         fetch('/api/v1/calls/rtcp-only%40ui31/pcap', {credentials: 'same-origin'})
           .then(async r => done({status: r.status, type: r.headers.get('Content-Type'), body: await r.json()}));",
        json!([]),
    );
    assert_eq!(pcap["status"], 422, "{pcap}");
    assert_eq!(pcap["type"], "application/json");
    let error = pcap["body"]["error"].as_str().expect("error");
    assert!(
        error.contains("no SIP messages") && error.contains("6 RTCP records"),
        "{error}"
    );

    // A legend entry keeps its square beside its name in a narrow chart; ticks of a short
    // range are distinct.
    let legend = browser.js_async(
        "const done = arguments[arguments.length - 1];
         import('/assets/js/charts.js').then(m => {
           const box = document.createElement('div');
           box.style.width = '260px';
           document.body.append(box);
           const pts = [[Date.now() - 2000, 1], [Date.now(), 2]];
           box.append(m.lineChart('legend', ['first series', 'second series name', 'third', 'fourth series'].map((name, i) => ({name, cls: 's' + (i + 1), points: pts}))));
           const broken = [...box.querySelectorAll('.legend > span')].filter(item => {
             const square = document.createRange();
             square.selectNodeContents(item.firstChild);
             return Math.abs(square.getBoundingClientRect().top - item.lastElementChild.getBoundingClientRect().top) > 3;
           }).length;
           const ticks = m.timeTicks(Date.now() - 1500, Date.now()).map(t => t.label);
           box.remove();
           done({broken, ticks});
         });",
        json!([]),
    );
    assert_eq!(legend["broken"], 0, "{legend}");
    let ticks: Vec<&str> = legend["ticks"]
        .as_array()
        .expect("ticks")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let distinct: std::collections::BTreeSet<&&str> = ticks.iter().collect();
    assert_eq!((ticks.len(), distinct.len()), (4, 4), "{ticks:?}");

    // Plurals.
    browser.goto(&format!("{url}/admin/users"));
    browser.wait_for("users", "document.querySelector('#users-table tbody tr')");
    let headings = browser.js(
        "return [...document.querySelectorAll('h3')].map(h => h.textContent)",
        json!([]),
    );
    assert!(
        headings
            .as_array()
            .expect("h3")
            .iter()
            .any(|h| h == "1 user"),
        "{headings}"
    );

    // Tokens with an expiry and the time they were last used.
    browser.goto(&format!("{url}/admin/tokens"));
    browser.wait_for("tokens page", "document.querySelector('#token-form')");
    browser.wait_for(
        "no token yet",
        "[...document.querySelectorAll('h3')].some(h => h.textContent === '0 tokens')",
    );
    browser.type_into("#token-name", "ci-export");
    browser.type_into("#token-days", "30");
    browser.click("#token-form button[type=submit]");
    let secret = browser.wait_for(
        "the new token",
        "document.querySelector('#token-secret') && document.querySelector('#token-secret').textContent",
    );
    let secret = secret.as_str().expect("token").to_string();
    browser.wait_for(
        "one token",
        "[...document.querySelectorAll('h3')].some(h => h.textContent === '1 token')",
    );
    let cells = |browser: &Browser| -> Vec<String> {
        browser
            .js(
                "return [...document.querySelectorAll('#tokens-table tbody tr td')].map(td => td.textContent)",
                json!([]),
            )
            .as_array()
            .expect("cells")
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let row = cells(&browser);
    assert_ne!(row[5], "never", "expires in 30 days: {row:?}");
    assert_eq!(row[6], "never", "not used yet: {row:?}");
    let me: Value = ureq::get(&server.url("/api/v1/me"))
        .set("Authorization", &format!("Bearer {secret}"))
        .call()
        .expect("token works")
        .into_json()
        .expect("json");
    assert_eq!(me["username"], "token:ci-export");
    browser.goto(&format!("{url}/admin/tokens"));
    browser.wait_for(
        "tokens table",
        "document.querySelector('#tokens-table tbody tr')",
    );
    let row = cells(&browser);
    assert_ne!(row[6], "never", "last use recorded: {row:?}");

    browser.finish(
        &shots,
        &[
            "10-search-failed-calls",
            "11-call-qos-ssrc-change",
            "12-call-summary",
        ],
    );
    assert!(server.stop().success());
}

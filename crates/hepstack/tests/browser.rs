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

#[test]
fn the_ui_logs_in_searches_shows_every_leg_with_rtcp_and_exports_a_pcap() {
    if !peers_present() {
        return;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    let data = tempfile::tempdir().expect("tmp");
    // Synthetic B-legs carry their A-leg's Call-ID in X-CID.
    let env = [(
        "HEPSTACK_HEP__PIPELINE__ALEG_HEADERS",
        r#"[{ header = "X-CID" }]"#,
    )];
    let mut server = Server::start(data.path(), &[], &env);
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

    let errors = browser.script_errors();
    browser.quit();
    assert!(
        errors.is_empty(),
        "script errors in the browser: {errors:#?}"
    );

    if std::env::var("HEPSTACK_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        for entry in std::fs::read_dir(&shots).expect("shots") {
            let p = entry.expect("entry").path();
            std::fs::copy(&p, docs.join(p.file_name().expect("name"))).expect("copy screenshot");
        }
    }
    assert!(server.stop().success());
}

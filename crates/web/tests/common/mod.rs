//! Test support: a server on 127.0.0.1:0, a client, realistic records, and the real SQLite
//! store in a temporary directory.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use store::{
    BatchOutcome, CallSummary, MessageFilter, Page, Profile, Record, RetentionReport, SipFields,
    SqliteConfig, SqliteStore, Store, StoreError, StoreStats, StoredMessage, User,
};
use tokio_util::sync::CancellationToken;

/// A running server.
pub struct Server {
    pub base: String,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    pub client: reqwest::Client,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Logs in and returns the token.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/v1/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(r.status(), 200, "login as {user}");
        let body: serde_json::Value = r.json().await.expect("login json");
        body["token"].as_str().expect("token").to_string()
    }

    /// GET with a bearer token; returns status and JSON body.
    pub async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let body = r.json().await.expect("json body");
        (status, body)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("join").expect("serve");
    }
}

/// Starts the real server on 127.0.0.1:0 with `admin` / `password` as the admin.
pub async fn start(store: Arc<dyn Store>, config: web::WebConfig, password: &str) -> Server {
    let boot = web::ensure_admin(store.as_ref(), Some(password)).expect("ensure admin");
    assert!(matches!(
        boot,
        web::AdminBootstrap::CreatedFromEnv | web::AdminBootstrap::EnvPasswordIgnored
    ));
    let state = web::AppState::new(store, config, None).expect("state");
    start_router(web::router(state)).await
}

pub async fn start_router(router: axum::Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(web::serve(listener, router, shutdown.clone()));
    Server {
        base: format!("http://{addr}"),
        addr,
        shutdown,
        task,
        client: reqwest::Client::new(),
    }
}

/// Config for tests: no login delay.
pub fn test_config() -> web::WebConfig {
    web::WebConfig {
        login_failure_delay_ms: 0,
        ..web::WebConfig::default()
    }
}

/// A SIP record as the collector would store it.
pub struct Sip<'a> {
    pub time_us: i64,
    pub call_id: &'a str,
    pub method: &'a str,
    pub status: Option<u16>,
    pub cseq_method: &'a str,
    pub from_user: &'a str,
    pub to_user: &'a str,
    pub ruri_user: Option<&'a str>,
    pub src: (&'a str, u16),
    pub dst: (&'a str, u16),
    pub node: &'a str,
    pub aleg_id: Option<&'a str>,
}

impl Sip<'_> {
    pub fn record(&self) -> Record {
        let is_request = self.status.is_none();
        let first_line = match self.status {
            None => format!(
                "{} sip:{}@example.com SIP/2.0",
                self.method,
                self.ruri_user.unwrap_or(self.to_user)
            ),
            Some(s) => format!("SIP/2.0 {s} {}", if s == 200 { "OK" } else { "Reason" }),
        };
        let mut raw = format!(
            "{first_line}\r\nVia: SIP/2.0/UDP {}:{};branch=z9hG4bK-{}\r\n\
             From: <sip:{}@example.com>;tag=ft-{}\r\nTo: <sip:{}@example.com>\r\n\
             Call-ID: {}\r\nCSeq: 1 {}\r\nUser-Agent: test-agent\r\n",
            self.src.0,
            self.src.1,
            self.time_us,
            self.from_user,
            self.call_id,
            self.to_user,
            self.call_id,
            self.cseq_method
        );
        if let Some(a) = self.aleg_id {
            raw.push_str(&format!("X-CID: {a}\r\n"));
        }
        raw.push_str("Content-Length: 0\r\n\r\n");
        let sip = SipFields {
            method: self
                .status
                .map_or(self.method.to_string(), |s| s.to_string())
                .into(),
            is_request,
            status: self.status,
            cseq: Some(format!("1 {}", self.cseq_method).into()),
            cseq_method: Some(self.cseq_method.into()),
            call_id: Some(self.call_id.into()),
            ruri_user: if is_request {
                Some(self.ruri_user.unwrap_or(self.to_user).into())
            } else {
                None
            },
            ruri_domain: is_request.then(|| "example.com".into()),
            from_user: Some(self.from_user.into()),
            from_domain: Some("example.com".into()),
            from_tag: Some(format!("ft-{}", self.call_id).into()),
            to_user: Some(self.to_user.into()),
            to_domain: Some("example.com".into()),
            user_agent: Some("test-agent".into()),
            via_branch: Some(format!("z9hG4bK-{}", self.time_us).into()),
            aleg_id: self.aleg_id.map(Into::into),
            custom_headers: self
                .aleg_id
                .map(|a| vec![("X-CID".to_string(), a.to_string())])
                .unwrap_or_default(),
            ..SipFields::default()
        };
        Record {
            time_us: self.time_us,
            received_us: self.time_us + 100,
            hep_type: 1,
            hep_version: 3,
            ip_family: 2,
            ip_proto: 17,
            src_ip: self.src.0.parse().expect("src ip"),
            src_port: self.src.1,
            dst_ip: self.dst.0.parse().expect("dst ip"),
            dst_port: self.dst.1,
            capture_id: 2001,
            node: Some(self.node.to_string()),
            correlation_id: Some(self.aleg_id.unwrap_or(self.call_id).to_string()),
            sid: self.call_id.to_string(),
            profile: Profile::from_cseq_method(self.cseq_method),
            sip: Some(sip),
            payload_json: None,
            raw: raw.into_bytes(),
        }
    }
}

/// A non-SIP record (RTCP, log, event) correlated to `correlation_id`.
pub fn event(
    time_us: i64,
    hep_type: u8,
    correlation_id: &str,
    raw: &[u8],
    json: Option<&str>,
) -> Record {
    Record {
        time_us,
        received_us: time_us + 50,
        hep_type,
        hep_version: 3,
        ip_family: 2,
        ip_proto: 17,
        src_ip: "127.0.0.1".parse().expect("ip"),
        src_port: 40001,
        dst_ip: "127.0.0.2".parse().expect("ip"),
        dst_port: 30013,
        capture_id: 2003,
        node: Some("rtpengine".into()),
        correlation_id: Some(correlation_id.to_string()),
        sid: correlation_id.to_string(),
        profile: Profile::Default,
        sip: None,
        payload_json: json.map(str::to_string),
        raw: raw.to_vec(),
    }
}

/// The first RTCP payload of the real rtpengine sample (HEP type 5 JSON).
pub fn rtpengine_rtcp_payload() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/samples/rtpengine-hep3-rtcp/decoded.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("rtpengine sample");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl");
        let chunks = v["chunks"].as_array().expect("chunks");
        let is_rtcp = chunks
            .iter()
            .any(|c| c["name"] == "proto_type" && c["value"] == 5);
        let payload = chunks.iter().find(|c| c["name"] == "payload");
        if let (true, Some(p)) = (is_rtcp, payload) {
            if let Some(s) = p["value"].as_str() {
                if s.contains("report_blocks\":[{") {
                    return s.to_string();
                }
            }
        }
    }
    panic!("no RTCP report with blocks in the sample");
}

/// The text of the first log (HEP type 100) message Kamailio's `hlog()` sent in the samples.
pub fn kamailio_log_payload() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/samples/kamailio-hep3-udp/decoded.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("kamailio sample");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl");
        let chunks = v["chunks"].as_array().expect("chunks");
        let is_log = chunks
            .iter()
            .any(|c| c["name"] == "proto_type" && c["value"] == 100);
        let payload = chunks.iter().find(|c| c["name"] == "payload");
        if let (true, Some(p)) = (is_log, payload) {
            if let Some(s) = p["value"].as_str() {
                return s.to_string();
            }
        }
    }
    panic!("no log message in the sample");
}

/// The real SQLite store in a temporary directory, behind a switch that makes every call fail
/// as an unavailable store would (for the 503 paths).
pub struct TestStore {
    inner: SqliteStore,
    pub broken: AtomicBool,
    _dir: tempfile::TempDir,
}

impl TestStore {
    pub fn new() -> Arc<TestStore> {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = SqliteStore::open(SqliteConfig {
            data_dir: dir.path().join("data"),
            ..SqliteConfig::default()
        })
        .expect("open sqlite store");
        Arc::new(TestStore {
            inner,
            broken: AtomicBool::new(false),
            _dir: dir,
        })
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("disk on fire".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for TestStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn insert_batch(&self, batch: &[Record]) -> Result<BatchOutcome, StoreError> {
        self.check()?;
        self.inner.insert_batch(batch)
    }

    fn messages(&self, f: &MessageFilter) -> Result<Page<StoredMessage>, StoreError> {
        self.check()?;
        self.inner.messages(f)
    }

    fn scan(&self, r: &store::ScanRequest) -> Result<store::ScanPage, StoreError> {
        self.check()?;
        self.inner.scan(r)
    }

    fn calls(&self, f: &MessageFilter) -> Result<Page<CallSummary>, StoreError> {
        self.check()?;
        self.inner.calls(f)
    }

    fn call_flow(
        &self,
        call_ids: &[String],
        from_us: Option<i64>,
        to_us: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.check()?;
        self.inner.call_flow(call_ids, from_us, to_us)
    }

    fn enforce_retention(&self, now_us: i64) -> Result<RetentionReport, StoreError> {
        self.check()?;
        self.inner.enforce_retention(now_us)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.check()?;
        self.inner.stats()
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.check()?;
        self.inner.user(name)
    }

    fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_user(user)
    }

    fn user_count(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.user_count()
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.check()?;
        self.inner.users()
    }

    fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_user(name)
    }

    fn setting(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.check()?;
        self.inner.setting(namespace, key)
    }

    fn put_setting(
        &self,
        namespace: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_setting(namespace, key, value)
    }

    fn settings(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.check()?;
        self.inner.settings(namespace)
    }
}

/// Unused-import guard for helpers only some test files use.
pub fn _ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

//! The HTTP API end to end: a real server on 127.0.0.1:0, a real HTTP client, a store.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{event, rtpengine_rtcp_payload, start, test_config, Sip, TestStore};
use serde_json::Value;
use store::{Record, Store};

const PASSWORD: &str = "correct horse battery staple";

fn now_us() -> i64 {
    web::query::now_us()
}

/// A small data set: a call A→B (answered), its B-leg (X-CID), RTCP and a log for it, a
/// failed call, a REGISTER, a DNS event; all within the last ten minutes, plus one old call.
fn dataset(t0: i64) -> Vec<Record> {
    let ms = 1000;
    let a = ("10.0.0.1", 5060);
    let proxy = ("10.0.0.2", 5060);
    let b = ("10.0.0.3", 5080);
    let s = |time_us, call_id, method, status, cseq_method, src, dst, aleg| Sip {
        time_us,
        call_id,
        method,
        status,
        cseq_method,
        from_user: "alice",
        to_user: "bob",
        ruri_user: None,
        src,
        dst,
        node: "edge",
        aleg_id: aleg,
    };
    let mut v = vec![
        // A-leg alice → proxy
        s(t0, "call-a@x", "INVITE", None, "INVITE", a, proxy, None).record(),
        s(t0 + ms, "call-a@x", "", Some(100), "INVITE", proxy, a, None).record(),
        // B-leg proxy → bob, carrying X-CID: call-a@x
        s(
            t0 + 2 * ms,
            "call-b@y",
            "INVITE",
            None,
            "INVITE",
            proxy,
            b,
            Some("call-a@x"),
        )
        .record(),
        s(
            t0 + 3 * ms,
            "call-b@y",
            "",
            Some(180),
            "INVITE",
            b,
            proxy,
            Some("call-a@x"),
        )
        .record(),
        s(
            t0 + 4 * ms,
            "call-b@y",
            "",
            Some(200),
            "INVITE",
            b,
            proxy,
            Some("call-a@x"),
        )
        .record(),
        s(
            t0 + 5 * ms,
            "call-a@x",
            "",
            Some(200),
            "INVITE",
            proxy,
            a,
            None,
        )
        .record(),
        s(t0 + 6 * ms, "call-a@x", "ACK", None, "ACK", a, proxy, None).record(),
        s(
            t0 + 7 * ms,
            "call-b@y",
            "ACK",
            None,
            "ACK",
            proxy,
            b,
            Some("call-a@x"),
        )
        .record(),
    ];
    let rtcp = rtpengine_rtcp_payload();
    v.push(event(
        t0 + 8 * ms,
        5,
        "call-a@x",
        rtcp.as_bytes(),
        Some(&rtcp),
    ));
    v.push(event(
        t0 + 9 * ms,
        100,
        "call-a@x",
        b"ERROR: media timeout on call-a@x\n",
        None,
    ));
    // A real Kamailio hlog() line from the samples.
    v.push(event(
        t0 + 9 * ms + 500,
        100,
        "call-a@x",
        common::kamailio_log_payload().as_bytes(),
        None,
    ));
    // A failed call from carol to 404 with a different node and TCP.
    let mut fail = Sip {
        time_us: t0 + 20 * ms,
        call_id: "fail-1",
        method: "INVITE",
        status: None,
        cseq_method: "INVITE",
        from_user: "carol",
        to_user: "nobody",
        ruri_user: Some("9999"),
        src: ("192.0.2.7", 5060),
        dst: proxy,
        node: "core",
        aleg_id: None,
    }
    .record();
    fail.ip_proto = 6;
    v.push(fail);
    v.push(
        Sip {
            time_us: t0 + 21 * ms,
            call_id: "fail-1",
            method: "",
            status: Some(404),
            cseq_method: "INVITE",
            from_user: "carol",
            to_user: "nobody",
            ruri_user: None,
            src: proxy,
            dst: ("192.0.2.7", 5060),
            node: "core",
            aleg_id: None,
        }
        .record(),
    );
    v.push(
        Sip {
            time_us: t0 + 30 * ms,
            call_id: "reg-1",
            method: "REGISTER",
            status: None,
            cseq_method: "REGISTER",
            from_user: "dave",
            to_user: "dave",
            ruri_user: None,
            src: ("2001:db8::5", 5060),
            dst: proxy,
            node: "edge",
            aleg_id: None,
        }
        .record(),
    );
    // A DNS event (type 53, JSON) with a binary tail to exercise raw_base64.
    let dns_json = r#"{"questions":[{"name":"example.org","type":"A"}],"rcode":0}"#;
    let mut raw = dns_json.as_bytes().to_vec();
    raw.extend_from_slice(&[0xff, 0xfe]);
    v.push(event(t0 + 40 * ms, 53, "dns-1", &raw, Some(dns_json)));
    // A call two hours ago, outside the default window.
    v.push(
        Sip {
            time_us: t0 - 2 * 3600 * 1_000_000,
            call_id: "old-1",
            method: "INVITE",
            status: None,
            cseq_method: "INVITE",
            from_user: "alice",
            to_user: "bob",
            ruri_user: None,
            src: a,
            dst: proxy,
            node: "edge",
            aleg_id: None,
        }
        .record(),
    );
    v
}

fn new_store() -> Arc<dyn Store> {
    TestStore::new()
}

fn load(store: &Arc<dyn Store>) -> i64 {
    let t0 = now_us() - 10 * 60 * 1_000_000;
    let outcome = store.insert_batch(&dataset(t0)).expect("insert");
    assert!(outcome.rejected.is_empty());
    t0
}

fn call_ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["sid"]
                .as_str()
                .or(i["call_id"].as_str())
                .expect("id")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn login_ok_sets_token_and_cookie() {
    let server = start(new_store(), test_config(), PASSWORD).await;
    let r = server
        .client
        .post(server.url("/api/v1/login"))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .expect("cookie")
        .to_str()
        .expect("ascii")
        .to_string();
    let body: Value = r.json().await.expect("json");
    let token = body["token"].as_str().expect("token");
    assert_eq!(token.len(), 43, "256-bit token, base64url");
    assert_eq!(body["username"], "admin");
    let expires = body["expires_us"].as_i64().expect("expires");
    let lifetime = expires - now_us();
    assert!(
        (43_000_000_000..=43_200_000_000).contains(&lifetime),
        "12 h lifetime, got {lifetime}"
    );
    assert!(body["expires"].as_str().expect("rfc3339").ends_with('Z'));
    assert!(
        cookie.starts_with(&format!("hepstack_session={token};")),
        "{cookie}"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not configured: {cookie}");
    let (status, me) = server.get(token, "/api/v1/me").await;
    assert_eq!((status, me["username"].as_str()), (200, Some("admin")));
    server.stop().await;
}

#[tokio::test]
async fn secure_cookie_when_configured() {
    let config = web::WebConfig {
        secure_cookie: true,
        cookie_name: "sid".into(),
        ..test_config()
    };
    let server = start(new_store(), config, PASSWORD).await;
    let r = server
        .client
        .post(server.url("/api/v1/login"))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(cookie.starts_with("sid="), "{cookie}");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    server.stop().await;
}

#[tokio::test]
async fn bad_credentials_are_401() {
    let server = start(new_store(), test_config(), PASSWORD).await;
    for (user, pass) in [("admin", "wrong"), ("nobody", PASSWORD), ("admin", "")] {
        let r = server
            .client
            .post(server.url("/api/v1/login"))
            .json(&serde_json::json!({"username": user, "password": pass}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 401, "{user}/{pass}");
        assert!(r.headers().get("set-cookie").is_none());
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"], "invalid username or password");
    }
    let r = server
        .client
        .post(server.url("/api/v1/login"))
        .body("username=admin")
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let config = web::WebConfig {
        login_failures_per_minute: 2,
        ..test_config()
    };
    let server = start(new_store(), config, PASSWORD).await;
    let attempt = |password: &'static str| {
        server
            .client
            .post(server.url("/api/v1/login"))
            .json(&serde_json::json!({"username": "admin", "password": password}))
            .send()
    };
    assert_eq!(attempt("x").await.expect("1").status(), 401);
    assert_eq!(attempt("y").await.expect("2").status(), 401);
    let r = attempt(PASSWORD).await.expect("3");
    assert_eq!(r.status(), 429, "even the right password waits");
    assert!(r.headers().get("retry-after").is_some());
    server.stop().await;
}

#[tokio::test]
async fn api_needs_a_live_session() {
    let store = new_store();
    load(&store);
    let config = web::WebConfig {
        session_lifetime_secs: 1,
        ..test_config()
    };
    let server = start(store, config, PASSWORD).await;
    for path in [
        "/api/v1/messages",
        "/api/v1/calls",
        "/api/v1/calls/call-a@x/flow",
        "/api/v1/me",
        "/api/v1/no-such-thing",
    ] {
        let r = server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401, "{path} without token");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"], "authentication required");
        let (status, _) = server.get("not-a-token", path).await;
        assert_eq!(status, 401, "{path} with a bad token");
    }
    let r = server
        .client
        .post(server.url("/api/v1/logout"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 401);

    // A token stops working once its lifetime (1 s here) is over. (That it works before is
    // shown by every other test; asserting it here would make the test depend on timing.)
    let token = server.login("admin", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = server.get(&token, "/api/v1/messages").await;
    assert_eq!(status, 401, "expired: {body}");
    server.stop().await;
}

#[tokio::test]
async fn cookie_auth_and_logout() {
    let store = new_store();
    load(&store);
    let server = start(store, test_config(), PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;
    let with_cookie = |cookie: String| {
        server
            .client
            .get(server.url("/api/v1/messages"))
            .header("cookie", cookie)
            .send()
    };
    let (status, _) = server.get(&token, "/api/v1/no-such-thing").await;
    assert_eq!(status, 404, "unknown API path with a session");
    let r = with_cookie(format!("theme=dark; hepstack_session={token}"))
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let r = with_cookie("hepstack_session=forged".into())
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = with_cookie(format!("other_name={token}"))
        .await
        .expect("get");
    assert_eq!(r.status(), 401, "only the configured cookie name counts");

    // With the cookie, a state change needs the session's CSRF token.
    let r = server
        .client
        .post(server.url("/api/v1/logout"))
        .header("cookie", format!("hepstack_session={token}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 403, "no X-CSRF-Token");
    let (_, me) = server.get(&token, "/api/v1/me").await;
    let csrf = me["csrf_token"].as_str().expect("csrf").to_string();
    let r = server
        .client
        .post(server.url("/api/v1/logout"))
        .header("cookie", format!("hepstack_session={token}"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    let cleared = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, _) = server.get(&token, "/api/v1/messages").await;
    assert_eq!(status, 401, "logged out");
    server.stop().await;
}

#[tokio::test]
async fn message_search_filters() {
    let store = new_store();
    let t0 = load(&store);
    let server = start(store, test_config(), PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;

    // Default window: the last hour, newest first; the old call is outside.
    let (status, body) = server.get(&token, "/api/v1/messages").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 15);
    let times: Vec<i64> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["time_us"].as_i64().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(body["next"], Value::Null);

    let all_time = "from=0";
    let far = format!("{all_time}&to={}", (t0 / 1000) + 3_600_000);
    let cases: Vec<(String, u64)> = vec![
        (format!("callid=call-a@x&{far}"), 7),
        (format!("callid=call-a@x,fail-1&{far}"), 9),
        (format!("callid=call-a@x&callid=reg-1&{far}"), 8),
        (format!("from_user=alice&{far}"), 9),
        (format!("to_user=nobody&{far}"), 2),
        (format!("ruri_user=9999&{far}"), 1),
        (format!("method=INVITE&{far}"), 4),
        (format!("method=404&{far}"), 1),
        (format!("ip=192.0.2.7&{far}"), 2),
        (format!("src_ip=192.0.2.7&{far}"), 1),
        (format!("dst_ip=10.0.0.3&{far}"), 2),
        (format!("src_ip=2001:db8::5&{far}"), 1),
        (format!("node=core&{far}"), 2),
        (format!("hep_type=5&{far}"), 1),
        (format!("hep_type=100&{far}"), 2),
        (format!("correlation_id=call-a@x&{far}"), 11),
        (format!("text=media%20timeout&{far}"), 1),
        (format!("json.questions[0].name=example.org&{far}"), 1),
        (format!("json.payload.rcode=0&{far}"), 1),
        (format!("json.questions[0].name=example.com&{far}"), 0),
        (format!("from_user=alice&node=edge&method=ACK&{far}"), 2),
    ];
    for (q, want) in cases {
        let (status, body) = server.get(&token, &format!("/api/v1/messages?{q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(body["total"], want, "{q}");
        assert_eq!(
            body["items"].as_array().expect("items").len() as u64,
            want,
            "{q}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn time_parameters_and_errors() {
    let store = new_store();
    let t0 = load(&store);
    let server = start(store, test_config(), PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;

    // The old call is two hours back: both time formats find it, and only it.
    let old_us = t0 - 2 * 3600 * 1_000_000;
    let from_rfc = web::query::format_time_us(old_us - 1_000_000).expect("fmt");
    let to_rfc = web::query::format_time_us(old_us + 1_000_000).expect("fmt");
    let plus_one = chrono_free_offset(&to_rfc);
    for q in [
        format!("from={}&to={}", old_us / 1000 - 1000, old_us / 1000 + 1000),
        format!("from={from_rfc}&to={to_rfc}"),
        format!("from={from_rfc}&to={}", urlencode(&plus_one)),
        format!("from={}", old_us / 1000 - 1000),
    ] {
        let (status, body) = server.get(&token, &format!("/api/v1/messages?{q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(call_ids(&body), ["old-1"], "{q}");
    }
    // `to` alone: a one-hour window before it.
    let q = format!("to={}", old_us / 1000 + 1000);
    let (_, body) = server.get(&token, &format!("/api/v1/messages?{q}")).await;
    assert_eq!(call_ids(&body), ["old-1"]);

    for (q, param) in [
        ("from=yesterday", "from"),
        ("to=2026-02-30T00:00:00Z", "to"),
        ("from=2000&to=1000", "from"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("hep_type=999", "hep_type"),
        ("ip=not-an-ip", "ip"),
        ("callid=", "callid"),
        ("frm=1", "frm"),
    ] {
        let (status, body) = server.get(&token, &format!("/api/v1/messages?{q}")).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(body["param"], param, "{q}: {body}");
        assert!(
            body["error"].as_str().expect("error").contains(param),
            "{body}"
        );
        let (status, _) = server.get(&token, &format!("/api/v1/calls?{q}")).await;
        assert_eq!(status, 400, "calls {q}");
    }
    let (status, body) = server
        .get(&token, "/api/v1/messages?from=0&cursor=garbage")
        .await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}

/// `2026-…T…Z` → the same instant written with a +01:00 offset.
fn chrono_free_offset(rfc_z: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(rfc_z, &Rfc3339).expect("parse");
    let t = t.to_offset(time::UtcOffset::from_hms(1, 0, 0).expect("offset"));
    t.format(&Rfc3339).expect("format")
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn paging_with_cursor() {
    let store = new_store();
    load(&store);
    let server = start(store, test_config(), PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = "/api/v1/messages?limit=4".to_string();
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", urlencode(c)));
        }
        let (status, body) = server.get(&token, &q).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 15, "total is for the whole filter");
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= 4);
        seen.extend(items.iter().map(|i| i["id"].as_i64().expect("id")));
        pages += 1;
        match body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging terminates");
    }
    assert_eq!(pages, 4);
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 15, "every message once: {seen:?}");

    // A limit above the configured maximum is refused like any bad parameter, not shortened.
    let (status, body) = server.get(&token, "/api/v1/messages?limit=100000").await;
    assert_eq!(status, 400);
    assert_eq!(body["param"], "limit");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("at most 1000"),
        "{body}"
    );
    let (status, _) = server.get(&token, "/api/v1/calls?limit=1001").await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn message_item_shape() {
    let store = new_store();
    let t0 = load(&store);
    let server = start(store, test_config(), PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;

    let (_, body) = server
        .get(&token, "/api/v1/messages?callid=call-b@y&method=INVITE")
        .await;
    let item = &body["items"][0];
    assert_eq!(item["time_us"], t0 + 2000);
    assert_eq!(
        item["time"],
        web::query::format_time_us(t0 + 2000).expect("fmt")
    );
    assert_eq!(item["hep_type"], 1);
    assert_eq!(item["proto"], "sip");
    assert_eq!(item["transport"], "udp");
    assert_eq!(item["src_ip"], "10.0.0.2");
    assert_eq!(item["src_port"], 5060);
    assert_eq!(item["dst_ip"], "10.0.0.3");
    assert_eq!(item["dst_port"], 5080);
    assert_eq!(item["node"], "edge");
    assert_eq!(item["capture_id"], 2001);
    assert_eq!(item["correlation_id"], "call-a@x");
    assert_eq!(item["sid"], "call-b@y");
    assert_eq!(item["profile"], "call");
    assert_eq!(item["method"], "INVITE");
    assert_eq!(item["status"], Value::Null);
    assert_eq!(item["callid"], "call-b@y");
    assert_eq!(item["from_user"], "alice");
    assert_eq!(item["from_tag"], "ft-call-b@y");
    assert_eq!(item["to_user"], "bob");
    assert_eq!(item["user_agent"], "test-agent");
    assert_eq!(item["aleg_id"], "call-a@x");
    assert_eq!(item["custom_headers"]["X-CID"], "call-a@x");
    assert!(item["raw"]
        .as_str()
        .expect("raw")
        .starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"));
    assert!(item.get("raw_base64").is_none());
    assert_eq!(item["payload"], Value::Null);

    let (_, body) = server.get(&token, "/api/v1/messages?hep_type=53").await;
    let dns = &body["items"][0];
    assert_eq!(dns["proto"], "dns");
    assert_eq!(dns["method"], Value::Null);
    assert_eq!(dns["payload"]["questions"][0]["name"], "example.org");
    let b64 = dns["raw_base64"]
        .as_str()
        .expect("binary payload has base64");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    assert_eq!(&raw[raw.len() - 2..], &[0xff, 0xfe]);
    assert!(dns["raw"].as_str().expect("lossy").ends_with('\u{fffd}'));
    server.stop().await;
}

#[tokio::test]
async fn call_search() {
    let store = new_store();
    let t0 = load(&store);
    let server = start(store, test_config(), PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;
    let (status, body) = server.get(&token, "/api/v1/calls").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 4);
    assert_eq!(call_ids(&body), ["reg-1", "fail-1", "call-b@y", "call-a@x"]);
    let fail = &body["items"][1];
    assert_eq!(fail["status"], 404);
    assert_eq!(fail["from_user"], "carol");
    assert_eq!(fail["start_us"], t0 + 20_000);
    assert_eq!(
        fail["start"],
        web::query::format_time_us(t0 + 20_000).expect("fmt")
    );
    assert_eq!(
        fail["end"],
        web::query::format_time_us(t0 + 21_000).expect("fmt")
    );
    assert_eq!(fail["message_count"], 2);
    let (_, body) = server.get(&token, "/api/v1/calls?from_user=carol").await;
    assert_eq!(call_ids(&body), ["fail-1"]);
    let (_, body) = server.get(&token, "/api/v1/calls?limit=2").await;
    assert_eq!(body["items"].as_array().expect("items").len(), 2);
    let next = body["next"].as_str().expect("more pages");
    let (_, body) = server
        .get(
            &token,
            &format!("/api/v1/calls?limit=2&cursor={}", urlencode(next)),
        )
        .await;
    assert_eq!(call_ids(&body), ["call-b@y", "call-a@x"]);
    server.stop().await;
}

#[tokio::test]
async fn call_flow_with_both_legs_rtcp_and_log() {
    let store = new_store();
    let t0 = load(&store);
    let server = start(store, test_config(), PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;

    // From either leg, the whole correlated set comes back.
    for start_leg in ["call-a@x", "call-b@y"] {
        let (status, flow) = server
            .get(
                &token,
                &format!("/api/v1/calls/{}/flow", urlencode(start_leg)),
            )
            .await;
        assert_eq!(status, 200, "{start_leg}: {flow}");
        let legs = flow["legs"].as_array().expect("legs");
        assert_eq!(legs.len(), 2, "{start_leg}");
        assert_eq!(legs[0]["call_id"], "call-a@x");
        assert_eq!(legs[0]["role"], "a-leg");
        assert_eq!(legs[0]["status"], 200);
        assert_eq!(legs[0]["message_count"], 4);
        assert_eq!(legs[0]["from_user"], "alice");
        assert_eq!(legs[0]["first_us"], t0);
        assert_eq!(legs[0]["last_us"], t0 + 6000);
        assert_eq!(legs[1]["call_id"], "call-b@y");
        assert_eq!(legs[1]["role"], "b-leg");
        assert_eq!(legs[1]["a_leg"], 0);
        assert_eq!(legs[1]["correlation_id"], "call-a@x");
        assert_eq!(legs[1]["status"], 200);

        let hosts: Vec<&str> = flow["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .map(|h| h["address"].as_str().expect("address"))
            .collect();
        assert_eq!(hosts, ["10.0.0.1:5060", "10.0.0.2:5060", "10.0.0.3:5080"]);
        assert_eq!(flow["hosts"][0]["nodes"], serde_json::json!(["edge"]));

        let messages = flow["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 8);
        let times: Vec<i64> = messages
            .iter()
            .map(|m| m["time_us"].as_i64().expect("t"))
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
        let ladder: Vec<(i64, i64, i64)> = messages
            .iter()
            .map(|m| {
                (
                    m["leg"].as_i64().expect("leg"),
                    m["src_host"].as_i64().expect("src"),
                    m["dst_host"].as_i64().expect("dst"),
                )
            })
            .collect();
        assert_eq!(
            ladder,
            [
                (0, 0, 1),
                (0, 1, 0),
                (1, 1, 2),
                (1, 2, 1),
                (1, 2, 1),
                (0, 1, 0),
                (0, 0, 1),
                (1, 1, 2)
            ]
        );
        assert_eq!(messages[2]["method"], "INVITE");
        assert_eq!(messages[3]["status"], 180);

        let qos = flow["qos"].as_array().expect("qos");
        assert_eq!(qos.len(), 1, "{qos:?}");
        let q = &qos[0];
        assert_eq!(q["kind"], "report_block");
        assert_eq!(q["report_type"], "sr");
        assert_eq!(q["ssrc"], 286331153u32);
        assert_eq!(q["source_ssrc"], 572662306u32);
        assert_eq!(q["leg"], 0);
        assert_eq!(q["time_us"], t0 + 8000);
        assert!(q["jitter_ms"].as_f64().is_some());
        let mos = q["mos"].as_f64().expect("mos");
        assert!((1.0..=4.5).contains(&mos), "{mos}");
        assert!(q["fraction_lost_percent"].as_f64().is_some());
        assert!(q["packets_lost"].as_i64().is_some());

        let logs = flow["logs"].as_array().expect("logs");
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0]["text"], "ERROR: media timeout on call-a@x");
        assert_eq!(logs[0]["level"], "ERROR");
        assert_eq!(logs[0]["leg"], 0);
        assert_eq!(logs[0]["time_us"], t0 + 9000);
        assert_eq!(logs[1]["text"], common::kamailio_log_payload());
        assert_eq!(logs[1]["level"], Value::Null);
        assert_eq!(logs[1]["node"], "rtpengine");
        assert_eq!(flow["truncated"], false);
    }

    // Unrelated calls are not pulled in; a bounded search can exclude everything.
    let (_, flow) = server.get(&token, "/api/v1/calls/fail-1/flow").await;
    assert_eq!(flow["legs"].as_array().expect("legs").len(), 1);
    assert_eq!(flow["legs"][0]["status"], 404);
    assert_eq!(flow["qos"], serde_json::json!([]));
    let q = format!("/api/v1/calls/fail-1/flow?from={}", (t0 + 25_000) / 1000);
    let (status, _) = server.get(&token, &q).await;
    assert_eq!(status, 404);

    let (status, body) = server.get(&token, "/api/v1/calls/no-such-call/flow").await;
    assert_eq!(status, 404);
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("no-such-call"));
    let (status, _) = server.get(&token, "/api/v1/calls/fail-1/flow?to=bad").await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn flow_is_truncated_at_the_configured_size() {
    let store = new_store();
    load(&store);
    let config = web::WebConfig {
        max_flow_messages: 3,
        ..test_config()
    };
    let server = start(store, config, PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;
    let (_, flow) = server.get(&token, "/api/v1/calls/call-a@x/flow").await;
    assert_eq!(flow["truncated"], true);
    assert_eq!(flow["messages"].as_array().expect("messages").len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn healthz_reports_store_state() {
    let mem = TestStore::new();
    let store: Arc<dyn Store> = mem.clone();
    let server = start(store, test_config(), PASSWORD).await;
    let r = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"], "sqlite");
    assert_eq!(body["partitions"], 0, "nothing stored yet");

    mem.broken.store(true, Ordering::SeqCst);
    let r = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "error");
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("disk on fire"));

    let r = server
        .client
        .get(server.url("/nowhere"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn store_outage_is_503_on_queries() {
    let mem = TestStore::new();
    let store: Arc<dyn Store> = mem.clone();
    let server = start(store, test_config(), PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;
    mem.broken.store(true, Ordering::SeqCst);
    let (status, body) = server.get(&token, "/api/v1/messages").await;
    assert_eq!(status, 503, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_router_serves_prometheus_text() {
    let render: web::MetricsRender =
        Arc::new(|| "# TYPE hepstack_up gauge\nhepstack_up 1\n".to_string());
    let server = common::start_router(web::metrics_router(render.clone())).await;
    let r = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        r.text().await.expect("text"),
        "# TYPE hepstack_up gauge\nhepstack_up 1\n"
    );
    let r = server
        .client
        .get(server.url("/api/v1/messages"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404, "the metrics address serves nothing else");
    server.stop().await;

    // On the main router too, when the state has a renderer; absent otherwise.
    let store = new_store();
    web::ensure_admin(store.as_ref(), Some(PASSWORD)).expect("admin");
    let state = web::AppState::new(store.clone(), test_config(), Some(render)).expect("state");
    let server = common::start_router(web::router(state)).await;
    let r = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    server.stop().await;
    let state = web::AppState::new(store, test_config(), None).expect("state");
    let server = common::start_router(web::router(state)).await;
    let r = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn admin_bootstrap() {
    let store = new_store();
    // First start without a password: a random one, printed once, that logs in.
    let boot = web::ensure_admin(store.as_ref(), None).expect("bootstrap");
    let web::AdminBootstrap::CreatedWithRandomPassword { password } = &boot else {
        panic!("expected a generated password, got {boot:?}");
    };
    assert_eq!(password.len(), 20);
    assert!(
        !format!("{boot:?}").contains(password.as_str()),
        "password not in Debug"
    );
    let user = store.user("admin").expect("user").expect("admin exists");
    assert!(user.admin);
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(!user.password_hash.contains(password.as_str()));

    // Later starts never overwrite it, with or without the variable.
    assert_eq!(
        web::ensure_admin(store.as_ref(), None).expect("again"),
        web::AdminBootstrap::Existing
    );
    assert_eq!(
        web::ensure_admin(store.as_ref(), Some("new password")).expect("again"),
        web::AdminBootstrap::EnvPasswordIgnored
    );
    assert_eq!(store.user("admin").expect("user").expect("admin"), user);

    let state = web::AppState::new(store.clone(), test_config(), None).expect("state");
    let server = common::start_router(web::router(state)).await;
    server.login("admin", password).await;
    server.stop().await;

    // The variable seeds a fresh store; an empty one is refused.
    let fresh = new_store();
    assert!(web::ensure_admin(fresh.as_ref(), Some("")).is_err());
    assert_eq!(fresh.user_count().expect("count"), 0);
    assert_eq!(
        web::ensure_admin(fresh.as_ref(), Some("s3cret-from-env")).expect("seed"),
        web::AdminBootstrap::CreatedFromEnv
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_stops_listening() {
    let server = start(new_store(), test_config(), PASSWORD).await;
    let addr = server.addr;
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}

#[tokio::test]
async fn cors_is_off_unless_configured() {
    let preflight = |server: &common::Server| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/api/v1/messages"))
            .header("origin", "https://ui.example")
            .header("access-control-request-method", "GET")
            .send()
    };
    let server = start(new_store(), test_config(), PASSWORD).await;
    let r = preflight(&server).await.expect("preflight");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    server.stop().await;

    let config = web::WebConfig {
        cors_allowed_origins: vec!["https://ui.example".into()],
        ..test_config()
    };
    let server = start(new_store(), config, PASSWORD).await;
    let r = preflight(&server).await.expect("preflight");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = server
        .client
        .get(server.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("get");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

//! The password-guessing limit (counted before verification, per address and per account,
//! never reset by another account's success, shared by `POST /api/v1/me/password`) and a
//! `/healthz` that tells an orchestrator when ingest is failing.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

const PASSWORD: &str = "admin-password-1";

async fn login_status(server: &Server, user: &str, password: &str) -> u16 {
    server
        .client
        .post(server.url("/api/v1/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_logins_from_one_address_are_limited() {
    let config = web::WebConfig {
        login_failures_per_minute: 10,
        ..test_config()
    };
    let server = start(TestStore::new(), config, PASSWORD).await;
    let attempts = (0..200).map(|i| {
        let server = &server;
        async move { login_status(server, "admin", &format!("guess-{i}")).await }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(unauthorized, 10, "{statuses:?}");
    assert_eq!(limited, 190);
    server.stop().await;
}

#[tokio::test]
async fn a_login_as_another_account_does_not_reset_the_count() {
    let config = web::WebConfig {
        login_failures_per_minute: 10,
        ..test_config()
    };
    let server = start(TestStore::new(), config, PASSWORD).await;
    let admin = server.login("admin", PASSWORD).await;
    let r = server
        .client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({"username": "viewer", "password": "viewer-password"}))
        .send()
        .await
        .expect("create user");
    assert_eq!(r.status(), 201);
    // The probe: 9 guesses, one good login as the low-privilege user, repeated.
    let mut guesses = 0;
    for _ in 0..5 {
        for i in 0..9 {
            if login_status(&server, "admin", &format!("guess-{i}")).await == 401 {
                guesses += 1;
            }
        }
        let _ = login_status(&server, "viewer", "viewer-password").await;
    }
    assert_eq!(
        guesses, 10,
        "45 guesses tried, the limit allows 10 a minute"
    );
    server.stop().await;
}

#[tokio::test]
async fn one_account_is_limited_whatever_the_address() {
    let config = web::WebConfig {
        login_failures_per_minute: 0,
        login_failures_per_account_per_minute: 5,
        ..test_config()
    };
    let server = start(TestStore::new(), config, PASSWORD).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(login_status(&server, "admin", &format!("guess-{i}")).await);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    // Another account is not affected.
    assert_eq!(login_status(&server, "nobody", "guess").await, 401);
    server.stop().await;
}

#[tokio::test]
async fn own_password_change_shares_the_limit() {
    let config = web::WebConfig {
        login_failures_per_minute: 4,
        ..test_config()
    };
    let server = start(TestStore::new(), config, PASSWORD).await;
    let token = server.login("admin", PASSWORD).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = server
            .client
            .post(server.url("/api/v1/me/password"))
            .bearer_auth(&token)
            .json(&json!({"current_password": format!("guess-{i}"), "new_password": "new-password-1"}))
            .send()
            .await
            .expect("change");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [403, 403, 403, 403, 429, 429]);
    server.stop().await;
}

#[tokio::test]
async fn healthz_reports_the_ingest_side() {
    let store = TestStore::new();
    web::ensure_admin(store.as_ref(), Some(PASSWORD)).expect("admin");
    let health = Arc::new(Mutex::new(web::IngestHealth::default()));
    let probe = health.clone();
    let state = web::AppState::new(store, test_config(), None)
        .expect("state")
        .with_health(Arc::new(move || probe.lock().expect("lock").clone()));
    let server = start_router(web::router(state)).await;
    let get = || async {
        let r = server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.expect("json"))
    };
    let (status, body) = get().await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert!(body.get("reasons").is_none());
    *health.lock().expect("lock") = web::IngestHealth {
        status: web::HealthStatus::Degraded,
        reasons: vec!["store writes failing: database or disk is full".into()],
    };
    let (status, body) = get().await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")));
    assert_eq!(
        body["reasons"][0],
        "store writes failing: database or disk is full"
    );
    *health.lock().expect("lock") = web::IngestHealth {
        status: web::HealthStatus::Failing,
        reasons: vec![
            "disk full".into(),
            "records dropped in the last minute: spool full".into(),
        ],
    };
    let (status, body) = get().await;
    assert_eq!((status, body["status"].as_str()), (503, Some("failing")));
    assert_eq!(body["reasons"][0], "disk full");
    server.stop().await;
}

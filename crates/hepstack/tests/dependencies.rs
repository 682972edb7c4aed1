//! The crate dependency rules of ARCHITECTURE.md, checked against `cargo metadata`: dependencies
//! point one way, codecs ← services ← binary, and the service crates that must stay light (the
//! relay, the capture agent) link no store.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The codec crates: they may depend on each other, never on a service crate.
const CODECS: &[&str] = &["hep", "sip", "payload", "capture"];

/// Workspace crate → the workspace crates it depends on (normal and build dependencies; dev
/// dependencies are the tests' business).
fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .filter_map(|d| d["name"].as_str())
                .filter(|d| members.contains(*d))
                .map(str::to_string)
                .collect();
            (name, deps)
        })
        .collect()
}

/// Every workspace crate `krate` depends on, directly or through others.
fn closure(graph: &BTreeMap<String, BTreeSet<String>>, krate: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![krate.to_string()];
    while let Some(k) = todo.pop() {
        for d in graph.get(&k).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

/// The rules broken by `graph`, one line each.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut broken = Vec::new();
    let mut forbid = |krate: &str, banned: &[&str]| {
        let deps = closure(graph, krate);
        for b in banned {
            if deps.contains(*b) {
                broken.push(format!("{krate} must not depend on {b}"));
            }
        }
    };
    let services: Vec<&str> = graph
        .keys()
        .map(String::as_str)
        .filter(|k| !CODECS.contains(k))
        .collect();
    for codec in CODECS {
        forbid(codec, &services);
    }
    forbid("store", &["collector", "web"]);
    forbid("web", &["collector"]);
    forbid("relay", &["store"]);
    forbid("agent", &["store"]);
    broken
}

#[test]
fn crate_dependencies_point_one_way() {
    let graph = workspace_graph();
    for krate in CODECS.iter().chain(&["store", "web", "relay", "agent"]) {
        assert!(graph.contains_key(*krate), "{krate} is a workspace crate");
    }
    let broken = violations(&graph);
    assert!(broken.is_empty(), "dependency rules broken: {broken:#?}");
}

#[test]
fn the_rules_catch_a_wrong_edge() {
    // The check itself must fail on the edge issue 28 removed (relay → collector → store).
    let mut graph = workspace_graph();
    graph
        .entry("relay".into())
        .or_default()
        .insert("collector".into());
    graph
        .entry("collector".into())
        .or_default()
        .insert("store".into());
    graph.entry("sip".into()).or_default().insert("kpi".into());
    let broken = violations(&graph);
    assert!(broken.contains(&"relay must not depend on store".to_string()));
    assert!(broken.contains(&"sip must not depend on kpi".to_string()));
}

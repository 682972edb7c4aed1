//! What an operator sees of the release and of the logs: `hepstack --version` names the version
//! and the commit, CHANGELOG.md has a section for the version, and log lines carry ANSI colour
//! codes only when told to (standard error here is a pipe, as under systemd or with `2>file`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bin, Server};

#[test]
fn version_names_the_release_and_the_commit() {
    let out = Command::new(bin()).arg("--version").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("hepstack {} (", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "{text}");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match commit {
        // Built from a checkout: the commit is there (the build may be older than HEAD only
        // when the binary was not rebuilt, which cargo test rules out).
        Some(hash) => assert!(text.contains(&hash), "{text} lacks {hash}"),
        None => assert!(text.contains("unknown commit"), "{text}"),
    }
}

#[test]
fn the_changelog_has_a_section_for_this_version() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../CHANGELOG.md");
    let text = std::fs::read_to_string(path).expect("CHANGELOG.md");
    let heading = format!("## {} ", env!("CARGO_PKG_VERSION"));
    assert!(
        text.lines().any(|l| l.starts_with(&heading)),
        "CHANGELOG.md has no `{heading}…` section: bump both together"
    );
}

/// Starts serve with `extra` flags, stops it, and returns its standard error lines.
fn serve_log(extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(dir.path(), extra, &[("RUST_LOG", "debug")]);
    server.pump(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    let _ = server.child.wait();
    server.pump(Duration::from_millis(500));
    std::mem::take(&mut server.seen)
}

fn log_lines(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| !l.starts_with("hepstack: "))
        .collect()
}

#[test]
fn logs_are_coloured_only_when_asked_and_json_is_one_object_per_line() {
    let plain = serve_log(&[]);
    assert!(!log_lines(&plain).is_empty(), "no log lines: {plain:?}");
    assert!(
        plain.iter().all(|l| !l.contains('\x1b')),
        "ANSI codes into a pipe: {plain:?}"
    );

    let colored = serve_log(&["--log-color", "always"]);
    assert!(
        colored.iter().any(|l| l.contains("\x1b[")),
        "--log-color always: {colored:?}"
    );

    let json = serve_log(&["--log-format", "json", "--log-color", "always"]);
    let lines = log_lines(&json);
    assert!(!lines.is_empty(), "no log lines: {json:?}");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

/// Copies a directory tree (the fixture store) so the test never writes into the repository.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `tests/data/store-0.1` is an embedded store written by the 0.1 on-disk format (catalog
/// schema 3): `hepstack send --calls 5 --seed 7` into `hepstack serve`, the admin password
/// being `common::ADMIN_PASSWORD`. This release opens it with its users, messages and calls, so
/// an upgrade keeps the data directory as it is. When a release changes the format, the old
/// fixture stays and this test keeps proving the upgrade path.
#[test]
fn a_store_written_by_the_previous_release_opens_with_its_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    copy_tree(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/store-0.1")),
        &data,
    );
    let mut server = Server::start(&data, &[], &[]);
    // The login uses the password stored in the old catalog.
    assert_eq!(server.total(""), 60, "every stored message is found");
    assert_eq!(server.total("&method=INVITE"), 5);
    let calls = server.get("/api/v1/calls?from=0&to=4102444800000&limit=100");
    assert_eq!(calls["total"].as_u64(), Some(5), "{calls}");
    assert!(server.stop().success());
}

/// A store written by a newer release (a higher schema stamp in its catalog) is refused at
/// start with a message that says so and what to do, never read half-way.
#[test]
fn a_store_from_a_newer_release_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    copy_tree(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/store-0.1")),
        &data,
    );
    let catalog = rusqlite::Connection::open(data.join("store/catalog.db")).expect("catalog");
    catalog
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .expect("stamp");
    drop(catalog);
    let out = Command::new(bin())
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--hep-udp", "127.0.0.1:0", "--hep-tcp", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0", "--metrics", "off"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("written by a newer hepstack (store schema 99)"),
        "{err}"
    );
}

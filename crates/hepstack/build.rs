//! Puts the git commit into `hepstack --version`. Built outside a git checkout (a source
//! package, `cargo install` from a tarball) the version says so instead of failing the build;
//! `HEPSTACK_COMMIT` in the environment overrides what git says (packagers set it).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HEPSTACK_COMMIT");
    let commit = std::env::var("HEPSTACK_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown commit".to_string());
    println!("cargo:rustc-env=HEPSTACK_COMMIT={commit}");
}

/// The short commit hash, with `-dirty` when the work tree has changes; None without git.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves: HEAD itself, the branch ref it points to, and packed refs.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

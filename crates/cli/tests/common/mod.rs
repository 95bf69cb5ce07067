//! What the `pipeline` command's integration tests share: the repository root, and running the
//! built binary there with the run required to succeed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where `events/` is).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `pipeline ARGS` in the repository root; fails the test with its output unless it
/// succeeds.
pub fn pipeline(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pipeline {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

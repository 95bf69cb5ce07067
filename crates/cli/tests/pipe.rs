//! `pipeline … | head`: when the reader of stdout goes away the command ends quietly, as other
//! command-line tools do, instead of panicking on the next print.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

#[test]
fn a_closed_pipe_ends_the_command_without_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["generate", "--events", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is dropped here: the pipe closes while the command still has lines to write.
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        status.signal(),
        Some(13),
        "ended by SIGPIPE, not {status:?}"
    );
}

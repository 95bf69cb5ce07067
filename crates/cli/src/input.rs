//! What every command shares: reading an input argument (a file, or `-` for stdin) and the
//! single-threaded tokio runtime the commands run their async work on.

use std::io::Read;

use crate::error::CliError;

/// The whole text of `input`: a file path, or `-` for standard input.
pub fn read_text(input: &str) -> Result<String, CliError> {
    if input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut s)
            .map_err(|e| CliError::io("stdin", e))?;
        Ok(s)
    } else {
        std::fs::read_to_string(input).map_err(|e| CliError::io(input, e))
    }
}

/// A current-thread runtime: the CLI does one thing at a time, and the stores it drives are
/// either synchronous (SQLite) or bounded by their own concurrency settings.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("tokio runtime", e))
}

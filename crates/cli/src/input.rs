//! What every command shares: reading an input argument (a file, or `-` for stdin) and the
//! single-threaded tokio runtime the commands run their async work on.

use std::io::Read;

use crate::error::CliError;

/// The whole text of `input`: a file path, or `-` for standard input.
pub fn read_text(input: &str) -> Result<String, CliError> {
    let bytes = read_bytes(input)?;
    String::from_utf8(bytes).map_err(|e| CliError::Input {
        path: input.to_owned(),
        message: format!(
            "not valid UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Reads a file, or stdin for `-`, as bytes.
pub fn read_bytes(input: &str) -> Result<Vec<u8>, CliError> {
    let mut out = Vec::new();
    if input == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut out)
            .map_err(|e| CliError::io("stdin", e))?;
    } else {
        out = std::fs::read(input).map_err(|e| CliError::io(input, e))?;
    }
    Ok(out)
}

/// A current-thread runtime: the CLI does one thing at a time, and the stores it drives are
/// either synchronous (SQLite) or bounded by their own concurrency settings.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("tokio runtime", e))
}

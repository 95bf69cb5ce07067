//! `pipeline run`'s inputs as a stream of validated batch documents, produced on a thread of
//! their own: lines are decoded as they are read, cut into the same batches (and batch ids)
//! ingest would cut, and validated, while the main thread enriches, detects and persists the
//! batches before. Memory stays bounded by the channel between the two, whatever the input's
//! size.
//!
//! An input is one of two things, told apart from its first line: JSON Lines of events (read
//! as a stream), or one JSON document (a trigger payload or a batch document), which is read
//! whole, as it always was. An input whose first line is neither a complete event nor such a
//! document (a pretty-printed document, a bad first line) is read whole if it is at most
//! [`DOCUMENT_LIMIT`] bytes and decided exactly as before; a larger one can only be JSON Lines.
//!
//! A document is never taken for an event: a first line that is a whole trigger payload or
//! batch document is read as that document whatever its size (it is in memory already), and
//! must be all the input holds; a document on any other line of JSON Lines stops the run with
//! an error naming the line (before anything is written when it is among the judged lines).

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};

use chrono::{DateTime, Utc};
use pipeline_core::store::Store;
use pipeline_handlers::{Pipeline, Validate};
use pipeline_ingest::{self as ingest, Item, SplitLimits, Splitter};
use serde_json::Value;
use tokio::sync::mpsc::Sender;

use crate::error::CliError;
use crate::jobs::{Job, document_among_lines, document_kind, document_line, not_json};

/// The largest input read whole when its first line does not settle what it is (a Lambda
/// payload is at most 6 MB, a batch document 256 KB).
pub const DOCUMENT_LIMIT: usize = 16 << 20;

/// How many of a streamed input's first items `--max-undecodable` judges before anything is
/// written (an input read whole is judged whole).
pub const JUDGED_ITEMS: usize = 10_000;

/// Bytes read at a time from an input.
const READ_BUFFER: usize = 1 << 16;

/// One input, opened and judged, not yet processed.
pub struct Source {
    name: String,
    received_at: DateTime<Utc>,
    kind: Kind,
    /// The input's size in bytes when known (a file), for the progress bar.
    pub len: Option<u64>,
}

enum Kind {
    /// A document or small input read whole, already cut into batches.
    Whole(Vec<Job>),
    /// JSON Lines: the first items (already decoded, to be judged), then the rest of the input.
    Lines {
        head: Vec<Item>,
        rest: Box<dyn BufRead + Send>,
        line_no: usize,
    },
}

impl Source {
    /// Opens `name` (a path, or `-` for stdin) and reads as much as it takes to know what it
    /// is and to judge it.
    pub fn open<S: Store>(name: &str, p: &Pipeline<S>) -> Result<Source, CliError> {
        let io = |e| CliError::io(name, e);
        let (mut reader, len): (Box<dyn BufRead + Send>, Option<u64>) = if name == "-" {
            (
                Box::new(BufReader::with_capacity(READ_BUFFER, std::io::stdin())),
                None,
            )
        } else {
            let file = File::open(name).map_err(io)?;
            let len = file.metadata().ok().map(|m| m.len());
            (Box::new(BufReader::with_capacity(READ_BUFFER, file)), len)
        };
        let received_at = Utc::now();
        let mut first = Vec::new();
        reader.read_until(b'\n', &mut first).map_err(io)?;
        let source = |kind| Source {
            name: name.to_owned(),
            received_at,
            kind,
            len,
        };
        if let Some((what, doc)) = document_line(&first) {
            if !only_blank_left(&mut reader).map_err(io)? {
                return Err(document_among_lines(name, 1, what, true));
            }
            // Parsed once already: cut the document we hold rather than reading it again.
            let jobs = crate::jobs::document_jobs(name, doc, p)?.unwrap_or_default();
            return Ok(source(Kind::Whole(jobs)));
        }
        if !is_event_line(&first) {
            let mut whole = first;
            (&mut reader)
                .take((DOCUMENT_LIMIT + 1 - whole.len().min(DOCUMENT_LIMIT)) as u64)
                .read_to_end(&mut whole)
                .map_err(io)?;
            if whole.len() <= DOCUMENT_LIMIT {
                return Ok(source(Kind::Whole(crate::jobs::load_bytes(
                    name, whole, p,
                )?)));
            }
            return Ok(source(lines(
                name,
                Box::new(Cursor::new(whole).chain(reader)),
            )?));
        }
        Ok(source(lines(
            name,
            Box::new(Cursor::new(first).chain(reader)),
        )?))
    }

    /// Items judged, and how many of them are not JSON at all (or not UTF-8).
    pub fn judged(&self) -> (usize, usize) {
        match &self.kind {
            Kind::Whole(jobs) => crate::jobs::undecodable(jobs),
            Kind::Lines { head, .. } => (
                head.len(),
                head.iter()
                    .filter(|i| match i {
                        Item::Quarantined(q) => q.reasons.iter().any(|r| not_json(&r.code)),
                        Item::Event(_) => false,
                    })
                    .count(),
            ),
        }
    }
}

/// Whether a first line is a complete JSON value that is not a whole document on its own (a
/// trigger payload or a batch document): then the input is JSON Lines.
fn is_event_line(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    serde_json::from_str::<Value>(text).is_ok_and(|doc| document_kind(&doc).is_none())
}

/// Whether nothing but whitespace is left to read.
fn only_blank_left(reader: &mut dyn BufRead) -> std::io::Result<bool> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(true);
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        let n = buf.len();
        reader.consume(n);
    }
}

/// A JSON Lines source: its first [`JUDGED_ITEMS`] items decoded, the rest left to read.
fn lines(name: &str, mut rest: Box<dyn BufRead + Send>) -> Result<Kind, CliError> {
    let mut head = Vec::new();
    let mut line_no = 0;
    let mut buf = Vec::new();
    while head.len() < JUDGED_ITEMS {
        match next_item(name, &mut rest, &mut line_no, &mut buf, true)? {
            Some(item) => head.push(item),
            None => break,
        }
    }
    Ok(Kind::Lines {
        head,
        rest,
        line_no,
    })
}

/// The next non-blank line's item, or `None` at the end of the input.
fn next_item(
    name: &str,
    rest: &mut dyn BufRead,
    line_no: &mut usize,
    buf: &mut Vec<u8>,
    before_any_write: bool,
) -> Result<Option<Item>, CliError> {
    loop {
        buf.clear();
        if rest
            .read_until(b'\n', buf)
            .map_err(|e| CliError::io(name, e))?
            == 0
        {
            return Ok(None);
        }
        *line_no += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(buf);
        if let Some((what, _)) = document_line(line) {
            return Err(document_among_lines(name, *line_no, what, before_any_write));
        }
        if let Some(item) = ingest::decode_byte_line(name, *line_no, line) {
            return Ok(Some(item));
        }
    }
}

/// A validated batch document and how far through its input the reader was.
pub struct Fed {
    /// The batch, validated.
    pub job: Job,
    /// Bytes read from file inputs so far (for the progress bar).
    pub bytes_read: u64,
}

/// Reads every source in order, sending each batch validated; stops early when the receiver
/// is gone (the run failed) and sends a read error as the last message.
pub fn feed(
    sources: Vec<Source>,
    validate: Validate,
    limits: SplitLimits,
    tx: Sender<Result<Fed, CliError>>,
) {
    let mut done_bytes = 0u64;
    for source in sources {
        let send = |job: Job, bytes_read: u64| {
            let job = match job {
                Job::Raw(b) => Job::Valid(validate.validate(b)),
                other => other,
            };
            tx.blocking_send(Ok(Fed { job, bytes_read })).is_ok()
        };
        match source.kind {
            Kind::Whole(jobs) => {
                let end = done_bytes + source.len.unwrap_or(0);
                for job in jobs {
                    if !send(job, end) {
                        return;
                    }
                }
                done_bytes = end;
            }
            Kind::Lines {
                head,
                mut rest,
                mut line_no,
            } => {
                let mut splitter = Splitter::new(source.received_at, limits);
                // Progress is counted in lines' bytes as they are read.
                let mut read = 0u64;
                // A batch is received when its lines have been read, not when the input was
                // opened: on a live stream (`producer | pipeline run -`) the time the input
                // was opened soon lies far behind, and every later event would look ahead of
                // its receipt (`future_timestamp`).
                let stamped = |mut batch: pipeline_core::batch::Batch<_>| {
                    batch.received_at = Utc::now();
                    batch
                };
                let push =
                    |item: Item, read: u64, splitter: &mut Splitter| match splitter.push(item) {
                        Some(batch) => send(Job::Raw(stamped(batch)), done_bytes + read),
                        None => true,
                    };
                for item in head {
                    if !push(item, read, &mut splitter) {
                        return;
                    }
                }
                let mut buf = Vec::new();
                loop {
                    match next_item(&source.name, &mut rest, &mut line_no, &mut buf, false) {
                        Ok(Some(item)) => {
                            read += buf.len() as u64;
                            if !push(item, read, &mut splitter) {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                    }
                }
                let end = done_bytes + source.len.unwrap_or(read);
                if let Some(batch) = splitter.finish()
                    && !send(Job::Raw(stamped(batch)), end)
                {
                    return;
                }
                done_bytes = end;
            }
        }
    }
}

//! The source of the `replay` subcommand: the lines of a dead-letter file
//! (or any file of event lines), fed to the dispatcher as if they came from
//! the stream.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use crate::dispatch::Dispatcher;
use crate::shutdown::Shutdown;
use crate::stream::{MAX_MESSAGE_BYTES, ReaderEnd};

/// Feeds every line of `file` to the dispatcher, then returns so the workers
/// drain. A line longer than the stream's message limit is audited as
/// malformed, as it would be on the stream.
pub fn feed(file: &Path, dispatcher: &Dispatcher, shutdown: &Shutdown) -> ReaderEnd {
    let handle = match File::open(file) {
        Ok(handle) => handle,
        Err(err) => {
            log::error!("cannot open replay file {}: {err}", file.display());
            return ReaderEnd::StreamEnded;
        }
    };
    let mut lines = 0u64;
    for line in BufReader::new(handle).split(b'\n') {
        if shutdown.is_stopping() {
            return ReaderEnd::Stopped;
        }
        let line = match line {
            Ok(line) => line,
            Err(err) => {
                log::error!("cannot read replay file {}: {err}", file.display());
                break;
            }
        };
        lines += 1;
        feed_line(&line, dispatcher);
    }
    log::info!("replay read {lines} lines from {}", file.display());
    ReaderEnd::StreamEnded
}

fn feed_line(line: &[u8], dispatcher: &Dispatcher) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    if line.len() > MAX_MESSAGE_BYTES {
        let reason = format!(
            "line of {} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit",
            line.len()
        );
        dispatcher.malformed(&reason, &crate::event::excerpt_bytes(line, 200));
        return;
    }
    match std::str::from_utf8(line) {
        Ok(text) => dispatcher.handle_text(text, Instant::now()),
        Err(_) => dispatcher.malformed(
            "line is not valid UTF-8",
            &crate::event::excerpt_bytes(line, 200),
        ),
    }
}

//! The event feed: one global position in the script or load, shared by all stream connections.
//!
//! A connection takes frames, writes them, then either confirms them (they
//! reached the socket) or gives them back (the write failed), so a reconnect
//! continues where the stream left off. After a drop caused by a fault, the
//! last frames are scheduled again to give the client duplicates.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use tungstenite::Bytes;

use crate::faults::MAX_REPLAY_OVERLAP;
use crate::load::{LoadGenerator, LoadSpec};

enum Source {
    Silent,
    Script { lines: Vec<Bytes>, next: usize },
    Load(LoadGenerator),
}

pub struct Feed {
    source: Source,
    /// Frames to send before the next new one: given-back and replayed frames.
    front: VecDeque<Bytes>,
    /// Last confirmed frames, newest at the back, at most `MAX_REPLAY_OVERLAP`.
    recent: VecDeque<Bytes>,
    /// Frames taken but neither confirmed nor given back.
    in_flight: usize,
}

impl Feed {
    /// Creates a feed without events. The stream stays open and sends only heartbeats.
    pub fn silent() -> Self {
        Self::with_source(Source::Silent)
    }

    /// Reads a JSONL script. Each non-blank line becomes one frame, byte for byte.
    pub fn script(path: &Path) -> io::Result<Self> {
        let content = std::fs::read(path)?;
        Ok(Self::with_source(Source::Script {
            lines: script_lines(&content),
            next: 0,
        }))
    }

    pub fn load(spec: LoadSpec) -> Self {
        Self::with_source(Source::Load(LoadGenerator::new(spec)))
    }

    fn with_source(source: Source) -> Self {
        Self {
            source,
            front: VecDeque::new(),
            recent: VecDeque::new(),
            in_flight: 0,
        }
    }

    /// Returns true for a feed without events.
    pub fn is_silent(&self) -> bool {
        matches!(self.source, Source::Silent)
    }

    /// Number of frames in the script or load.
    pub fn total(&self) -> u64 {
        match &self.source {
            Source::Silent => 0,
            Source::Script { lines, .. } => lines.len() as u64,
            Source::Load(generator) => generator.total(),
        }
    }

    /// Takes the next frame to send, if any is left.
    pub fn take(&mut self) -> Option<Bytes> {
        let frame = self.front.pop_front().or_else(|| self.next_new())?;
        self.in_flight += 1;
        Some(frame)
    }

    fn next_new(&mut self) -> Option<Bytes> {
        match &mut self.source {
            Source::Silent => None,
            Source::Script { lines, next } => {
                let line = lines.get(*next)?.clone();
                *next += 1;
                Some(line)
            }
            Source::Load(generator) => generator.next_frame(),
        }
    }

    /// Records frames that reached the socket, oldest first.
    pub fn confirm(&mut self, frames: &[Bytes]) {
        self.in_flight = self.in_flight.saturating_sub(frames.len());
        for frame in frames {
            if self.recent.len() == MAX_REPLAY_OVERLAP as usize {
                self.recent.pop_front();
            }
            self.recent.push_back(frame.clone());
        }
    }

    /// Puts back frames whose write failed, oldest first, so they are sent next.
    pub fn give_back(&mut self, frames: Vec<Bytes>) {
        self.in_flight = self.in_flight.saturating_sub(frames.len());
        for frame in frames.into_iter().rev() {
            self.front.push_front(frame);
        }
    }

    /// Schedules the last `count` confirmed frames to be sent again next.
    pub fn schedule_replay(&mut self, count: u64) {
        let count = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(self.recent.len());
        let start = self.recent.len() - count;
        for frame in self.recent.range(start..).rev() {
            self.front.push_front(frame.clone());
        }
    }

    /// Returns true once every frame has been sent and confirmed.
    pub fn is_done(&self) -> bool {
        self.front.is_empty() && self.in_flight == 0 && self.source_exhausted()
    }

    fn source_exhausted(&self) -> bool {
        match &self.source {
            Source::Silent => true,
            Source::Script { lines, next } => *next >= lines.len(),
            Source::Load(generator) => generator.remaining() == 0,
        }
    }
}

/// Splits a script into its non-blank lines, without the line terminators.
fn script_lines(content: &[u8]) -> Vec<Bytes> {
    content
        .split(|&byte| byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(Bytes::copy_from_slice)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script_feed(content: &str) -> Feed {
        Feed::with_source(Source::Script {
            lines: script_lines(content.as_bytes()),
            next: 0,
        })
    }

    fn take_all(feed: &mut Feed) -> Vec<Bytes> {
        std::iter::from_fn(|| feed.take()).collect()
    }

    #[test]
    fn script_skips_blank_lines() {
        let feed = script_feed("a\r\n\n  \nb\n{broken\n");
        assert_eq!(feed.total(), 3);
    }

    #[test]
    fn given_back_frames_come_first() {
        let mut feed = script_feed("a\nb\nc\n");
        let first = feed.take().unwrap();
        let second = feed.take().unwrap();
        feed.give_back(vec![first, second]);
        assert_eq!(take_all(&mut feed), vec!["a", "b", "c"]);
    }

    #[test]
    fn replay_resends_last_frames() {
        let mut feed = script_feed("a\nb\nc\nd\n");
        let sent: Vec<Bytes> = (0..3).filter_map(|_| feed.take()).collect();
        feed.confirm(&sent);
        feed.schedule_replay(2);
        assert_eq!(take_all(&mut feed), vec!["b", "c", "d"]);
    }

    #[test]
    fn done_after_all_confirmed() {
        let mut feed = script_feed("a\n");
        let frame = feed.take().unwrap();
        assert!(!feed.is_done());
        feed.confirm(&[frame]);
        assert!(feed.is_done());
    }
}

//! The event feed: one global position in the script or load, shared by all stream connections.
//!
//! A connection takes frames, writes them, then either confirms them (they
//! reached the socket) or gives them back (the write failed), so a reconnect
//! continues where the stream left off. After a drop caused by a fault, the
//! last frames are scheduled again to give the client duplicates.

use std::collections::VecDeque;
use std::path::Path;

use crate::faults::MAX_REPLAY_OVERLAP;
use crate::load::{LoadGenerator, LoadSpec};
use crate::outgoing::Outgoing;
use crate::script;

enum Source {
    Silent,
    Script { items: Vec<Outgoing>, next: usize },
    Load(LoadGenerator),
}

pub struct Feed {
    source: Source,
    /// Frames to send before the next new one: given-back and replayed frames.
    front: VecDeque<Outgoing>,
    /// Last confirmed frames, newest at the back, at most `MAX_REPLAY_OVERLAP`.
    recent: VecDeque<Outgoing>,
    /// Frames taken but neither confirmed nor given back.
    in_flight: usize,
}

impl Feed {
    /// Creates a feed without events. The stream stays open and sends only heartbeats.
    pub fn silent() -> Self {
        Self::with_source(Source::Silent)
    }

    /// Reads a JSONL script: each non-blank line becomes one frame, byte for
    /// byte, apart from the `#` directives and comments that `script` describes.
    pub fn script(path: &Path) -> Result<Self, String> {
        let content = std::fs::read(path)
            .map_err(|e| format!("reading the script {} failed: {e}", path.display()))?;
        let items = script::parse(&content)
            .map_err(|e| format!("invalid script {}, {e}", path.display()))?;
        Ok(Self::with_source(Source::Script { items, next: 0 }))
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
            Source::Script { items, .. } => items.len() as u64,
            Source::Load(generator) => generator.total(),
        }
    }

    /// Takes the next frame to send, if any is left.
    pub fn take(&mut self) -> Option<Outgoing> {
        let frame = self.front.pop_front().or_else(|| self.next_new())?;
        self.in_flight += 1;
        Some(frame)
    }

    fn next_new(&mut self) -> Option<Outgoing> {
        match &mut self.source {
            Source::Silent => None,
            Source::Script { items, next } => {
                let item = items.get(*next)?.clone();
                *next += 1;
                Some(item)
            }
            Source::Load(generator) => generator.next_frame().map(Outgoing::Text),
        }
    }

    /// Records frames that reached the socket, oldest first.
    pub fn confirm(&mut self, frames: &[Outgoing]) {
        self.in_flight = self.in_flight.saturating_sub(frames.len());
        for frame in frames {
            if self.recent.len() == MAX_REPLAY_OVERLAP as usize {
                self.recent.pop_front();
            }
            self.recent.push_back(frame.clone());
        }
    }

    /// Puts back frames whose write failed, oldest first, so they are sent next.
    pub fn give_back(&mut self, frames: Vec<Outgoing>) {
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
            Source::Script { items, next } => *next >= items.len(),
            Source::Load(generator) => generator.remaining() == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::Bytes;

    fn script_feed(content: &str) -> Feed {
        Feed::with_source(Source::Script {
            items: script::parse(content.as_bytes()).unwrap(),
            next: 0,
        })
    }

    fn take_all(feed: &mut Feed) -> Vec<Outgoing> {
        std::iter::from_fn(|| feed.take()).collect()
    }

    fn texts(lines: &[&'static str]) -> Vec<Outgoing> {
        let text = |line: &&'static str| Outgoing::Text(Bytes::from_static(line.as_bytes()));
        lines.iter().map(text).collect()
    }

    #[test]
    fn script_skips_blank_lines() {
        let feed = script_feed("a\r\n\n  \nb\n{broken\n");
        assert_eq!(feed.total(), 3);
    }

    #[test]
    fn directives_are_one_position_each() {
        let mut feed = script_feed("#close 4000\n# comment\n#fragmented 2 {}\na\n");
        assert_eq!(feed.total(), 3);
        assert_eq!(
            feed.take(),
            Some(Outgoing::Close {
                code: 4000,
                reason: String::new()
            })
        );
    }

    #[test]
    fn given_back_frames_come_first() {
        let mut feed = script_feed("a\nb\nc\n");
        let first = feed.take().unwrap();
        let second = feed.take().unwrap();
        feed.give_back(vec![first, second]);
        assert_eq!(take_all(&mut feed), texts(&["a", "b", "c"]));
    }

    #[test]
    fn replay_resends_last_frames() {
        let mut feed = script_feed("a\nb\nc\nd\n");
        let sent: Vec<Outgoing> = (0..3).filter_map(|_| feed.take()).collect();
        feed.confirm(&sent);
        feed.schedule_replay(2);
        assert_eq!(take_all(&mut feed), texts(&["b", "c", "d"]));
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

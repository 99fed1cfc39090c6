//! The write-ahead journal of accepted states, so a SIGKILL or a crash
//! does not lose a state the agent read from the stream but had not
//! finished. Together with the store it owns the files under `--state-dir`.
//!
//! Each accepted state is appended, as one JSON line, to the current
//! segment file `journal-<id>.jsonl` before it is queued. A segment counts
//! its unfinished states. Once a segment is no longer current and all of
//! its states are finished (applied, superseded, given up or coalesced),
//! it is deleted. At start-up every remaining segment is read back and its
//! states are queued again; the ones already applied are then skipped by
//! the sequence check, or answered 409 by the gateway.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::event::SessionState;

const PREFIX: &str = "journal-";
const SUFFIX: &str = ".jsonl";
/// A segment is closed once it holds this many bytes or is this old, so
/// finished segments can be deleted while the agent keeps running.
const SEGMENT_MAX_BYTES: u64 = 4 << 20;
const SEGMENT_MAX_AGE: Duration = Duration::from_secs(10);

/// A state read back from the journal at start-up.
pub struct Recovered {
    pub segment: u64,
    /// The event's `data` object, to be validated again.
    pub data: serde_json::Value,
}

pub struct Journal {
    dir: PathBuf,
    /// Only the thread that feeds the dispatcher appends, so this lock is
    /// never contended; it is held across the append's write on purpose.
    writer: Mutex<Writer>,
    /// Unfinished states per segment.
    outstanding: Mutex<BTreeMap<u64, u64>>,
}

struct Writer {
    /// The line being appended, reused for every state.
    line: Vec<u8>,
    id: u64,
    file: Option<File>,
    opened: Instant,
    bytes: u64,
    failing: bool,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{id:016}{SUFFIX}"))
}

fn segment_id(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

impl Journal {
    /// Opens the journal in `dir` and returns the states of the segments an
    /// earlier run left behind.
    pub fn open(dir: &Path) -> (Journal, Vec<Recovered>) {
        let mut ids: Vec<u64> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| segment_id(&entry.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();

        let mut recovered = Vec::new();
        let mut outstanding = BTreeMap::new();
        for id in &ids {
            let states = read_segment(&segment_path(dir, *id));
            outstanding.insert(*id, states.len() as u64);
            recovered.extend(
                states
                    .into_iter()
                    .map(|data| Recovered { segment: *id, data }),
            );
        }
        if !recovered.is_empty() {
            log::warn!(
                "recovered {} unfinished states from {} journal segments of an earlier run",
                recovered.len(),
                ids.len()
            );
        }

        let next = ids.last().map_or(1, |id| id + 1);
        let journal = Journal {
            dir: dir.to_path_buf(),
            writer: Mutex::new(Writer {
                line: Vec::with_capacity(1024),
                id: next,
                file: None,
                opened: Instant::now(),
                bytes: 0,
                failing: false,
            }),
            outstanding: Mutex::new(outstanding),
        };
        (journal, recovered)
    }

    /// Appends an accepted state and returns its segment, or None when the
    /// journal cannot be written (the state is then only kept in memory).
    pub fn append(&self, state: &SessionState) -> Option<u64> {
        let mut guard = self.writer.lock();
        let writer = &mut *guard;
        if writer.file.is_none()
            || writer.bytes >= SEGMENT_MAX_BYTES
            || writer.opened.elapsed() >= SEGMENT_MAX_AGE
        {
            self.rotate(writer);
        }
        let id = writer.id;
        let line = &mut writer.line;
        line.clear();
        state.write_event_data(line);
        line.push(b'\n');
        let written = writer.file.as_mut().map(|file| file.write_all(line));
        match written {
            Some(Ok(())) => {
                writer.bytes += writer.line.len() as u64;
                writer.failing = false;
                *self.outstanding.lock().entry(id).or_default() += 1;
                Some(id)
            }
            Some(Err(err)) => {
                if !writer.failing {
                    log::error!(
                        "cannot write journal segment {}: {err}",
                        segment_path(&self.dir, id).display()
                    );
                    writer.failing = true;
                }
                writer.file = None;
                None
            }
            None => None,
        }
    }

    fn rotate(&self, writer: &mut Writer) {
        if writer.file.take().is_some() {
            writer.id += 1;
        }
        let path = segment_path(&self.dir, writer.id);
        match OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                writer.file = Some(file);
                writer.opened = Instant::now();
                writer.bytes = 0;
                self.outstanding.lock().entry(writer.id).or_default();
            }
            Err(err) => {
                if !writer.failing {
                    log::error!("cannot create journal segment {}: {err}", path.display());
                    writer.failing = true;
                }
            }
        }
    }

    /// Marks one state of `segment` finished.
    pub fn finish(&self, segment: Option<u64>) {
        let Some(segment) = segment else {
            return;
        };
        if let Some(count) = self.outstanding.lock().get_mut(&segment) {
            *count = count.saturating_sub(1);
        }
    }

    /// Deletes every finished segment except the one being written; with
    /// `all`, the current one too when it is finished (at a clean stop).
    pub fn prune(&self, all: bool) {
        let current = self.writer.lock().id;
        let finished: Vec<u64> = {
            let mut outstanding = self.outstanding.lock();
            let ids: Vec<u64> = outstanding
                .iter()
                .filter(|(id, count)| **count == 0 && (all || **id != current))
                .map(|(id, _)| *id)
                .collect();
            for id in &ids {
                outstanding.remove(id);
            }
            ids
        };
        if all && finished.contains(&current) {
            self.writer.lock().file = None;
        }
        for id in finished {
            let path = segment_path(&self.dir, id);
            if let Err(err) = fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                log::warn!(
                    "cannot delete finished journal segment {}: {err}",
                    path.display()
                );
            }
        }
    }

    /// Unfinished states across all segments.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.lock().values().sum()
    }
}

/// Reads a segment's complete lines; a torn last line (a crash in the
/// middle of an append) and lines that are not JSON are skipped.
fn read_segment(path: &Path) -> Vec<serde_json::Value> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    let mut states = Vec::new();
    for line in BufReader::new(file).split(b'\n').map_while(Result::ok) {
        match serde_json::from_slice(&line) {
            Ok(value) => states.push(value),
            Err(_) if line.is_empty() => {}
            Err(err) => log::warn!(
                "skipped a damaged line in journal {}: {err}",
                path.display()
            ),
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Codec;

    fn state(session: &str, sequence: u64) -> SessionState {
        crate::event::test_state(session, sequence, Codec::Vp9)
    }

    #[test]
    fn unfinished_states_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, recovered) = Journal::open(dir.path());
        assert!(recovered.is_empty());
        let first = journal.append(&state("a", 1));
        let second = journal.append(&state("b", 2));
        journal.finish(first);
        assert_eq!(journal.outstanding(), 1);
        drop(journal);

        let (journal, recovered) = Journal::open(dir.path());
        assert_eq!(recovered.len(), 2, "a segment comes back whole");
        assert_eq!(recovered[1].data["sessionId"], "b");
        assert_eq!(recovered[1].segment, second.unwrap());
        assert_eq!(journal.outstanding(), 2);
    }

    #[test]
    fn finished_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path());
        let segment = journal.append(&state("a", 1));
        journal.prune(false);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the current segment stays"
        );
        journal.finish(segment);
        journal.prune(true);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let (_, recovered) = Journal::open(dir.path());
        assert!(recovered.is_empty());
    }

    #[test]
    fn torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path());
        journal.append(&state("a", 1));
        drop(journal);
        let path = segment_path(dir.path(), 1);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"sessionId\":\"b\",\"seq").unwrap();
        let (_, recovered) = Journal::open(dir.path());
        assert_eq!(recovered.len(), 1);
    }
}

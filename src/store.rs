//! Everything the agent keeps under `--state-dir`: per-session memory (last
//! applied sequence, codec and directive), the dead-letter file and the
//! instance lock. Only this module writes files there.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::event::{Codec, Directive, SessionState};

pub const SESSIONS_FILE: &str = "sessions.json";
pub const DEAD_LETTER_FILE: &str = "dead-letter.jsonl";
pub const LOCK_FILE: &str = "agent.lock";

/// The agent's memory of a session, kept between states and across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMemory {
    pub sequence: u64,
    pub codec: Codec,
    pub directive: Directive,
    /// Unix seconds of the last applied state, for forgetting idle sessions.
    /// Memory written before this field existed counts as fresh.
    #[serde(default = "unix_now")]
    pub updated: u64,
}

/// Sessions with no applied state for this long are forgotten when memory
/// is saved, so a daemon that runs for months keeps memory bounded by the
/// sessions of the last week. Forgetting is safe: a late event for a
/// forgotten session is sent again, and the gateway's If-Match check
/// answers 409, so it never overwrites a newer state.
pub const SESSION_MEMORY_TTL: Duration = Duration::from_secs(7 * 86_400);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug)]
pub enum StoreError {
    CreateDir { path: PathBuf, reason: String },
    Corrupt { path: PathBuf, reason: String },
    Io { path: PathBuf, reason: String },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::CreateDir { path, reason } => {
                write!(
                    f,
                    "cannot create state directory {}: {reason}",
                    path.display()
                )
            }
            StoreError::Corrupt { path, reason } => write!(
                f,
                "state file {} is damaged ({reason}); move it away to start with empty session memory",
                path.display()
            ),
            StoreError::Io { path, reason } => {
                write!(f, "cannot access {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

fn io_error(path: &Path, err: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}

/// Creates the state directory with mode 0700 when it does not exist.
pub fn ensure_state_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| StoreError::CreateDir {
            path: dir.to_path_buf(),
            reason: err.to_string(),
        })
}

/// The instance lock: an OS file lock on `<state-dir>/agent.lock`, released
/// by the kernel when the process ends, however it ends.
pub struct InstanceLock {
    _file: File,
}

/// Takes the instance lock, or returns None when another process holds it.
pub fn try_lock_instance(dir: &Path) -> Result<Option<InstanceLock>, StoreError> {
    ensure_state_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|err| io_error(&path, err))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(InstanceLock { _file: file })),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(err)) => Err(io_error(&path, err)),
    }
}

/// Per-session memory in RAM, saved as one snapshot file. Workers update
/// the map under a short lock; [`SessionStore::save`] copies it out and
/// writes outside the lock.
pub struct SessionStore {
    dir: PathBuf,
    sessions: Mutex<Memory>,
    dead_letters: Mutex<Option<File>>,
}

#[derive(Default)]
struct Memory {
    map: HashMap<String, SessionMemory>,
    /// Bumped on every change, so a save can tell whether it has work.
    generation: u64,
    saved_generation: u64,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    sessions: HashMap<String, SessionMemory>,
}

impl SessionStore {
    /// Loads the snapshot from `dir` (created with mode 0700 if missing).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        ensure_state_dir(dir)?;
        warn_if_open_to_others(dir);
        let map = match load_snapshot(&dir.join(SESSIONS_FILE)) {
            Err(StoreError::Corrupt { path, reason }) => set_aside_corrupt(&path, &reason)?,
            other => other?,
        };
        remove_stale_temporaries(dir);
        Ok(Self {
            dir: dir.to_path_buf(),
            sessions: Mutex::new(Memory {
                map,
                ..Memory::default()
            }),
            dead_letters: Mutex::new(None),
        })
    }

    pub fn get(&self, session_id: &str) -> Option<SessionMemory> {
        self.sessions.lock().map.get(session_id).copied()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records an applied state and returns the memory it replaces.
    pub fn remember(&self, state: &SessionState) -> Option<SessionMemory> {
        let memory = SessionMemory {
            sequence: state.sequence,
            codec: state.codec,
            directive: state.directive,
            updated: unix_now(),
        };
        let mut sessions = self.sessions.lock();
        sessions.generation += 1;
        let previous = sessions.map.insert(state.session_id.clone(), memory);
        // Two workers never share a session, but keep the highest sequence anyway.
        if let Some(previous) = previous.filter(|p| p.sequence > memory.sequence) {
            sessions.map.insert(state.session_id.clone(), previous);
        }
        previous
    }

    /// Writes the snapshot atomically (temporary file, fsync, rename, fsync of
    /// the directory) when something changed since the last save.
    pub fn save(&self) -> Result<(), StoreError> {
        let (snapshot, generation) = {
            let mut sessions = self.sessions.lock();
            forget_idle(&mut sessions, unix_now());
            if sessions.generation == sessions.saved_generation {
                return Ok(());
            }
            let snapshot = Snapshot {
                version: 1,
                sessions: sessions.map.clone(),
            };
            (snapshot, sessions.generation)
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|err| StoreError::Io {
            path: self.dir.join(SESSIONS_FILE),
            reason: err.to_string(),
        })?;
        write_atomically(&self.dir, SESSIONS_FILE, &bytes)?;
        let mut sessions = self.sessions.lock();
        sessions.saved_generation = sessions.saved_generation.max(generation);
        Ok(())
    }

    /// Appends one dead letter: the whole state, so `replay` can send it
    /// again, with the reason it was given up. With `durable`, the file is
    /// fsynced at once, because a dead letter must survive a crash. A drain
    /// that gives up many states at once passes false and calls
    /// [`SessionStore::sync_dead_letters`] at the end.
    pub fn dead_letter(
        &self,
        state: &SessionState,
        reason: &str,
        durable: bool,
    ) -> Result<(), StoreError> {
        let line = serde_json::json!({
            "timestamp": crate::audit::format_timestamp(SystemTime::now()),
            "reason": reason,
            "eventType": crate::event::VIDEO_EVENT_TYPE,
            "data": state.to_event_data(),
        });
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');

        let path = self.dir.join(DEAD_LETTER_FILE);
        let mut guard = self.dead_letters.lock();
        if guard.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|err| io_error(&path, err))?;
            *guard = Some(file);
        }
        // NOTE: the lock is held across this write on purpose: it serializes
        // appends of whole lines to one file, and dead letters are rare.
        let Some(file) = guard.as_mut() else {
            return Ok(());
        };
        file.write_all(&bytes)
            .and_then(|()| if durable { file.sync_data() } else { Ok(()) })
            .map_err(|err| io_error(&path, err))
    }

    /// Fsyncs the dead-letter file, if one was written.
    pub fn sync_dead_letters(&self) -> Result<(), StoreError> {
        let guard = self.dead_letters.lock();
        match guard.as_ref() {
            Some(file) => file
                .sync_data()
                .map_err(|err| io_error(&self.dir.join(DEAD_LETTER_FILE), err)),
            None => Ok(()),
        }
    }

    pub fn dead_letter_path(&self) -> PathBuf {
        self.dir.join(DEAD_LETTER_FILE)
    }
}

fn forget_idle(memory: &mut Memory, now: u64) {
    let oldest = now.saturating_sub(SESSION_MEMORY_TTL.as_secs());
    let before = memory.map.len();
    memory.map.retain(|_, session| session.updated >= oldest);
    let forgotten = before - memory.map.len();
    if forgotten > 0 {
        memory.generation += 1;
        log::info!(
            "forgot {forgotten} sessions idle for more than {} days",
            SESSION_MEMORY_TTL.as_secs() / 86_400
        );
    }
}

/// Moves a damaged snapshot aside and starts with empty memory, instead of
/// refusing to start: with no memory the agent only sends states again, and
/// the gateway's If-Match check rejects any that are not newer.
fn set_aside_corrupt(
    path: &Path,
    reason: &str,
) -> Result<HashMap<String, SessionMemory>, StoreError> {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = path.with_extension(format!("json.damaged-{stamp}"));
    fs::rename(path, &aside).map_err(|err| io_error(path, err))?;
    log::error!(
        "session memory {} is damaged ({reason}); moved it to {} and starting with empty memory",
        path.display(),
        aside.display()
    );
    Ok(HashMap::new())
}

fn load_snapshot(path: &Path) -> Result<HashMap<String, SessionMemory>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(err) => return Err(io_error(path, err)),
    };
    let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|err| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    Ok(snapshot.sessions)
}

/// Writes `name` in `dir` so a crash leaves either the old or the new
/// content, never a mix.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let final_path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|err| io_error(&temporary, err))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|err| io_error(&temporary, err))?;
    drop(file);
    fs::rename(&temporary, &final_path).map_err(|err| io_error(&final_path, err))?;
    if let Ok(directory) = File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

fn remove_stale_temporaries(dir: &Path) {
    let _ = fs::remove_file(dir.join(format!(".{SESSIONS_FILE}.tmp")));
}

fn warn_if_open_to_others(dir: &Path) {
    if let Ok(metadata) = fs::metadata(dir)
        && metadata.permissions().mode() & 0o077 != 0
    {
        log::warn!(
            "state directory {} is accessible to other users; run chmod 700 on it",
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Codec;

    fn state(session: &str, sequence: u64) -> SessionState {
        crate::event::test_state(session, sequence, Codec::H264)
    }

    #[test]
    fn memory_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        assert!(store.remember(&state("a", 3)).is_none());
        store.save().unwrap();
        drop(store);

        let store = SessionStore::open(dir.path()).unwrap();
        let memory = store.get("a").unwrap();
        assert_eq!(memory.sequence, 3);
        assert_eq!(memory.codec, Codec::H264);
        let mode = fs::metadata(dir.path().join(SESSIONS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn idle_sessions_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        store.remember(&state("fresh", 1));
        store.remember(&state("stale", 1));
        store.sessions.lock().map.get_mut("stale").unwrap().updated = 0;
        store.save().unwrap();
        assert!(store.get("fresh").is_some());
        assert!(store.get("stale").is_none());
    }

    #[test]
    fn corrupt_snapshot_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SESSIONS_FILE), b"{\"version\":1,\"sess").unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        assert!(store.is_empty());
        assert!(!dir.path().join(SESSIONS_FILE).exists());
        let aside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("sessions.json.damaged-")
            })
            .collect();
        assert_eq!(aside.len(), 1);
    }

    #[test]
    fn second_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock_instance(dir.path()).unwrap();
        assert!(first.is_some());
        assert!(try_lock_instance(dir.path()).unwrap().is_none());
        drop(first);
        assert!(try_lock_instance(dir.path()).unwrap().is_some());
    }

    #[test]
    fn dead_letter_holds_whole_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        store
            .dead_letter(&state("a", 9), "retries exhausted", true)
            .unwrap();
        let text = fs::read_to_string(store.dead_letter_path()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["data"]["sessionId"], "a");
        assert_eq!(line["data"]["sequenceNumber"], 9);
        assert_eq!(line["reason"], "retries exhausted");
    }
}

//! Shared helpers for the integration tests: start the simulator and the
//! agent binary on loopback, and read what they left behind.

#![allow(dead_code)]

pub mod servers;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const CLIENT_ID: &str = "sim-client";
pub const CLIENT_SECRET: &str = "sim-secret-Zq93-never-print";

/// The sample stream shipped with the repository.
pub fn sample_events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample-events.jsonl")
}

/// A running simulator, killed on drop.
pub struct Sim {
    child: Child,
    pub api: String,
    pub events: String,
    http: ureq::Agent,
}

impl Sim {
    /// Starts `genesys-video-sim` with `args` on loopback ports chosen by the OS.
    pub fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_genesys-video-sim"))
            .args([
                "--listen-api",
                "127.0.0.1:0",
                "--listen-events",
                "127.0.0.1:0",
            ])
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start genesys-video-sim");
        let stdout = child.stdout.take().expect("simulator stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut api = String::new();
        let mut events = String::new();
        for _ in 0..2 {
            let line = lines
                .next()
                .expect("simulator printed its addresses")
                .expect("read simulator stdout");
            if let Some(url) = line.strip_prefix("api ") {
                api = url.trim().to_owned();
            } else if let Some(url) = line.strip_prefix("events ") {
                events = url.trim().to_owned();
            }
        }
        assert!(
            !api.is_empty() && !events.is_empty(),
            "simulator did not print both addresses"
        );
        // Keep draining stdout so the simulator never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Sim {
            child,
            api,
            events,
            http,
        }
    }

    pub fn get(&self, path: &str) -> Value {
        let mut response = self
            .http
            .get(format!("{}{path}", self.api))
            .call()
            .expect("GET simulator");
        response.body_mut().read_json().expect("simulator JSON")
    }

    pub fn control(&self, body: Value) -> Value {
        let mut response = self
            .http
            .post(format!("{}/_sim/control", self.api))
            .send_json(&body)
            .expect("POST /_sim/control");
        assert_eq!(response.status().as_u16(), 200, "control {body}");
        response.body_mut().read_json().expect("control JSON")
    }

    pub fn drop_streams(&self) {
        let response = self
            .http
            .post(format!("{}/_sim/drop", self.api))
            .send_empty()
            .expect("POST /_sim/drop");
        assert_eq!(response.status().as_u16(), 200);
    }

    pub fn conferences(&self) -> Value {
        self.get("/_sim/conferences")
    }

    pub fn requests(&self) -> Vec<Value> {
        match self.get("/_sim/requests") {
            Value::Array(list) => list,
            other => panic!("unexpected requests reply {other}"),
        }
    }

    pub fn stats(&self) -> Value {
        self.get("/_sim/stats")
    }

    /// Waits until `check` holds on the stats, or panics after `limit`.
    pub fn wait_stats(&self, limit: Duration, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let stats = self.stats();
            if check(&stats) {
                return stats;
            }
            assert!(
                started.elapsed() < limit,
                "timed out waiting for {what}; stats {stats}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One agent process with its own state dir and audit file.
pub struct AgentRun {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub stderr: Option<std::thread::JoinHandle<String>>,
}

/// Builds the agent command for a simulator; the caller adds flags.
pub fn agent_command(sim: &Sim, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genesys-video-agent"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GENESYS_CLIENT_ID", CLIENT_ID)
        .env("GENESYS_CLIENT_SECRET", CLIENT_SECRET)
        .env("RUST_LOG", "info")
        .args([
            "--login-base",
            &sim.api,
            "--api-base",
            &sim.api,
            "--events-url",
            &sim.events,
        ])
        .arg("--audit-log")
        .arg(dir.join("audit.jsonl"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

impl AgentRun {
    pub fn new() -> AgentRun {
        AgentRun {
            dir: tempfile::tempdir().expect("temporary directory"),
            child: None,
            stderr: None,
        }
    }

    /// Starts the agent against `sim` with extra flags.
    pub fn start(sim: &Sim, extra: &[&str]) -> AgentRun {
        let mut run = AgentRun::new();
        run.spawn(sim, extra);
        run
    }

    pub fn spawn(&mut self, sim: &Sim, extra: &[&str]) {
        let mut command = agent_command(sim, self.dir.path());
        command.args(extra);
        self.spawn_command(command);
    }

    pub fn spawn_command(&mut self, mut command: Command) {
        let mut child = command.spawn().expect("start genesys-video-agent");
        let mut stderr = child.stderr.take().expect("agent stderr");
        self.stderr = Some(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        }));
        self.child = Some(child);
    }

    /// Waits for the agent to exit; returns its status and stderr.
    pub fn wait(&mut self, limit: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("agent running");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for agent") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = self
                    .stderr
                    .take()
                    .map(|h| h.join().unwrap_or_default())
                    .unwrap_or_default();
                panic!("agent did not exit within {limit:?}; stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, stderr)
    }

    pub fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("agent running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Every complete audit line, parsed.
    pub fn audit(&self) -> Vec<Value> {
        read_jsonl(&self.audit_path())
    }

    pub fn audit_of(&self, event: &str) -> Vec<Value> {
        self.audit()
            .into_iter()
            .filter(|e| e["event"] == event)
            .collect()
    }

    /// Waits until the audit holds an entry for which `check` is true.
    pub fn wait_audit(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let entries = self.audit();
            if check(&entries) {
                return entries;
            }
            assert!(started.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for AgentRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Parses each complete line of a JSON-lines file; a torn last line is skipped.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Counts entries per audit event name.
pub fn count_by_event(entries: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for entry in entries {
        *counts
            .entry(entry["event"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    counts
}

/// The (sessionId, sequenceNumber) pairs of the entries of one event.
pub fn session_sequences(entries: &[Value], event: &str) -> Vec<(String, u64)> {
    entries
        .iter()
        .filter(|e| e["event"] == event)
        .map(|e| {
            (
                e["data"]["sessionId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["data"]["sequenceNumber"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// A valid event frame for `session` at `sequence`.
pub fn event_line(session: &str, sequence: u64, codec: &str, directive: &str) -> String {
    serde_json::json!({
        "eventType": "videoConferenceEvent",
        "data": {
            "sessionId": session,
            "state": "active",
            "sequenceNumber": sequence,
            "participants": [
                {"userId": "u1", "role": "presenter", "allocatedBitrateKbps": 1500},
                {"userId": "u2", "role": "participant", "allocatedBitrateKbps": 1000}
            ],
            "recording": {"action": directive},
            "mediaConfig": {"maxBitrate": 4000, "codec": codec}
        }
    })
    .to_string()
}

/// Writes frames to a script file inside `dir` and returns its path as a string.
pub fn write_script(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write script");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// Runs the agent once against a simulator replaying `lines`, with the
/// simulator's `sim_args` and the agent's `agent_args`; returns the run
/// after the agent exited successfully.
pub fn run_script(
    lines: &[String],
    sim_args: &[&str],
    agent_args: &[&str],
) -> (Sim, AgentRun, String) {
    let scripts = tempfile::tempdir().expect("temporary directory");
    let script = write_script(scripts.path(), "script.jsonl", lines);
    let mut args = vec!["--script", script.as_str()];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(&args);
    let mut flags = vec!["--exit-on-stream-end"];
    flags.extend_from_slice(agent_args);
    let mut agent = AgentRun::start(&sim, &flags);
    let (status, stderr) = agent.wait(Duration::from_secs(60));
    assert!(status.success(), "agent exited with {status}: {stderr}");
    (sim, agent, stderr)
}

/// The PUT requests the simulator saw.
pub fn puts(sim: &Sim) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r["method"] == "PUT")
        .collect()
}

/// Parses an audit timestamp into milliseconds since the epoch.
pub fn timestamp_ms(entry: &Value) -> u64 {
    let text = entry["timestamp"].as_str().expect("timestamp");
    let time = humantime::parse_rfc3339(text).expect("RFC 3339 timestamp");
    time.duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_millis() as u64
}

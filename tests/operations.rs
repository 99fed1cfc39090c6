//! Operating the agent: exit codes, the instance lock, signals, the drain
//! on stop, and the audit file under logrotate, disk-full and crashes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{AgentRun, Sim, agent_command, count_by_event, event_line, read_jsonl};

fn exit_code_of(mut command: Command) -> (i32, String) {
    let output = command.output().expect("run agent");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn missing_credentials_exit_78() {
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = agent_command(&sim, dir.path());
    command.env_remove("GENESYS_CLIENT_SECRET");
    let (code, stderr) = exit_code_of(command);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("GENESYS_CLIENT_SECRET"), "{stderr}");
}

#[test]
fn unknown_region_exits_78() {
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = agent_command(&sim, dir.path());
    command.args(["--region", "mars-north-1"]);
    let (code, stderr) = exit_code_of(command);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("mars-north-1") && stderr.contains("eu-west-1"),
        "{stderr}"
    );
}

#[test]
fn bad_value_exits_78() {
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--workers", "0"),
        ("--ping-interval", "soon"),
        ("--gateway-profile", "4k"),
    ] {
        let mut command = agent_command(&sim, dir.path());
        command.args([flag, value]);
        let (code, stderr) = exit_code_of(command);
        assert_eq!(code, 78, "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}

#[test]
fn bad_command_line_exits_64() {
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = agent_command(&sim, dir.path());
    command.arg("--no-such-flag");
    let (code, stderr) = exit_code_of(command);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[test]
fn rejected_credentials_exit_77() {
    let sim = Sim::start(&["--reject-credentials"]);
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = exit_code_of(agent_command(&sim, dir.path()));
    assert_eq!(code, 77, "{stderr}");
    assert!(
        stderr.contains("GENESYS_CLIENT_SECRET"),
        "the message must say what to check: {stderr}"
    );
}

#[test]
fn network_down_at_start_keeps_retrying() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let base = format!("http://127.0.0.1:{port}");
    let sim = Sim::start(&[]);
    let mut agent = AgentRun::new();
    let mut command = agent_command(&sim, agent.dir.path());
    command.args(["--login-base", &base, "--run-for", "3s"]);
    agent.spawn_command(command);
    let started = Instant::now();
    let (status, stderr) = agent.wait(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the agent gave up before --run-for"
    );
    assert!(
        stderr.matches("cannot fetch a token yet").count() >= 2,
        "{stderr}"
    );
}

#[test]
fn second_instance_exits_silently() {
    let sim = Sim::start(&["--on-end", "hold"]);
    let mut first = AgentRun::start(&sim, &[]);
    first.wait_audit(Duration::from_secs(10), "stream connected", |entries| {
        entries.iter().any(|e| e["event"] == "STREAM_CONNECTED")
    });

    let output = agent_command(&sim, first.dir.path())
        .output()
        .expect("second agent");
    assert_eq!(output.status.code(), Some(0));
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    first.signal(15);
    let (status, stderr) = first.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
}

#[test]
fn run_for_stops_cleanly() {
    let sim = Sim::start(&["--on-end", "hold"]);
    let mut agent = AgentRun::start(&sim, &["--run-for", "1500ms"]);
    let (status, stderr) = agent.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
    let stopped = agent.audit_of("AGENT_STOPPED");
    assert_eq!(stopped.len(), 1);
    assert!(stderr.contains("total audit entries:"), "{stderr}");
}

#[test]
fn sigterm_drains_every_accepted_state() {
    let sim = Sim::start(&[
        "--events",
        "400",
        "--sessions",
        "40",
        "--put-latency",
        "100",
        "--on-end",
        "hold",
    ]);
    let mut agent = AgentRun::start(&sim, &["--queue-capacity", "100000", "--workers", "4"]);
    agent.wait_audit(Duration::from_secs(20), "a few applied states", |entries| {
        entries
            .iter()
            .filter(|e| e["event"] == "STATE_APPLIED")
            .count()
            >= 20
    });
    agent.signal(15);
    let signalled = Instant::now();
    let (status, stderr) = agent.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    assert!(
        signalled.elapsed() < Duration::from_secs(13),
        "drain took {:?}",
        signalled.elapsed()
    );

    let audit = agent.audit();
    let counts = count_by_event(&audit);
    let stopped = &agent.audit_of("AGENT_STOPPED")[0]["data"];
    let received = stopped["eventsReceived"].as_u64().unwrap() as usize;
    let finished = [
        "STATE_APPLIED",
        "STATE_SUPERSEDED",
        "UPDATE_FAILED",
        "EVENT_COALESCED",
    ]
    .iter()
    .map(|event| counts.get(*event).copied().unwrap_or(0))
    .sum::<usize>();
    assert_eq!(
        finished, received,
        "accepted states left unfinished: {counts:?}"
    );
    assert_eq!(stopped["backlogLeft"], 0);
    let failed = counts.get("UPDATE_FAILED").copied().unwrap_or(0);
    let dead = read_jsonl(&agent.state_dir().join("dead-letter.jsonl"));
    assert_eq!(
        dead.len(),
        failed,
        "every given-up state must be a dead letter"
    );
}

#[test]
fn second_signal_exits_at_once() {
    let sim = Sim::start(&[
        "--events",
        "200",
        "--sessions",
        "20",
        "--put-latency",
        "3000",
        "--on-end",
        "hold",
    ]);
    let mut agent = AgentRun::start(&sim, &["--queue-capacity", "100000"]);
    sim.wait_stats(Duration::from_secs(10), "PUTs in flight", |stats| {
        stats["puts"].as_u64() >= Some(1)
    });
    agent.signal(15);
    std::thread::sleep(Duration::from_millis(200));
    agent.signal(15);
    let signalled = Instant::now();
    let (status, _stderr) = agent.wait(Duration::from_secs(10));
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "second signal took {:?}",
        signalled.elapsed()
    );
    assert!(!status.success(), "an abrupt exit must not report success");
}

#[test]
fn sighup_reopens_the_audit_file() {
    let sim = Sim::start(&["--on-end", "hold"]);
    let mut agent = AgentRun::start(&sim, &[]);
    agent.wait_audit(Duration::from_secs(10), "stream connected", |entries| {
        entries.iter().any(|e| e["event"] == "STREAM_CONNECTED")
    });

    let rotated = agent.dir.path().join("audit.jsonl.1");
    std::fs::rename(agent.audit_path(), &rotated).unwrap();
    agent.signal(1);
    let started = Instant::now();
    while !agent.audit_path().exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGHUP did not create a new audit file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Something to audit after the reopen: a dropped and restored stream.
    sim.drop_streams();
    agent.wait_audit(
        Duration::from_secs(15),
        "reconnect in the new file",
        |entries| entries.iter().any(|e| e["event"] == "STREAM_CONNECTED"),
    );
    agent.signal(15);
    let (status, stderr) = agent.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");

    let old = read_jsonl(&rotated);
    assert!(old.iter().any(|e| e["event"] == "AGENT_STARTED"));
    assert!(
        !old.iter().any(|e| e["event"] == "AGENT_STOPPED"),
        "entries went to the rotated file"
    );
    assert_eq!(agent.audit_of("AGENT_STOPPED").len(), 1);
}

#[test]
fn disk_full_audit_keeps_agent_working() {
    let lines = vec![
        event_line("room-1", 1, "vp8", "pause"),
        event_line("room-2", 1, "vp9", "start"),
    ];
    let scripts = tempfile::tempdir().unwrap();
    let script = common::write_script(scripts.path(), "s.jsonl", &lines);
    let sim = Sim::start(&["--script", &script]);
    let mut agent = AgentRun::new();
    let mut command = agent_command(&sim, agent.dir.path());
    command.args(["--audit-log", "/dev/full", "--exit-on-stream-end"]);
    agent.spawn_command(command);
    let (status, stderr) = agent.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot write audit file /dev/full"),
        "{stderr}"
    );
    let conferences = sim.conferences();
    assert_eq!(conferences["room-1"]["sequenceNumber"], 1);
    assert_eq!(conferences["room-2"]["sequenceNumber"], 1);
}

#[test]
fn torn_audit_line_does_not_break_next_run() {
    let lines = vec![event_line("room-1", 1, "vp8", "pause")];
    let scripts = tempfile::tempdir().unwrap();
    let script = common::write_script(scripts.path(), "s.jsonl", &lines);
    let sim = Sim::start(&["--script", &script]);
    let mut agent = AgentRun::new();
    std::fs::write(
        agent.audit_path(),
        "{\"timestamp\":\"2026-12-04T00:00:00.000Z\",\"event\":\"STATE_APP",
    )
    .unwrap();
    agent.spawn(&sim, &["--exit-on-stream-end"]);
    let (status, stderr) = agent.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    let text = std::fs::read_to_string(agent.audit_path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with("STATE_APP"),
        "the torn line is kept as it was"
    );
    for line in &lines[1..] {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|err| panic!("bad line {line}: {err}"));
    }
    assert_eq!(agent.audit_of("STATE_APPLIED").len(), 1);
}

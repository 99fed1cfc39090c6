//! The `validate`, `check` and `replay` subcommands.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{AgentRun, Sim, agent_command, event_line, read_jsonl, run_script, sample_events};

fn agent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genesys-video-agent"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

#[test]
fn validate_reports_each_line_and_fails_on_invalid() {
    let output = agent()
        .args(["validate"])
        .arg(sample_events())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let verdicts: Vec<&str> = stdout.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(verdicts.len(), 272);
    assert_eq!(
        verdicts.iter().filter(|l| l.contains(": valid: ")).count(),
        255
    );
    assert_eq!(
        verdicts
            .iter()
            .filter(|l| l.contains(": invalid: "))
            .count(),
        10
    );
    assert_eq!(
        verdicts
            .iter()
            .filter(|l| l.contains(": malformed: "))
            .count(),
        2
    );
    assert_eq!(
        verdicts
            .iter()
            .filter(|l| l.contains(": ignored: "))
            .count(),
        5
    );
    assert!(stdout.contains("codec: codec \"av1\""), "{stdout}");
    assert!(
        stdout.ends_with("272 lines checked, 12 invalid\n"),
        "{stdout}"
    );
}

#[test]
fn validate_reads_stdin_and_passes_valid_input() {
    let mut child = agent()
        .args(["validate", "-", "--gateway-profile", "standard"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "{}\n\n{}\n",
        event_line("a", 1, "vp8", "start"),
        event_line("b", 2, "H264", "stop")
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("line 1: valid: session a sequence 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 3: valid: session b sequence 2"),
        "{stdout}"
    );
}

#[test]
fn validate_applies_the_gateway_profile() {
    let line =
        event_line("a", 1, "vp8", "start").replace("\"maxBitrate\":4000", "\"maxBitrate\":6000");
    let mut child = agent()
        .args(["validate", "--gateway-profile", "standard"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("max_bitrate")
    );
}

#[test]
fn check_reports_a_working_setup() {
    let sim = Sim::start(&["--on-end", "hold"]);
    let dir = tempfile::tempdir().unwrap();
    let output = agent_command(&sim, dir.path())
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok  token fetched"), "{stdout}");
    assert!(
        stdout.contains("ok  event stream opened and closed"),
        "{stdout}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(!stdout.contains(common::CLIENT_SECRET));
    assert_eq!(sim.stats()["streamConnections"], 1);
}

#[test]
fn check_exits_77_on_rejected_credentials() {
    let sim = Sim::start(&["--reject-credentials"]);
    let dir = tempfile::tempdir().unwrap();
    let output = agent_command(&sim, dir.path())
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(77), "{stdout}");
    assert!(stdout.contains("FAIL token"), "{stdout}");
}

#[test]
fn check_exits_78_without_credentials() {
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = agent_command(&sim, dir.path());
    command.env_remove("GENESYS_CLIENT_ID").arg("check");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stdout).contains("GENESYS_CLIENT_ID"));
}

#[test]
fn replay_sends_dead_letters_again() {
    let lines: Vec<String> = (1..=3)
        .map(|i| event_line(&format!("room-{i}"), 5, "vp9", "start"))
        .collect();
    let (_failing, first, _) = run_script(&lines, &["--fail-5xx", "100"], &["--max-retries", "0"]);
    let dead_letters = first.state_dir().join("dead-letter.jsonl");
    assert_eq!(read_jsonl(&dead_letters).len(), 3);

    let healthy = Sim::start(&["--on-end", "hold"]);
    let mut replay = AgentRun::new();
    let mut command = agent_command(&healthy, first.dir.path());
    command.arg("replay").arg(&dead_letters);
    replay.spawn_command(command);
    let (status, stderr) = replay.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");

    let conferences = healthy.conferences();
    for i in 1..=3 {
        assert_eq!(conferences[&format!("room-{i}")]["sequenceNumber"], 5);
    }
    assert_eq!(
        first.audit_of("STATE_APPLIED").len(),
        3,
        "the replay audits into the same file"
    );
    assert!(
        !dead_letters.exists(),
        "the replayed file must be moved aside"
    );
    let aside: Vec<_> = std::fs::read_dir(first.state_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("dead-letter.jsonl.replayed-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
}

#[test]
fn replay_of_missing_file_is_a_clear_error() {
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let output = agent_command(&sim, dir.path())
        .args(["replay", "/nonexistent/dead.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/dead.jsonl"));
}

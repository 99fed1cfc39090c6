//! Stream drops, restarts and load: nothing applied twice, nothing lost,
//! and no secret in any output.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{
    AgentRun, CLIENT_SECRET, Sim, count_by_event, puts, sample_events, session_sequences,
};

#[test]
fn reconnect_after_drop_applies_nothing_twice() {
    let script = sample_events();
    let sim = Sim::start(&[
        "--script",
        script.to_str().unwrap(),
        "--drop-after",
        "100",
        "--replay-overlap",
        "5",
    ]);
    let mut agent = AgentRun::start(&sim, &["--exit-on-stream-end", "--queue-capacity", "1000"]);
    let (status, stderr) = agent.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");

    let audit = agent.audit();
    let counts = count_by_event(&audit);
    assert_eq!(counts.get("STREAM_CONNECTED"), Some(&2), "{counts:?}");
    assert!(counts.get("STREAM_DISCONNECTED").copied().unwrap_or(0) >= 2);
    let applied = session_sequences(&audit, "STATE_APPLIED");
    let unique: HashSet<_> = applied.iter().cloned().collect();
    assert_eq!(unique.len(), applied.len(), "a state was applied twice");
    assert_eq!(applied.len(), 255);
    assert!(
        counts.get("STATE_SUPERSEDED").copied().unwrap_or(0) >= 1,
        "the resent frames were not skipped"
    );
    assert_eq!(puts(&sim).len(), 255, "a resent frame reached the API");
}

#[test]
fn restart_with_same_state_dir_applies_nothing_again() {
    let script = sample_events();
    let sim = Sim::start(&["--script", script.to_str().unwrap()]);
    let mut agent = AgentRun::start(&sim, &["--exit-on-stream-end", "--queue-capacity", "1000"]);
    let (status, stderr) = agent.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert_eq!(
        agent.audit_of("STATE_APPLIED").len(),
        255,
        "{:?}",
        count_by_event(&agent.audit())
    );
    drop(sim);

    // A fresh simulator replays the same stream to a restarted agent.
    let sim = Sim::start(&["--script", script.to_str().unwrap()]);
    agent.spawn(&sim, &["--exit-on-stream-end", "--queue-capacity", "1000"]);
    let (status, stderr) = agent.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert!(
        puts(&sim).is_empty(),
        "the restarted agent sent states it had already applied"
    );
    let counts = count_by_event(&agent.audit());
    assert_eq!(counts.get("STATE_APPLIED"), Some(&255), "{counts:?}");
    assert_eq!(counts.get("STATE_SUPERSEDED"), Some(&255), "{counts:?}");
    assert_eq!(counts.get("AGENT_STARTED"), Some(&2));
}

#[test]
fn generated_load_loses_no_state() {
    let sim = Sim::start(&["--events", "1000", "--sessions", "50", "--seed", "7"]);
    let mut agent = AgentRun::start(&sim, &["--exit-on-stream-end", "--queue-capacity", "5000"]);
    let (status, stderr) = agent.wait(Duration::from_secs(120));
    assert!(status.success(), "{stderr}");

    let audit = agent.audit();
    let counts = count_by_event(&audit);
    let finished = counts.get("STATE_APPLIED").copied().unwrap_or(0)
        + counts.get("STATE_SUPERSEDED").copied().unwrap_or(0)
        + counts.get("UPDATE_FAILED").copied().unwrap_or(0);
    assert_eq!(finished, 1000, "{counts:?}");

    let mut newest: HashMap<String, u64> = HashMap::new();
    for (session, sequence) in session_sequences(&audit, "STATE_APPLIED") {
        let entry = newest.entry(session).or_default();
        *entry = (*entry).max(sequence);
    }
    assert_eq!(newest.len(), 50);
    let conferences = sim.conferences();
    for (session, sequence) in &newest {
        assert_eq!(
            conferences[session]["sequenceNumber"], *sequence,
            "session {session}"
        );
    }
}

#[test]
fn secret_and_tokens_appear_in_no_output() {
    let script = sample_events();
    let sim = Sim::start(&[
        "--script",
        script.to_str().unwrap(),
        "--fail-401",
        "1",
        "--token-lifetime",
        "4",
    ]);
    let mut agent = AgentRun::new();
    let mut command = common::agent_command(&sim, agent.dir.path());
    command
        .env("RUST_LOG", "trace")
        .args(["--exit-on-stream-end", "--queue-capacity", "1000"]);
    agent.spawn_command(command);
    let (status, stderr) = agent.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "trace logging was not on"
    );

    let mut tokens: HashSet<String> = HashSet::new();
    for request in sim.requests() {
        if let Some(value) = request["headers"]["authorization"].as_str()
            && let Some(token) = value.strip_prefix("Bearer ")
        {
            tokens.insert(token.to_owned());
        }
        assert!(
            !request["path"].as_str().unwrap_or("").contains("simtok"),
            "a token went into a URL"
        );
    }
    assert!(
        tokens.len() >= 2,
        "expected a refreshed token, saw {tokens:?}"
    );

    let mut outputs = vec![("stderr".to_owned(), stderr)];
    outputs.push((
        "audit".to_owned(),
        std::fs::read_to_string(agent.audit_path()).unwrap(),
    ));
    for entry in std::fs::read_dir(agent.state_dir()).unwrap() {
        let path = entry.unwrap().path();
        outputs.push((
            path.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
        ));
    }
    for (name, text) in &outputs {
        assert!(
            !text.contains(CLIENT_SECRET),
            "the client secret appears in {name}"
        );
        for token in &tokens {
            let at = text
                .find(token.as_str())
                .map(|i| &text[i.saturating_sub(300)..(i + 50).min(text.len())]);
            assert!(at.is_none(), "a token appears in {name}: {at:?}");
        }
    }
}

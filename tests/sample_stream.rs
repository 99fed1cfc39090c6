//! The agent against the simulator replaying the shipped sample stream.

mod common;

use std::time::Duration;

use common::{AgentRun, Sim, count_by_event, sample_events};

const RUN_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn sample_stream_applies_valid_and_audits_the_rest() {
    let script = sample_events();
    let sim = Sim::start(&["--script", script.to_str().unwrap()]);
    let mut agent = AgentRun::start(&sim, &["--exit-on-stream-end", "--queue-capacity", "1000"]);
    let (status, stderr) = agent.wait(RUN_LIMIT);
    assert!(status.success(), "agent failed: {stderr}");

    let audit = agent.audit();
    let counts = count_by_event(&audit);
    assert_eq!(counts.get("STATE_APPLIED"), Some(&255), "{counts:?}");
    assert_eq!(counts.get("VALIDATION_FAILED"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("MALFORMED_EVENT"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("UPDATE_FAILED"), None, "{counts:?}");
    assert_eq!(counts.get("AGENT_STARTED"), Some(&1));
    assert_eq!(counts.get("AGENT_STOPPED"), Some(&1));
    assert!(
        counts.get("CODEC_NEGOTIATION").copied().unwrap_or(0) > 0,
        "the sample switches codecs to h264"
    );

    let codes: Vec<String> = audit
        .iter()
        .filter(|e| e["event"] == "VALIDATION_FAILED")
        .flat_map(|e| {
            e["data"]["violations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    for code in [
        "max_bitrate",
        "codec",
        "participant_limit",
        "aggregate_bitrate",
    ] {
        assert!(
            codes.iter().any(|c| c == code),
            "no {code} violation in {codes:?}"
        );
    }

    let total_line = format!("total audit entries: {}", audit.len());
    assert!(
        stderr.contains(&total_line),
        "stderr lacks '{total_line}':\n{stderr}"
    );

    // Each session on the simulator holds the newest version the agent applied.
    let conferences = sim.conferences();
    let applied = common::session_sequences(&audit, "STATE_APPLIED");
    let mut newest = std::collections::HashMap::new();
    for (session, sequence) in applied {
        let entry = newest.entry(session).or_insert(0);
        *entry = (*entry).max(sequence);
    }
    assert_eq!(newest.len(), 12);
    for (session, sequence) in newest {
        assert_eq!(
            conferences[&session]["sequenceNumber"], sequence,
            "session {session}"
        );
    }
}

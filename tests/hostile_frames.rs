//! Hostile frames on the event stream: binary, fragmented, invalid UTF-8,
//! oversized and error closes. None may panic the agent or end the run,
//! and the events around them are still applied.

mod common;

use std::time::Duration;

use common::{AgentRun, Sim, count_by_event, event_line, write_script};

#[test]
fn hostile_frames_never_stop_the_stream() {
    let lines = vec![
        event_line("alpha", 1, "vp8", "start"),
        "#binary not a text frame".to_owned(),
        format!("#fragmented 3 {}", event_line("bravo", 1, "vp9", "start")),
        "#invalid-utf8".to_owned(),
        event_line("charlie", 1, "vp8", "pause"),
        "#oversized 2000000".to_owned(),
        event_line("delta", 1, "h264", "stop"),
        "#close 1011".to_owned(),
        event_line("echo", 1, "vp8", "pause"),
        "{\"eventType\":\"videoConferenceEvent\",\"data\":{\"sessionId\":\"foxtrot\",\"sequenceNumber\":1,\"participants\":[[[[[[[[[[]]]]]]]]]]}}".to_owned(),
        format!("{{\"eventType\":\"videoConferenceEvent\",\"data\":{}}}", "[".repeat(5000) + &"]".repeat(5000)),
        event_line("golf", 1, "vp8", "pause"),
    ];
    let scripts = tempfile::tempdir().unwrap();
    let script = write_script(scripts.path(), "hostile.jsonl", &lines);
    let sim = Sim::start(&["--script", &script]);
    let mut agent = AgentRun::start(&sim, &["--exit-on-stream-end"]);
    let (status, stderr) = agent.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let audit = agent.audit();
    let counts = count_by_event(&audit);
    let applied: Vec<String> = agent
        .audit_of("STATE_APPLIED")
        .iter()
        .map(|e| e["data"]["sessionId"].as_str().unwrap().to_owned())
        .collect();
    for session in ["alpha", "bravo", "charlie", "delta", "echo", "golf"] {
        assert!(
            applied.iter().any(|s| s == session),
            "{session} was not applied: {counts:?}"
        );
    }
    assert!(stderr.contains("ignored a binary frame"), "{stderr}");

    let malformed = agent.audit_of("MALFORMED_EVENT");
    let reasons: Vec<&str> = malformed
        .iter()
        .map(|e| e["data"]["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("UTF-8")), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("exceeds the 1048576-byte limit")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("recursion limit")),
        "{reasons:?}"
    );
    let failed = agent.audit_of("VALIDATION_FAILED");
    assert!(
        failed.iter().any(|e| e["data"]["sessionId"] == "foxtrot"),
        "{failed:?}"
    );

    let drops = agent.audit_of("STREAM_DISCONNECTED");
    assert!(
        drops
            .iter()
            .any(|e| e["data"]["reason"].as_str().unwrap().contains("code 1011")),
        "{drops:?}"
    );
    assert!(agent.audit_of("STREAM_CONNECTED").len() >= 4, "{counts:?}");
}

//! The REST reply table, end to end: the agent against the simulator with
//! injected replies.

mod common;

use std::time::{Duration, Instant};

use common::{count_by_event, event_line, puts, run_script, timestamp_ms};
use serde_json::json;

#[test]
fn put_has_exact_headers_and_body() {
    let lines = vec![event_line("room-1", 7, "VP9", "start")];
    let (sim, agent, _) = run_script(&lines, &[], &[]);

    let puts = puts(&sim);
    assert_eq!(puts.len(), 1);
    let put = &puts[0];
    assert_eq!(put["path"], "/api/v2/videoconferences/room-1");
    let headers = &put["headers"];
    assert!(
        headers["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer simtok-"),
        "{headers}"
    );
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["if-match"], "seq=7");
    assert_eq!(
        headers["x-genesys-client"],
        format!("genesys-video-agent/{}", env!("CARGO_PKG_VERSION"))
    );
    let body: serde_json::Value = serde_json::from_str(put["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({
            "mediaConfig": {"maxBitrate": 4000, "codec": "vp9", "recording": {"action": "start", "enabled": true}},
            "participants": [
                {"id": "u1", "role": "presenter", "bandwidth": 1500},
                {"id": "u2", "role": "participant", "bandwidth": 1000}
            ]
        })
    );

    let applied = agent.audit_of("STATE_APPLIED");
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0]["data"]["sessionId"], "room-1");
    assert_eq!(applied[0]["data"]["sequenceNumber"], 7);
    assert_eq!(sim.conferences()["room-1"]["sequenceNumber"], 7);
}

#[test]
fn stop_directive_sends_enabled_false() {
    let lines = vec![event_line("room-1", 1, "vp8", "stop")];
    let (sim, _agent, _) = run_script(&lines, &[], &[]);
    let body: serde_json::Value =
        serde_json::from_str(puts(&sim)[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["mediaConfig"]["recording"],
        json!({"action": "stop", "enabled": false})
    );
}

#[test]
fn every_validation_code_is_audited_without_put() {
    let participant =
        |id: &str| json!({"userId": id, "role": "participant", "allocatedBitrateKbps": 10});
    let many: Vec<_> = (0..51).map(|i| participant(&format!("u{i}"))).collect();
    let cases = vec![
        (
            "session_id",
            json!({"sessionId": "../x", "sequenceNumber": 1}),
        ),
        (
            "sequence",
            json!({"sessionId": "s-seq", "sequenceNumber": 0}),
        ),
        (
            "participant_limit",
            json!({"sessionId": "s-lim", "sequenceNumber": 1, "participants": many}),
        ),
        (
            "participant",
            json!({"sessionId": "s-par", "sequenceNumber": 1, "participants": [{"userId": "", "role": "participant", "allocatedBitrateKbps": 1}]}),
        ),
        (
            "duplicate_participant",
            json!({"sessionId": "s-dup", "sequenceNumber": 1, "participants": [participant("a"), participant("a")]}),
        ),
        (
            "max_bitrate",
            json!({"sessionId": "s-max", "sequenceNumber": 1, "mediaConfig": {"maxBitrate": 9000}}),
        ),
        (
            "aggregate_bitrate",
            json!({"sessionId": "s-agg", "sequenceNumber": 1, "participants": [{"userId": "a", "role": "presenter", "allocatedBitrateKbps": 5000}], "mediaConfig": {"maxBitrate": 4000}}),
        ),
        (
            "recording_directive",
            json!({"sessionId": "s-rec", "sequenceNumber": 1, "recording": {"action": "record"}}),
        ),
        (
            "codec",
            json!({"sessionId": "s-cod", "sequenceNumber": 1, "mediaConfig": {"codec": "av1"}}),
        ),
    ];
    let lines: Vec<String> = cases
        .iter()
        .map(|(_, data)| json!({"eventType": "videoConferenceEvent", "data": data}).to_string())
        .collect();
    let (sim, agent, _) = run_script(&lines, &[], &[]);

    assert!(puts(&sim).is_empty(), "an invalid state reached the API");
    let failures = agent.audit_of("VALIDATION_FAILED");
    assert_eq!(failures.len(), cases.len());
    for ((code, _), entry) in cases.iter().zip(&failures) {
        let codes: Vec<&str> = entry["data"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, [*code], "entry {entry}");
        assert!(
            entry["data"]["violations"][0]["message"]
                .as_str()
                .unwrap()
                .len()
                > 5
        );
    }
}

#[test]
fn conflict_with_newer_version_is_superseded() {
    let lines = vec![event_line("room-1", 3, "vp8", "pause")];
    let (sim, agent, _) = run_script(&lines, &["--race-409", "1"], &[]);

    let superseded = agent.audit_of("STATE_SUPERSEDED");
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0]["data"]["heldSequence"], 8);
    assert!(agent.audit_of("STATE_APPLIED").is_empty());
    assert!(agent.audit_of("UPDATE_FAILED").is_empty());
    assert_eq!(
        puts(&sim).len(),
        1,
        "a superseded state must not be retried"
    );
    let gets = sim
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "GET")
        .count();
    assert_eq!(gets, 1);
    assert_eq!(
        sim.conferences()["room-1"]["sequenceNumber"],
        8,
        "the newer state was overwritten"
    );
}

#[test]
fn conflict_from_lagging_replica_is_retried() {
    let lines = vec![event_line("room-1", 3, "vp8", "pause")];
    let (sim, agent, _) = run_script(&lines, &["--lag-409", "1"], &[]);

    let applied = agent.audit_of("STATE_APPLIED");
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0]["data"]["attempts"], 2);
    let puts = puts(&sim);
    assert_eq!(puts.len(), 2);
    assert_eq!(
        puts[1]["headers"]["if-match"], "seq=3",
        "the retry keeps the same If-Match"
    );
    assert_eq!(sim.conferences()["room-1"]["sequenceNumber"], 3);
}

#[test]
fn rate_limit_waits_for_retry_after() {
    let lines = vec![event_line("room-1", 1, "vp8", "pause")];
    let (sim, agent, _) = run_script(&lines, &["--fail-429", "1", "--retry-after", "2"], &[]);

    let limited = agent.audit_of("RATE_LIMITED");
    let applied = agent.audit_of("STATE_APPLIED");
    assert_eq!(limited.len(), 1);
    assert_eq!(applied.len(), 1);
    assert_eq!(limited[0]["data"]["retryAfterSeconds"], 2.0);
    let waited = timestamp_ms(&applied[0]) - timestamp_ms(&limited[0]);
    assert!(
        waited >= 1900,
        "applied {waited} ms after the 429, Retry-After was 2 s"
    );
    assert_eq!(puts(&sim).len(), 2);
}

#[test]
fn rate_limit_holds_back_every_worker() {
    // Two sessions that land on different workers; the 429 of the first PUT
    // must delay the other worker's PUT too.
    let lines = vec![
        event_line("alpha", 1, "vp8", "pause"),
        event_line("bravo", 1, "vp8", "pause"),
    ];
    let (sim, agent, _) = run_script(
        &lines,
        &[
            "--fail-429",
            "1",
            "--retry-after",
            "2",
            "--put-latency",
            "100",
        ],
        &["--workers", "4"],
    );
    let limited = agent.audit_of("RATE_LIMITED");
    assert_eq!(limited.len(), 1);
    let limited_at = timestamp_ms(&limited[0]);
    let applied = agent.audit_of("STATE_APPLIED");
    assert_eq!(applied.len(), 2);
    let later = applied
        .iter()
        .filter(|e| timestamp_ms(e) >= limited_at + 1900)
        .count();
    let started_before = puts(&sim).len() - 1 - later;
    assert!(later >= 1, "no worker waited for the rate limit");
    assert!(
        started_before <= 1,
        "more than one PUT slipped past the rate limit"
    );
}

#[test]
fn retry_after_as_http_date_is_honoured() {
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    let lines = vec![event_line("room-1", 1, "vp8", "pause")];
    let started = Instant::now();
    let (_sim, agent, _) = run_script(&lines, &["--fail-429", "1", "--retry-after", &when], &[]);
    assert_eq!(agent.audit_of("STATE_APPLIED").len(), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "did not wait for the HTTP date"
    );
}

#[test]
fn retry_after_beyond_limit_gives_up_at_once() {
    let lines = vec![event_line("room-1", 1, "vp8", "pause")];
    let (sim, agent, _) = run_script(
        &lines,
        &["--fail-429", "1", "--retry-after", "7200"],
        &["--max-retry-after", "60s"],
    );
    let failed = agent.audit_of("UPDATE_FAILED");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["status"], 429);
    assert!(
        failed[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("max-retry-after")
    );
    assert_eq!(puts(&sim).len(), 1);
    let dead = common::read_jsonl(&agent.state_dir().join("dead-letter.jsonl"));
    assert_eq!(dead.len(), 1);
}

#[test]
fn server_errors_back_off_then_succeed() {
    let lines = vec![event_line("room-1", 1, "vp8", "pause")];
    let started = Instant::now();
    let (sim, agent, _) = run_script(&lines, &["--fail-5xx", "2", "--fail-status", "502"], &[]);
    let applied = agent.audit_of("STATE_APPLIED");
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0]["data"]["attempts"], 3);
    assert_eq!(puts(&sim).len(), 3);
    // Backoff of 1 s then 2 s (plus jitter) before the third attempt.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "retries did not back off"
    );
}

#[test]
fn exhausted_retries_give_update_failed_and_dead_letter() {
    let lines = vec![event_line("room-1", 4, "h264", "start")];
    let (sim, agent, _) = run_script(&lines, &["--fail-5xx", "10"], &["--max-retries", "1"]);
    assert_eq!(puts(&sim).len(), 2, "one attempt plus one retry");
    let failed = agent.audit_of("UPDATE_FAILED");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["status"], 503);
    assert_eq!(failed[0]["data"]["sessionId"], "room-1");
    assert!(
        failed[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("gave up after 1 retries")
    );

    let dead = common::read_jsonl(&agent.state_dir().join("dead-letter.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["data"]["sessionId"], "room-1");
    assert_eq!(dead[0]["data"]["sequenceNumber"], 4);
    assert_eq!(dead[0]["data"]["mediaConfig"]["codec"], "h264");
    assert_eq!(dead[0]["data"]["participants"].as_array().unwrap().len(), 2);
}

#[test]
fn unauthorized_refreshes_token_once() {
    let lines = vec![event_line("room-1", 1, "vp8", "pause")];
    let (sim, agent, _) = run_script(&lines, &["--fail-401", "1"], &["--max-retries", "0"]);
    assert_eq!(
        agent.audit_of("STATE_APPLIED").len(),
        1,
        "the 401 retry must not count as a retry"
    );
    assert_eq!(agent.audit_of("TOKEN_REFRESHED").len(), 2);
    let puts = puts(&sim);
    assert_eq!(puts.len(), 2);
    assert_ne!(
        puts[0]["headers"]["authorization"],
        puts[1]["headers"]["authorization"]
    );
}

#[test]
fn forbidden_gives_up_with_scope_hint() {
    let lines = vec![event_line("room-1", 1, "vp8", "pause")];
    let (sim, agent, _) = run_script(&lines, &["--fail-403", "1"], &[]);
    let failed = agent.audit_of("UPDATE_FAILED");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["status"], 403);
    assert!(
        failed[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("video:videoconference:write")
    );
    assert_eq!(puts(&sim).len(), 1);
}

#[test]
fn not_found_gives_up_with_body() {
    let lines = vec![event_line("room-1", 1, "vp8", "pause")];
    let (sim, agent, _) = run_script(&lines, &["--fail-404", "1"], &[]);
    let failed = agent.audit_of("UPDATE_FAILED");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["status"], 404);
    assert!(
        failed[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 404")
    );
    assert_eq!(puts(&sim).len(), 1);
}

#[test]
fn older_sequence_is_superseded_without_request() {
    let lines = vec![
        event_line("room-1", 5, "vp8", "pause"),
        event_line("room-1", 5, "vp8", "pause"),
        event_line("room-1", 2, "vp8", "pause"),
        event_line("room-1", 6, "vp9", "pause"),
    ];
    let (sim, agent, _) = run_script(&lines, &[], &["--workers", "1"]);
    let counts = count_by_event(&agent.audit());
    assert_eq!(counts.get("STATE_APPLIED"), Some(&2));
    assert_eq!(counts.get("STATE_SUPERSEDED"), Some(&2));
    assert_eq!(counts.get("CODEC_NEGOTIATION"), Some(&1));
    assert_eq!(puts(&sim).len(), 2);
    let negotiation = &agent.audit_of("CODEC_NEGOTIATION")[0];
    assert_eq!(negotiation["data"]["from"], "vp8");
    assert_eq!(negotiation["data"]["to"], "vp9");
}

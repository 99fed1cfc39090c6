//! The agent embedded through the library API: configuration built in code,
//! calendar callbacks registered, and a stop requested from another thread.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{CLIENT_ID, CLIENT_SECRET, Sim, event_line, write_script};
use genesys_video_agent::calendar::Notice;
use genesys_video_agent::event::Directive;
use genesys_video_agent::{Agent, Shutdown, config};

fn config_for(sim: &Sim, dir: &std::path::Path, extra: &[&str]) -> config::Config {
    let env: HashMap<String, String> = [
        ("GENESYS_CLIENT_ID", CLIENT_ID),
        ("GENESYS_CLIENT_SECRET", CLIENT_SECRET),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let audit = dir.join("audit.jsonl");
    let state = dir.join("state");
    let mut args = vec![
        "--login-base",
        &sim.api,
        "--api-base",
        &sim.api,
        "--events-url",
        &sim.events,
        "--audit-log",
        audit.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (_, config) = config::parse(args.iter().map(std::ffi::OsString::from), &env)
        .expect("valid configuration");
    config
}

#[test]
fn callbacks_receive_directive_changes() {
    let scripts = tempfile::tempdir().unwrap();
    let lines = vec![
        event_line("room-1", 1, "vp8", "start"),
        event_line("room-1", 2, "vp8", "start"),
        event_line("room-1", 3, "vp8", "stop"),
    ];
    let script = write_script(scripts.path(), "s.jsonl", &lines);
    let sim = Sim::start(&["--script", &script]);
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(
        &sim,
        dir.path(),
        &["--exit-on-stream-end", "--workers", "1"],
    );

    let notices: Arc<Mutex<Vec<Notice>>> = Arc::default();
    let sink = Arc::clone(&notices);
    let summary = Agent::new(config)
        .on_calendar(move |notice| sink.lock().unwrap().push(notice.clone()))
        .run(Shutdown::new())
        .expect("agent run");

    assert!(summary.stream_ended);
    let notices = notices.lock().unwrap();
    let seen: Vec<(u64, Directive)> = notices.iter().map(|n| (n.sequence, n.directive)).collect();
    assert_eq!(seen, [(1, Directive::Start), (3, Directive::Stop)]);
    assert!(notices.iter().all(|n| n.session_id == "room-1"));
    let written: u64 = summary.audit.per_event.iter().map(|(_, count)| count).sum();
    assert_eq!(written, summary.audit.written);
}

#[test]
fn shutdown_from_another_thread_stops_the_run() {
    let sim = Sim::start(&["--on-end", "hold"]);
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, dir.path(), &[]);
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        trigger.trigger();
    });
    let started = std::time::Instant::now();
    let summary = Agent::new(config).run(shutdown).expect("agent run");
    stopper.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    assert!(!summary.stream_ended);
    let audit = common::read_jsonl(&dir.path().join("audit.jsonl"));
    assert_eq!(audit.last().unwrap()["event"], "AGENT_STOPPED");
}

//! TLS, proxies and secret hygiene against real servers on loopback: nginx
//! terminating TLS with a certificate from a CA made for the test, tinyproxy
//! as the HTTP proxy, and the simulator behind both.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use base64::Engine as _;
use common::servers::{Nginx, TestCa, Tinyproxy, connect_status_line};
use common::{AgentRun, Sim, agent_command, event_line, puts, write_script};

/// Limit for an agent run that ends on its own (stream end or `--run-for`).
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// Proxy user and password. tinyproxy's `BasicAuth` accepts only letters,
/// digits, `_`, `.` and `-`, so the URL percent-encodes the `.` (`%2E`) to
/// check that the agent decodes credentials before it sends them.
const PROXY_USER: &str = "agent";
const PROXY_PASSWORD: &str = "proxy-pw.Zq7";
const PROXY_PASSWORD_ENCODED: &str = "proxy-pw%2EZq7";

/// Three valid states for two sessions.
fn script_lines() -> Vec<String> {
    vec![
        event_line("tls-1", 1, "vp8", "start"),
        event_line("tls-1", 2, "vp9", "stop"),
        event_line("tls-2", 1, "h264", "pause"),
    ]
}

/// Starts a simulator that replays `lines` and then closes the stream.
fn script_sim(lines: &[String], extra: &[&str]) -> Sim {
    let scripts = tempfile::tempdir().expect("temporary directory");
    let script = write_script(scripts.path(), "script.jsonl", lines);
    let mut args = vec!["--script", script.as_str()];
    args.extend_from_slice(extra);
    // The simulator reads the whole script before it prints its addresses.
    Sim::start(&args)
}

/// Extracts the port from a simulator URL such as `ws://127.0.0.1:4000/path`.
fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).unwrap_or(url);
    let authority = authority.split('/').next().unwrap_or(authority);
    let port = authority.rsplit(':').next().unwrap_or_default();
    port.parse()
        .unwrap_or_else(|_| panic!("no port in URL {url}"))
}

/// One finished agent process.
struct Finished {
    agent: AgentRun,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the agent against `sim` with extra environment and arguments, and
/// waits at most `RUN_LIMIT` for it to exit.
fn run_agent(sim: &Sim, env: &[(&str, &str)], args: &[String]) -> Finished {
    let mut agent = AgentRun::new();
    let mut command = agent_command(sim, agent.dir.path());
    command.envs(env.iter().copied()).args(args);
    agent.spawn_command(command);
    let stdout = agent
        .child
        .as_mut()
        .and_then(|child| child.stdout.take())
        .expect("agent stdout");
    let stdout = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let (status, stderr) = agent.wait(RUN_LIMIT);
    let stdout = stdout.join().unwrap_or_default();
    Finished {
        agent,
        status,
        stdout,
        stderr,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn ca_flag(path: &std::path::Path) -> Vec<String> {
    vec![
        "--ca-file".to_owned(),
        path.to_str().expect("UTF-8 path").to_owned(),
    ]
}

/// Asserts that the run applied the three states of `script_lines`.
fn assert_states_applied(run: &Finished, sim: &Sim) {
    assert!(
        run.status.success(),
        "agent exited with {}: {}",
        run.status,
        run.stderr
    );
    assert_eq!(
        run.agent.audit_of("STATE_APPLIED").len(),
        3,
        "applied states; stderr:\n{}",
        run.stderr
    );
    assert_eq!(puts(sim).len(), 3, "PUTs the simulator received");
}

/// Asserts that `output` names a certificate problem and points at `--ca-file`.
fn assert_certificate_failure(output: &str, context: &str) {
    let lower = output.to_ascii_lowercase();
    assert!(
        lower.contains("certificate"),
        "{context}: no certificate reason in:\n{output}"
    );
    assert!(
        output.contains("--ca-file"),
        "{context}: no --ca-file hint in:\n{output}"
    );
}

// ---- TLS: nginx with a certificate from the test CA ----

#[test]
fn tls_with_ca_file_applies_states() {
    let ca = TestCa::create();
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.localhost_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    let mut args = nginx.agent_flags();
    args.extend(ca_flag(&ca.ca_file()));
    args.push("--exit-on-stream-end".to_owned());
    let run = run_agent(&sim, &[], &args);

    assert_states_applied(&run, &sim);
    let connected = run.agent.audit_of("STREAM_CONNECTED");
    assert_eq!(connected.len(), 1, "{}", run.stderr);
    assert_eq!(connected[0]["data"]["url"], nginx.events_url());
    let access = nginx.access_log();
    assert!(
        access.contains("\"POST /oauth/token HTTP/1.1\" 200"),
        "nginx did not proxy the token request:\n{access}"
    );
    assert!(
        access.contains("\"PUT /api/v2/videoconferences/tls-1 HTTP/1.1\" 200"),
        "nginx did not proxy the PUT:\n{access}"
    );
    assert!(
        access.contains("\"GET /api/v2/analytics/events/subscribe HTTP/1.1\" 101"),
        "nginx did not proxy the WebSocket upgrade:\n{access}"
    );
}

#[test]
fn check_without_ca_file_names_certificate() {
    let ca = TestCa::create();
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.localhost_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    let mut args = nginx.agent_flags();
    args.push("check".to_owned());
    let run = run_agent(&sim, &[], &args);

    assert_eq!(run.status.code(), Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("FAIL token"),
        "check did not fail at the token step:\n{}",
        run.stdout
    );
    assert_certificate_failure(&run.stdout, "check");
    assert!(
        sim.requests().is_empty(),
        "a request reached the simulator through an unverified connection"
    );
}

#[test]
fn stream_without_ca_file_names_certificate() {
    let ca = TestCa::create();
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.localhost_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    // OAuth goes straight to the simulator; only the stream crosses TLS.
    let args = vec![
        "--events-url".to_owned(),
        nginx.events_url(),
        "check".to_owned(),
    ];
    let run = run_agent(&sim, &[], &args);

    assert_eq!(run.status.code(), Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ok  token fetched"),
        "the token step should pass:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("FAIL event stream"),
        "check did not fail at the stream step:\n{}",
        run.stdout
    );
    assert_certificate_failure(&run.stdout, "check");
    assert!(
        !nginx
            .access_log()
            .contains("/api/v2/analytics/events/subscribe"),
        "the handshake was sent over an unverified connection"
    );
}

#[test]
fn rest_without_ca_file_fails_update() {
    let ca = TestCa::create();
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.localhost_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    // OAuth and the stream go straight to the simulator; only REST crosses TLS.
    let args = strings(&[
        "--api-base",
        &nginx.api_base(),
        "--max-retries",
        "0",
        "--exit-on-stream-end",
    ]);
    let run = run_agent(&sim, &[], &args);

    assert!(run.status.success(), "{}", run.stderr);
    let failed = run.agent.audit_of("UPDATE_FAILED");
    assert_eq!(failed.len(), 3, "{}", run.stderr);
    for entry in &failed {
        let reason = entry["data"]["reason"].as_str().unwrap_or_default();
        assert_certificate_failure(reason, "UPDATE_FAILED reason");
    }
    assert!(
        puts(&sim).is_empty(),
        "a PUT crossed an unverified connection"
    );
}

#[test]
fn agent_without_ca_file_retries() {
    let ca = TestCa::create();
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.localhost_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    let mut args = nginx.agent_flags();
    args.extend(strings(&["--run-for", "3s"]));
    let run = run_agent(&sim, &[], &args);

    assert!(
        run.status.success(),
        "the agent should stop cleanly after --run-for, not crash: {}\n{}",
        run.status,
        run.stderr
    );
    assert_certificate_failure(&run.stderr, "agent stderr");
    let attempts = run.stderr.matches("cannot fetch a token yet").count();
    assert!(
        attempts >= 2,
        "expected the token fetch to be retried, saw {attempts} attempts:\n{}",
        run.stderr
    );
    assert!(sim.requests().is_empty(), "a request reached the simulator");
}

#[test]
fn wrong_host_name_rejected_with_ca_file() {
    let ca = TestCa::create();
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.wrong_name_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    // OAuth through nginx: the certificate names wrong.example, not localhost.
    let mut args = nginx.agent_flags();
    args.extend(ca_flag(&ca.ca_file()));
    args.push("check".to_owned());
    let run = run_agent(&sim, &[], &args);
    assert_eq!(run.status.code(), Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAIL token"), "{}", run.stdout);
    assert!(
        run.stdout
            .to_ascii_lowercase()
            .contains("hostname mismatch"),
        "the token failure does not name the host name:\n{}",
        run.stdout
    );

    // The stream alone through nginx, OAuth straight to the simulator.
    let mut args = vec!["--events-url".to_owned(), nginx.events_url()];
    args.extend(ca_flag(&ca.ca_file()));
    args.push("check".to_owned());
    let run = run_agent(&sim, &[], &args);
    assert_eq!(run.status.code(), Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAIL event stream"), "{}", run.stdout);
    assert!(
        run.stdout
            .to_ascii_lowercase()
            .contains("hostname mismatch"),
        "the stream failure does not name the host name:\n{}",
        run.stdout
    );
    assert!(
        !nginx
            .access_log()
            .contains("/api/v2/analytics/events/subscribe"),
        "the handshake was sent to a server with the wrong name"
    );
}

#[test]
fn ca_bundle_second_certificate_trusted() {
    let ca = TestCa::create();
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.localhost_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    let mut args = nginx.agent_flags();
    args.extend(ca_flag(&ca.bundle_file()));
    args.push("--exit-on-stream-end".to_owned());
    let run = run_agent(&sim, &[], &args);

    assert_states_applied(&run, &sim);
    assert_eq!(run.agent.audit_of("STREAM_CONNECTED").len(), 1);
}

#[test]
fn unrelated_ca_file_is_rejected() {
    let ca = TestCa::create();
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.localhost_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    let mut args = nginx.agent_flags();
    args.extend(ca_flag(&ca.other_ca_file()));
    args.push("check".to_owned());
    let run = run_agent(&sim, &[], &args);

    assert_eq!(run.status.code(), Some(1), "{}{}", run.stdout, run.stderr);
    assert_certificate_failure(&run.stdout, "check");
}

// ---- Proxies: tinyproxy ----

/// Runs the script with the proxy named by `variable` and asserts that the
/// token request, the PUTs and the stream all went through it. ureq tunnels
/// plain-HTTP requests with CONNECT too, so tinyproxy logs only `host:port`:
/// OAuth is addressed as `localhost` and REST as `127.0.0.1` to tell them apart.
fn assert_all_traffic_proxied(variable: &str) {
    let proxy = Tinyproxy::start(&[]);
    let sim = script_sim(&script_lines(), &[]);
    let api_port = port_of(&sim.api);
    let events_port = port_of(&sim.events);
    let login_base = format!("http://localhost:{api_port}");
    let run = run_agent(
        &sim,
        &[(variable, &proxy.url())],
        &strings(&["--login-base", &login_base, "--exit-on-stream-end"]),
    );

    assert_states_applied(&run, &sim);
    let requests = proxy.requests();
    let expected = [
        (
            "token request",
            format!("CONNECT localhost:{api_port} HTTP/1.1"),
        ),
        ("PUT", format!("CONNECT 127.0.0.1:{api_port} HTTP/1.1")),
        (
            "stream",
            format!("CONNECT 127.0.0.1:{events_port} HTTP/1.1"),
        ),
    ];
    for (traffic, line) in expected {
        assert!(
            requests.contains(&line),
            "{variable}: no {traffic} through tinyproxy ({line:?}); it logged {requests:#?}"
        );
    }
}

#[test]
fn http_proxy_carries_all_traffic() {
    assert_all_traffic_proxied("HTTP_PROXY");
}

#[test]
fn lower_case_proxy_variable_works() {
    assert_all_traffic_proxied("http_proxy");
}

#[test]
fn all_proxy_carries_all_traffic() {
    assert_all_traffic_proxied("ALL_PROXY");
}

#[test]
fn no_proxy_bypasses_the_proxy() {
    let proxy = Tinyproxy::start(&[]);
    let cases = [
        ("NO_PROXY", "127.0.0.1"),
        ("no_proxy", "127.0.0.1"),
        ("NO_PROXY", "*"),
        ("NO_PROXY", "127.0.0.0/8"),
        ("NO_PROXY", "internal.example, .corp.example,127.0.0.1"),
    ];
    for (variable, value) in cases {
        let sim = script_sim(&script_lines(), &[]);
        let run = run_agent(
            &sim,
            &[("HTTP_PROXY", &proxy.url()), (variable, value)],
            &strings(&["--exit-on-stream-end"]),
        );
        assert_states_applied(&run, &sim);
        let requests = proxy.requests();
        assert!(
            requests.is_empty(),
            "{variable}={value}: traffic went through the proxy: {requests:#?}"
        );
    }
}

#[test]
fn no_proxy_port_skips_only_that_port() {
    let proxy = Tinyproxy::start(&[]);
    let sim = script_sim(&script_lines(), &[]);
    let api_port = port_of(&sim.api);
    let events_port = port_of(&sim.events);
    let no_proxy = format!("127.0.0.1:{api_port}");
    let run = run_agent(
        &sim,
        &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", &no_proxy)],
        &strings(&["--exit-on-stream-end"]),
    );

    assert_states_applied(&run, &sim);
    let requests = proxy.requests();
    assert_eq!(
        requests,
        vec![format!("CONNECT 127.0.0.1:{events_port} HTTP/1.1")],
        "only the stream should go through the proxy"
    );
}

/// Runs the agent for three seconds through a tinyproxy that allows CONNECT
/// to port 1 only, and returns the run and the proxy.
fn run_with_rejecting_proxy(sim: &Sim, env: &[(&str, &str)]) -> (Finished, Tinyproxy) {
    let proxy = Tinyproxy::start(&["ConnectPort 1"]);
    let mut env = env.to_vec();
    let url = proxy.url();
    env.push(("HTTP_PROXY", &url));
    let run = run_agent(sim, &env, &strings(&["--run-for", "3s"]));
    assert!(
        run.status.success(),
        "the agent should stop cleanly after --run-for, not crash: {}\n{}",
        run.status,
        run.stderr
    );
    assert!(run.agent.audit_of("STREAM_CONNECTED").is_empty());
    (run, proxy)
}

/// Asserts that `needle` appears at least twice in stderr (a retry), and
/// that tinyproxy logged at least two `CONNECT` requests to `port`.
fn assert_retried(run: &Finished, proxy: &Tinyproxy, needle: &str, port: u16) {
    let attempts = run.stderr.matches(needle).count();
    assert!(
        attempts >= 2,
        "expected {needle:?} at least twice (a retry), saw {attempts}:\n{}",
        run.stderr
    );
    let prefix = format!("CONNECT 127.0.0.1:{port} ");
    let connects = proxy
        .requests()
        .iter()
        .filter(|line| line.starts_with(&prefix))
        .count();
    assert!(
        connects >= 2,
        "tinyproxy logged {connects} {prefix:?} requests"
    );
}

#[test]
fn rejected_token_tunnel_names_proxy() {
    let sim = script_sim(&script_lines(), &[]);
    let (run, proxy) = run_with_rejecting_proxy(&sim, &[]);

    let failure = format!(
        "token request failed: CONNECT tunnel failed: proxy server responded 403/403 (proxy {})",
        proxy.url()
    );
    assert_retried(&run, &proxy, &failure, port_of(&sim.api));
    assert!(sim.requests().is_empty(), "a request bypassed the proxy");
}

#[test]
fn rejected_stream_tunnel_names_proxy() {
    let sim = script_sim(&script_lines(), &[]);
    // OAuth goes straight to the simulator, so only the stream meets the proxy.
    let no_proxy = format!("127.0.0.1:{}", port_of(&sim.api));
    let (run, proxy) = run_with_rejecting_proxy(&sim, &[("NO_PROXY", &no_proxy)]);

    let events_port = port_of(&sim.events);
    let failure = format!(
        "proxy {} refused the tunnel to 127.0.0.1:{events_port}",
        proxy.url()
    );
    assert_retried(&run, &proxy, &failure, events_port);
}

#[test]
fn proxy_credentials_work_and_stay_hidden() {
    let proxy = Tinyproxy::start(&[&format!("BasicAuth {PROXY_USER} {PROXY_PASSWORD}")]);
    let sim = script_sim(&script_lines(), &[]);
    let events_port = port_of(&sim.events);
    let unauthenticated = connect_status_line(proxy.port, &format!("127.0.0.1:{events_port}"));
    assert!(
        unauthenticated.contains(" 407 "),
        "tinyproxy should require credentials, but replied {unauthenticated:?}"
    );

    let proxy_url = format!(
        "http://{PROXY_USER}:{PROXY_PASSWORD_ENCODED}@127.0.0.1:{}",
        proxy.port
    );
    let run = run_agent(
        &sim,
        &[("HTTP_PROXY", &proxy_url), ("RUST_LOG", "trace")],
        &strings(&["--exit-on-stream-end"]),
    );

    assert_states_applied(&run, &sim);
    assert!(
        proxy
            .requests()
            .contains(&format!("CONNECT 127.0.0.1:{events_port} HTTP/1.1")),
        "the stream did not go through the proxy"
    );
    assert!(
        run.stderr
            .contains(&format!("http://{PROXY_USER}:***@127.0.0.1:{}", proxy.port)),
        "the proxy is not named (with its password hidden) in the log:\n{}",
        run.stderr
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"));
    let mut outputs = vec![
        ("stderr".to_owned(), run.stderr.clone()),
        ("stdout".to_owned(), run.stdout.clone()),
        (
            "audit".to_owned(),
            std::fs::read_to_string(run.agent.audit_path()).expect("read audit"),
        ),
    ];
    for entry in std::fs::read_dir(run.agent.state_dir()).expect("read state dir") {
        let path = entry.expect("state dir entry").path();
        let bytes = std::fs::read(&path).expect("read state file");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        outputs.push((path.display().to_string(), text));
    }
    for (name, text) in &outputs {
        for secret in [PROXY_PASSWORD, PROXY_PASSWORD_ENCODED, basic.as_str()] {
            assert!(
                !text.contains(secret),
                "the proxy password ({secret}) appears in {name}"
            );
        }
    }
}

#[test]
fn https_through_proxy_tunnel() {
    let ca = TestCa::create();
    let proxy = Tinyproxy::start(&[]);
    let sim = script_sim(&script_lines(), &[]);
    let (cert, key) = ca.localhost_pair();
    let nginx = Nginx::start(&sim, &cert, &key);

    let mut args = nginx.agent_flags();
    args.extend(ca_flag(&ca.ca_file()));
    args.push("--exit-on-stream-end".to_owned());
    let run = run_agent(&sim, &[("HTTPS_PROXY", &proxy.url())], &args);

    assert_states_applied(&run, &sim);
    let requests = proxy.requests();
    for port in [nginx.api_port, nginx.events_port] {
        let line = format!("CONNECT localhost:{port} HTTP/1.1");
        assert!(
            requests.contains(&line),
            "tinyproxy did not log {line:?}; it logged {requests:#?}"
        );
    }
    assert!(
        requests.iter().all(|line| line.starts_with("CONNECT ")),
        "https traffic must be tunnelled, not forwarded: {requests:#?}"
    );
    assert!(
        nginx
            .access_log()
            .contains("\"PUT /api/v2/videoconferences/tls-1 HTTP/1.1\" 200"),
        "the PUT did not reach nginx"
    );
}

// ---- Secret hygiene ----

#[test]
fn audit_and_state_files_are_private() {
    // The first PUT gets 404, so a dead letter is written too.
    let sim = script_sim(&script_lines(), &["--fail-404", "1"]);
    let mut agent = AgentRun::new();
    let mut command = agent_command(&sim, agent.dir.path());
    command.arg("--exit-on-stream-end");
    // A umask of 000 would leave files created with default modes readable
    // by everyone, so only modes the agent sets on purpose pass.
    agent.spawn_command(with_umask_000(&command));
    let (status, stderr) = agent.wait(RUN_LIMIT);
    assert!(status.success(), "{stderr}");
    assert_eq!(agent.audit_of("UPDATE_FAILED").len(), 1, "{stderr}");

    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|err| panic!("stat {}: {err}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&agent.audit_path()), 0o600, "audit file mode");
    assert_eq!(mode(&agent.state_dir()), 0o700, "state dir mode");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(agent.state_dir()).expect("read state dir") {
        let path = entry.expect("state dir entry").path();
        assert_eq!(mode(&path), 0o600, "mode of {}", path.display());
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        names.iter().any(|name| name == "dead-letter.jsonl"),
        "no dead-letter file to check: {names:?}"
    );
    assert!(names.len() >= 2, "state files checked: {names:?}");
}

/// Wraps `command` in `sh -c 'umask 000; exec …'` with the same
/// environment and arguments.
fn with_umask_000(command: &Command) -> Command {
    let mut wrapped = Command::new("sh");
    wrapped
        .env_clear()
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            wrapped.env(key, value);
        }
    }
    wrapped
}

#[test]
fn token_never_in_request_urls() {
    // The 401 revokes the first token, so two tokens are in play.
    let sim = script_sim(&script_lines(), &["--fail-401", "1"]);
    let run = run_agent(&sim, &[], &strings(&["--exit-on-stream-end"]));
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        run.agent.audit_of("STATE_APPLIED").len(),
        3,
        "{}",
        run.stderr
    );

    let requests = sim.requests();
    let mut tokens = Vec::new();
    for request in &requests {
        if let Some(token) = request["headers"]["authorization"]
            .as_str()
            .and_then(|value| value.strip_prefix("Bearer "))
        {
            tokens.push(token.to_owned());
        }
    }
    tokens.sort();
    tokens.dedup();
    assert!(tokens.len() >= 2, "expected two tokens, saw {tokens:?}");

    let handshakes = match sim.get("/_sim/streams") {
        serde_json::Value::Array(list) => list,
        other => panic!("unexpected /_sim/streams reply {other}"),
    };
    assert!(!handshakes.is_empty(), "no stream handshake recorded");
    let paths: Vec<&str> = requests
        .iter()
        .chain(&handshakes)
        .map(|request| request["path"].as_str().unwrap_or_default())
        .collect();
    for path in &paths {
        assert!(!path.contains('?'), "a request URL has a query: {path}");
        for token in &tokens {
            assert!(
                !path.contains(token.as_str()),
                "a token is in the URL {path}"
            );
        }
    }
}

#[test]
fn session_id_cannot_change_request_path() {
    let hostile = ["../../oauth/token", "a%2F..", "a/b", ".."];
    let mut lines: Vec<String> = hostile
        .iter()
        .map(|session| event_line(session, 1, "vp8", "start"))
        .collect();
    lines.push(event_line("safe-1", 1, "vp8", "start"));
    let sim = script_sim(&lines, &[]);
    let run = run_agent(&sim, &[], &strings(&["--exit-on-stream-end"]));
    assert!(run.status.success(), "{}", run.stderr);

    let rejected = run.agent.audit_of("VALIDATION_FAILED");
    for session in hostile {
        let entry = rejected
            .iter()
            .find(|entry| entry["data"]["sessionId"] == session)
            .unwrap_or_else(|| panic!("no VALIDATION_FAILED for session {session:?}"));
        let codes: Vec<&str> = entry["data"]["violations"]
            .as_array()
            .expect("violations list")
            .iter()
            .filter_map(|violation| violation["code"].as_str())
            .collect();
        assert!(
            codes.contains(&"session_id"),
            "session {session:?} rejected with {codes:?}, not session_id"
        );
    }
    assert_eq!(run.agent.audit_of("STATE_APPLIED").len(), 1);

    let paths: Vec<String> = sim
        .requests()
        .iter()
        .map(|request| request["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected = ["/oauth/token", "/api/v2/videoconferences/safe-1"];
    for path in &paths {
        assert!(
            expected.contains(&path.as_str()),
            "the simulator saw an unexpected path {path:?}; all paths: {paths:?}"
        );
    }
}

//! The command line: flags, their defaults and the help text.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::prelude::*;
use serde_json::Value;

use crate::faults::Faults;
use crate::load::LoadSpec;

pub const HELP: &str = "\
genesys-video-sim: a loopback stand-in for the Genesys Cloud OAuth, video
conference REST and event stream endpoints, with fault injection.

Usage: genesys-video-sim [OPTIONS]

Listeners (loopback addresses only):
  --listen-api ADDR         HTTP address for OAuth, REST and /_sim/* [127.0.0.1:0]
  --listen-events ADDR      WebSocket address for the event stream [127.0.0.1:0]
  --exit-after SECONDS      stop after this many seconds (default: run until SIGINT/SIGTERM)

OAuth:
  --client-id ID            expected client id [sim-client]
  --client-secret SECRET    expected client secret [sim-secret]
  --token-lifetime SECS     lifetime of issued tokens [3600]
  --expires-in-format F     send expires_in as a number, a string, or leave it missing [number]
  --token-failures N        answer the next N token requests with 503 [0]
  --reject-credentials      answer every token request with 401 invalid_client

Event stream (position is shared by all connections):
  --script FILE             send each non-blank line of FILE verbatim as one text frame;
                            lines starting with # are comments, except these directives,
                            each one frame position (for --drop-after and the like):
                              #binary TEXT          TEXT as a binary frame
                              #invalid-utf8         a text frame with the bytes FF FE in
                                                    an event's sessionId (not UTF-8)
                              #fragmented N JSON    JSON as one message in N frames
                                                    (2 <= N <= its length in bytes)
                              #oversized N          a text frame of exactly N bytes,
                                                    {\"eventType\":\"heartbeat\",\"padding\":\"xx...\"}
                              #close CODE [REASON]  a close frame with any code 0-65535
  --events N                generate N valid videoConferenceEvent frames instead
  --sessions M              spread generated events over M sessions, at most 1000000 [10]
  --seed S                  seed of the generated load and of tokens [1]
  --invalid-every K         make every K-th generated event invalid; 0 is none [0]
  --rate R                  event frames per second; 0 sends as fast as the socket takes them [0]
  --heartbeat-interval MS   send {\"eventType\":\"heartbeat\"} this often; 0 is none [0]
  --on-end close|hold       after the last frame, close with code 1000 or keep the stream open [close]
  --pong-delay MS           delay each pong by this long [0]
  --drop-after N            drop the connection after N event frames, once [0 = off]
  --replay-overlap K        frames resent on the connection after a drop [5]
  --half-open-after N       go silent after N event frames without closing, once [0 = off]
  --refuse-streams          answer the WebSocket handshake with 503

REST faults (each counts down by one per PUT):
  --put-latency MS          delay each GET and PUT answer by this long [0]
  --fail-429 N              answer the next N PUTs with 429
  --retry-after VALUE       Retry-After sent with those 429s, verbatim; empty sends none [1]
  --fail-5xx N              answer the next N PUTs with --fail-status
  --fail-status CODE        500, 502, 503 or 504 [503]
  --fail-401 N              answer the next N PUTs with 401 and revoke their token
  --fail-403 N              answer the next N PUTs with 403
  --fail-404 N              answer the next N PUTs with 404
  --race-409 N              the next N PUTs lose a race to a writer of version If-Match + 5
  --lag-409 N               the next N PUTs get 409 from a replica that holds an older version
  --rate-budget N           REST requests allowed per window, with inin-ratelimit-* headers [0 = off]
  --rate-window SECS        length of the rate budget window [60]

  -h, --help                print this help
  -V, --version             print the version

Every fault can be changed at run time: POST /_sim/control with a JSON object
of the same names in snake_case, for example {\"fail_429\":2,\"pong_delay\":300}.
";

/// Maximum `--sessions`. The generator keeps a few bytes of state per session.
const MAX_SESSIONS: u64 = 1_000_000;

/// Action requested on the command line.
pub enum Command {
    Run(Box<Options>),
    Help,
    Version,
}

/// A validated command line.
pub struct Options {
    pub listen_api: SocketAddr,
    pub listen_events: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
    pub source: SourceSpec,
    /// Event frames per second, or 0 for unpaced.
    pub rate: f64,
    /// Zero means no heartbeats.
    pub heartbeat_interval: Duration,
    pub on_end: OnEnd,
    pub exit_after: Option<Duration>,
    pub faults: Faults,
}

/// Source of the event frames.
pub enum SourceSpec {
    /// No events: the stream stays open and sends only heartbeats.
    Silent,
    Script(PathBuf),
    Load(LoadSpec),
}

/// Behaviour of the stream once every frame has been sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnEnd {
    Close,
    Hold,
}

/// An invalid command line, with the message shown to the user.
#[derive(Debug)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(error: lexopt::Error) -> Self {
        Self(error.to_string())
    }
}

/// Load flags collected before it is known whether `--events` was given.
#[derive(Default)]
struct LoadFlags {
    events: Option<u64>,
    sessions: Option<u64>,
    seed: Option<u64>,
    invalid_every: Option<u64>,
}

/// Parses the process arguments.
pub fn parse_args() -> Result<Command, UsageError> {
    parse(lexopt::Parser::from_env())
}

fn parse(mut parser: lexopt::Parser) -> Result<Command, UsageError> {
    let mut options = Options {
        listen_api: loopback_any_port(),
        listen_events: loopback_any_port(),
        client_id: "sim-client".to_string(),
        client_secret: "sim-secret".to_string(),
        source: SourceSpec::Silent,
        rate: 0.0,
        heartbeat_interval: Duration::ZERO,
        on_end: OnEnd::Close,
        exit_after: None,
        faults: Faults::default(),
    };
    let mut script = None;
    let mut load = LoadFlags::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("listen-api") => options.listen_api = loopback(parser.value()?)?,
            Long("listen-events") => options.listen_events = loopback(parser.value()?)?,
            Long("exit-after") => options.exit_after = Some(seconds(parser.value()?)?),
            Long("client-id") => options.client_id = parser.value()?.string()?,
            Long("client-secret") => options.client_secret = parser.value()?.string()?,
            Long("script") => script = Some(PathBuf::from(parser.value()?)),
            Long("events") => load.events = Some(parser.value()?.parse()?),
            Long("sessions") => load.sessions = Some(parser.value()?.parse()?),
            Long("seed") => load.seed = Some(parser.value()?.parse()?),
            Long("invalid-every") => load.invalid_every = Some(parser.value()?.parse()?),
            Long("rate") => options.rate = frame_rate(parser.value()?)?,
            Long("heartbeat-interval") => {
                options.heartbeat_interval = Duration::from_millis(parser.value()?.parse()?)
            }
            Long("on-end") => options.on_end = on_end(parser.value()?)?,
            Long(name) => {
                let name = name.to_string();
                set_fault(&mut options.faults, &name, &mut parser)?
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    options.source = source(script, load)?;
    Ok(Command::Run(Box::new(options)))
}

fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Sets a fault flag (`--fail-429 2` sets `fail_429`) or rejects an unknown flag.
fn set_fault(
    faults: &mut Faults,
    flag: &str,
    parser: &mut lexopt::Parser,
) -> Result<(), UsageError> {
    let name = flag.replace('-', "_");
    let value = if Faults::is_switch(&name) {
        Value::Bool(true)
    } else if Faults::is_known(&name) {
        Value::String(parser.value()?.string()?)
    } else {
        return Err(UsageError(format!(
            "invalid option '--{flag}'; run with --help for the list of options"
        )));
    };
    faults
        .set(&name, &value)
        .map_err(|message| UsageError(format!("--{flag}: {message}")))
}

fn source(script: Option<PathBuf>, load: LoadFlags) -> Result<SourceSpec, UsageError> {
    match (script, load.events) {
        (Some(_), Some(_)) => Err(UsageError(
            "--script and --events exclude each other; choose one event source".to_string(),
        )),
        (Some(path), None) => Ok(SourceSpec::Script(path)),
        (None, Some(events)) => load_spec(events, load).map(SourceSpec::Load),
        (None, None) if load.sessions.is_some() || load.invalid_every.is_some() => Err(UsageError(
            "--sessions and --invalid-every need --events N".to_string(),
        )),
        (None, None) => Ok(SourceSpec::Silent),
    }
}

fn load_spec(events: u64, load: LoadFlags) -> Result<LoadSpec, UsageError> {
    let sessions = load.sessions.unwrap_or(10);
    if !(1..=MAX_SESSIONS).contains(&sessions) {
        return Err(UsageError(format!(
            "invalid --sessions {sessions}: expected 1 to {MAX_SESSIONS} sessions"
        )));
    }
    Ok(LoadSpec {
        events,
        sessions,
        seed: load.seed.unwrap_or(1),
        invalid_every: load.invalid_every.unwrap_or(0),
    })
}

fn loopback(value: OsString) -> Result<SocketAddr, UsageError> {
    let text = value.string()?;
    let address: SocketAddr = text.parse().map_err(|_| {
        UsageError(format!(
            "invalid address '{text}': expected IP:PORT such as 127.0.0.1:0"
        ))
    })?;
    if !address.ip().is_loopback() {
        return Err(UsageError(format!(
            "invalid address '{text}': the simulator listens on loopback addresses only"
        )));
    }
    Ok(address)
}

fn seconds(value: OsString) -> Result<Duration, UsageError> {
    let text = value.string()?;
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| {
            UsageError(format!(
                "invalid --exit-after '{text}': expected seconds >= 0"
            ))
        })
}

fn frame_rate(value: OsString) -> Result<f64, UsageError> {
    let text = value.string()?;
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(UsageError(format!(
            "invalid --rate '{text}': expected frames per second >= 0"
        ))),
    }
}

fn on_end(value: OsString) -> Result<OnEnd, UsageError> {
    match value.string()?.as_str() {
        "close" => Ok(OnEnd::Close),
        "hold" => Ok(OnEnd::Hold),
        other => Err(UsageError(format!(
            "invalid --on-end '{other}': expected close or hold"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Command, UsageError> {
        parse(lexopt::Parser::from_iter(
            std::iter::once("genesys-video-sim").chain(words.iter().copied()),
        ))
    }

    fn options(words: &[&str]) -> Options {
        match parse_words(words) {
            Ok(Command::Run(options)) => *options,
            Ok(_) => panic!("expected options for {words:?}"),
            Err(error) => panic!("{words:?}: {error}"),
        }
    }

    #[test]
    fn defaults() {
        let options = options(&[]);
        assert_eq!(options.listen_api, loopback_any_port());
        assert_eq!(options.client_id, "sim-client");
        assert_eq!(options.faults.token_lifetime, 3600);
        assert!(matches!(options.source, SourceSpec::Silent));
        assert_eq!(options.on_end, OnEnd::Close);
    }

    #[test]
    fn fault_flags_set_faults() {
        let options = options(&[
            "--fail-429",
            "2",
            "--retry-after",
            "7200",
            "--refuse-streams",
        ]);
        assert_eq!(options.faults.fail_429, 2);
        assert_eq!(options.faults.retry_after, "7200");
        assert!(options.faults.refuse_streams);
    }

    #[test]
    fn load_flags_build_spec() {
        let options = options(&["--events", "100", "--sessions", "7", "--seed", "9"]);
        let SourceSpec::Load(spec) = options.source else {
            panic!("expected a load source");
        };
        assert_eq!((spec.events, spec.sessions, spec.seed), (100, 7, 9));
    }

    #[test]
    fn rejects_non_loopback_address() {
        assert!(parse_words(&["--listen-api", "0.0.0.0:8080"]).is_err());
    }

    #[test]
    fn rejects_unknown_flag() {
        let error = parse_words(&["--fail-418", "1"])
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|message| message.contains("--fail-418")));
    }

    #[test]
    fn rejects_script_with_events() {
        assert!(parse_words(&["--script", "a.jsonl", "--events", "5"]).is_err());
    }
}

//! The subcommands other than `run`: `check`, `validate` and `replay`. Each
//! returns the process exit code.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::Instant;

use crate::audit::ReopenSignal;
use crate::auth::TokenSource;
use crate::config::Config;
use crate::event::{self, Frame};
use crate::http::{ClientFactory, Timeouts};
use crate::proxy::ProxySettings;
use crate::shutdown::Shutdown;
use crate::store;
use crate::stream::{self, StreamSettings};
use crate::tls::TrustRoots;
use crate::{Agent, validate};

pub const EXIT_OK: i32 = 0;
/// `validate` found an invalid line, or `check` found a problem that is
/// neither a configuration error nor rejected credentials.
pub const EXIT_INVALID: i32 = 1;
pub const EXIT_CREDENTIALS: i32 = 77;
pub const EXIT_CONFIG: i32 = 78;
pub const EXIT_INTERNAL: i32 = 70;

/// Validates event lines offline and prints one verdict per line on stdout.
pub fn validate(input: Option<&Path>, config: &Config) -> i32 {
    let reader: Box<dyn Read> = match input {
        None => Box::new(std::io::stdin()),
        Some(path) => match std::fs::File::open(path) {
            Ok(file) => Box::new(file),
            Err(err) => {
                eprintln!("genesys-video-agent: cannot open {}: {err}", path.display());
                return EXIT_CONFIG;
            }
        },
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut invalid = 0u64;
    let mut total = 0u64;
    for (index, line) in BufReader::new(reader).split(b'\n').enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(err) => {
                eprintln!("genesys-video-agent: cannot read input: {err}");
                return EXIT_CONFIG;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        total += 1;
        let (ok, verdict) = verdict_for(&line, config);
        if !ok {
            invalid += 1;
        }
        if writeln!(out, "line {}: {verdict}", index + 1).is_err() {
            return EXIT_INTERNAL;
        }
    }
    let _ = writeln!(out, "{total} lines checked, {invalid} invalid");
    let _ = out.flush();
    if invalid > 0 { EXIT_INVALID } else { EXIT_OK }
}

/// Returns whether the line is acceptable, and the verdict text.
fn verdict_for(line: &[u8], config: &Config) -> (bool, String) {
    if line.len() > stream::MAX_MESSAGE_BYTES {
        return (
            false,
            format!(
                "malformed: {} bytes, over the 1 MiB message limit",
                line.len()
            ),
        );
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return (false, "malformed: not valid UTF-8".to_owned());
    };
    match event::parse_frame(text) {
        Err(err) => (false, format!("malformed: {err}")),
        Ok(Frame::Other { event_type }) => (
            true,
            format!("ignored: eventType {}", event::excerpt(&event_type, 64)),
        ),
        Ok(Frame::Video { data }) => match validate::validate(&data, config.gateway_profile) {
            Ok(state) => (
                true,
                format!(
                    "valid: session {} sequence {}",
                    state.session_id, state.sequence
                ),
            ),
            Err(violations) => {
                let listed: Vec<String> = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.code, v.message))
                    .collect();
                (false, format!("invalid: {}", listed.join("; ")))
            }
        },
    }
}

/// Loads the configuration, fetches a token, opens and closes the stream,
/// and prints a short report.
pub fn check(config: &Config) -> i32 {
    println!("genesys-video-agent {} check", env!("CARGO_PKG_VERSION"));
    println!("  region          {} ({})", config.region, config.domain);
    println!("  login base      {}", config.login_base);
    println!("  api base        {}", config.api_base);
    println!("  events url      {}", config.events_url);
    println!("  state dir       {}", config.state_dir.display());
    println!("  audit log       {}", config.audit_log.display());
    println!("  gateway profile {}", config.gateway_profile.name());

    let (client_id, secret) = match config.credentials() {
        Ok(pair) => pair,
        Err(err) => return report_failure("credentials", &err.to_string(), EXIT_CONFIG),
    };
    println!("  client id       {client_id}");
    let roots = match TrustRoots::load(config.ca_file.as_deref()) {
        Ok(roots) => roots,
        Err(err) => return report_failure("CA file", &err.to_string(), EXIT_CONFIG),
    };

    let (audit, _entries) = crate::audit::Audit::capture();
    let factory = ClientFactory {
        roots,
        proxies: ProxySettings::from_env(),
        timeouts: Timeouts::default(),
    };
    let client = match factory.client_for(&config.login_base) {
        Ok(client) => client,
        Err(reason) => return report_failure("proxy", &reason, EXIT_CONFIG),
    };
    let tokens = TokenSource::new(client, &config.login_base, &client_id, &secret, audit);
    let started = Instant::now();
    match tokens.token() {
        Ok(_) => println!("ok  token fetched in {} ms", started.elapsed().as_millis()),
        Err(err) if !err.is_transient() => {
            return report_failure("token", &err.to_string(), EXIT_CREDENTIALS);
        }
        Err(err) => return report_failure("token", &err.to_string(), EXIT_INVALID),
    }

    let settings = StreamSettings {
        url: config.events_url.clone(),
        states: config.states.clone(),
        ping_interval: config.ping_interval,
        exit_on_stream_end: false,
        roots: factory.roots.clone(),
        proxies: factory.proxies.clone(),
    };
    let started = Instant::now();
    match stream::probe(&settings, &tokens) {
        Ok(()) => println!(
            "ok  event stream opened and closed in {} ms",
            started.elapsed().as_millis()
        ),
        Err(reason) => return report_failure("event stream", &reason, EXIT_INVALID),
    }
    println!("all checks passed");
    EXIT_OK
}

fn report_failure(what: &str, reason: &str, code: i32) -> i32 {
    println!("FAIL {what}: {reason}");
    code
}

/// Sends the states of a dead-letter file again. When the file is the live
/// dead-letter file of the state directory, it is first renamed, so states
/// that fail again land in a new dead-letter file instead of the one being read.
pub fn replay(file: &Path, config: Config) -> i32 {
    let source = match set_aside_if_live(file, &config) {
        Ok(source) => source,
        Err(reason) => {
            eprintln!("genesys-video-agent: {reason}");
            return EXIT_CONFIG;
        }
    };
    let shutdown = Shutdown::new();
    let reopen = ReopenSignal::new();
    if let Err(err) = crate::signals::install(&shutdown, &reopen) {
        eprintln!("genesys-video-agent: cannot install signal handlers: {err}");
        return EXIT_INTERNAL;
    }
    match Agent::new(config)
        .audit_reopen(reopen)
        .replay_from(source.clone())
        .run(shutdown)
    {
        Ok(summary) => {
            eprintln!(
                "replayed {}; audit file: {}",
                source.display(),
                summary.audit_path.display()
            );
            eprintln!("total audit entries: {}", summary.audit.written);
            EXIT_OK
        }
        Err(err) => {
            if err.exit_code() != 0 {
                eprintln!("genesys-video-agent: {err}");
            }
            err.exit_code()
        }
    }
}

fn set_aside_if_live(file: &Path, config: &Config) -> Result<std::path::PathBuf, String> {
    if !file.is_file() {
        return Err(format!(
            "replay file {} does not exist or is not a file",
            file.display()
        ));
    }
    let live = config.state_dir.join(store::DEAD_LETTER_FILE);
    let same = match (file.canonicalize(), live.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        return Ok(file.to_path_buf());
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = config
        .state_dir
        .join(format!("{}.replayed-{stamp}", store::DEAD_LETTER_FILE));
    std::fs::rename(file, &aside).map_err(|err| {
        format!(
            "cannot rename {} before replaying it: {err}",
            file.display()
        )
    })?;
    log::info!(
        "moved {} to {} before replaying it",
        file.display(),
        aside.display()
    );
    Ok(aside)
}

//! The agent's configuration: command line, environment, env file and defaults, merged and checked.
//!
//! A flag wins over its environment variable, a variable set in the process
//! environment wins over the same variable in the `--env-file` file, and the
//! file wins over the default. An empty environment variable counts as unset.

mod cli;
mod duration;
mod env_file;
mod help;
mod sources;
mod url;
mod values;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::region::{self, RegionError};
use crate::secret::Secret;
use sources::Sources;
use url::UrlKind;
use values::{
    parse_count, parse_duration_in, parse_gateway_profile, parse_socket_address, parse_states,
};

pub use duration::parse_duration;
pub use help::help_text;

/// Environment variable with the OAuth client id.
pub const CLIENT_ID_VAR: &str = "GENESYS_CLIENT_ID";
/// Environment variable with the OAuth client secret.
pub const CLIENT_SECRET_VAR: &str = "GENESYS_CLIENT_SECRET";

/// Maximum number of characters of a rejected value that an error message repeats.
const MAX_SHOWN_CHARS: usize = 100;

const DEFAULT_REGION: &str = "us-east-1";
const DEFAULT_DOMAIN: &str = "mypurecloud.com";
const DEFAULT_STATES: &[&str] = &["active", "updating", "recording"];
const EVENTS_PATH: &str = "/api/v2/analytics/events/subscribe";

const WORKERS_RANGE: RangeInclusive<u64> = 1..=64;
const QUEUE_CAPACITY_RANGE: RangeInclusive<u64> = 1..=1_000_000;
const MAX_RETRIES_RANGE: RangeInclusive<u64> = 0..=20;
const PING_INTERVAL_RANGE: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);
const MAX_RETRY_AFTER_RANGE: RangeInclusive<Duration> =
    Duration::ZERO..=Duration::from_secs(86_400);
/// One year: long enough for any cron window, and far from the overflow of
/// `Instant + Duration`.
const RUN_FOR_RANGE: RangeInclusive<Duration> =
    Duration::from_nanos(1)..=Duration::from_secs(8760 * 3600);

/// Subcommand selected on the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Command {
    /// Run the agent until stopped.
    #[default]
    Run,
    /// Load the configuration, fetch a token, open and close the stream, and report.
    Check,
    /// Validate event lines offline. `None` is standard input, which `-` also selects.
    Validate { input: Option<PathBuf> },
    /// Send the states of a dead-letter file again.
    Replay { file: PathBuf },
    /// Print [`help_text`].
    Help,
    /// Print the version.
    Version,
}

/// Limits of the video gateway that sessions are validated against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayProfile {
    Hd,
    Standard,
}

impl GatewayProfile {
    /// Highest `maxBitrate` the gateway accepts, in kbps.
    pub fn max_bitrate_kbps(self) -> u32 {
        match self {
            GatewayProfile::Hd => 8000,
            GatewayProfile::Standard => 4000,
        }
    }

    /// Name as written in `--gateway-profile`.
    pub fn name(self) -> &'static str {
        match self {
            GatewayProfile::Hd => "hd",
            GatewayProfile::Standard => "standard",
        }
    }

    fn from_name(text: &str) -> Option<Self> {
        [GatewayProfile::Hd, GatewayProfile::Standard]
            .into_iter()
            .find(|profile| profile.name().eq_ignore_ascii_case(text))
    }
}

/// The checked configuration of the agent.
#[derive(Clone, Debug)]
pub struct Config {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Region name as spelled in the region table, or the bare domain given instead.
    pub region: String,
    pub domain: String,
    /// REST base URL, without a trailing slash.
    pub api_base: String,
    /// OAuth base URL, without a trailing slash.
    pub login_base: String,
    pub events_url: String,
    pub audit_log: PathBuf,
    pub state_dir: PathBuf,
    pub workers: usize,
    /// Number of pending states that counts as 100 % utilization.
    pub queue_capacity: usize,
    pub ping_interval: Duration,
    pub gateway_profile: GatewayProfile,
    /// Session states of the subscription filter.
    pub states: Vec<String>,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Maximum `Retry-After` that the agent waits for before giving a state up.
    pub max_retry_after: Duration,
    pub calendar_webhook: Option<String>,
    pub calendar_exec: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub ca_file: Option<PathBuf>,
    pub run_for: Option<Duration>,
    pub exit_on_stream_end: bool,
}

impl Config {
    /// Returns the client id and secret, or [`ConfigError::MissingCredentials`]
    /// naming each missing variable.
    pub fn credentials(&self) -> Result<(String, Secret), ConfigError> {
        let id = self.client_id.clone().filter(|id| !id.is_empty());
        let secret = self
            .client_secret
            .clone()
            .filter(|secret| !secret.is_empty());
        match (id, secret) {
            (Some(id), Some(secret)) => Ok((id, secret)),
            (id, secret) => {
                let mut missing = Vec::new();
                if id.is_none() {
                    missing.push(CLIENT_ID_VAR);
                }
                if secret.is_none() {
                    missing.push(CLIENT_SECRET_VAR);
                }
                Err(ConfigError::MissingCredentials { missing })
            }
        }
    }

    /// Returns a configuration with every default and no credentials, for
    /// tests and for embedding the agent as a library.
    pub fn defaults() -> Config {
        Config {
            client_id: None,
            client_secret: None,
            region: DEFAULT_REGION.to_owned(),
            domain: DEFAULT_DOMAIN.to_owned(),
            api_base: default_api_base(DEFAULT_DOMAIN),
            login_base: default_login_base(DEFAULT_DOMAIN),
            events_url: default_events_url(DEFAULT_DOMAIN),
            audit_log: PathBuf::from("audit.jsonl"),
            state_dir: PathBuf::from("state"),
            workers: 4,
            queue_capacity: 200,
            ping_interval: Duration::from_secs(30),
            gateway_profile: GatewayProfile::Hd,
            states: DEFAULT_STATES
                .iter()
                .map(|state| state.to_string())
                .collect(),
            max_retries: 3,
            max_retry_after: Duration::from_secs(120),
            calendar_webhook: None,
            calendar_exec: None,
            metrics_listen: None,
            ca_file: None,
            run_for: None,
            exit_on_stream_end: false,
        }
    }
}

fn default_api_base(domain: &str) -> String {
    format!("https://api.{domain}")
}

fn default_login_base(domain: &str) -> String {
    format!("https://login.{domain}")
}

fn default_events_url(domain: &str) -> String {
    format!("wss://api.{domain}{EVENTS_PATH}")
}

/// Error of [`parse`] and [`Config::credentials`]. No variant ever contains
/// the client secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The command line is malformed: unknown option, missing value, extra argument.
    Usage(String),
    /// A flag or variable has a bad value. `name` is the flag or variable as
    /// given, `value` is cut to 100 characters, and `reason` states the expected form.
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    /// The client id, the secret or both are not set.
    MissingCredentials { missing: Vec<&'static str> },
    /// The env file cannot be read (`line` 0) or has a malformed line.
    EnvFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// `--region` is neither a known region nor a bare domain.
    UnknownRegion(RegionError),
}

impl ConfigError {
    /// Returns the process exit code: 64 for a bad command line, 78 for a
    /// configuration error (the BSD `sysexits.h` codes `EX_USAGE` and `EX_CONFIG`).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Usage(_) => 64,
            ConfigError::Invalid { .. }
            | ConfigError::MissingCredentials { .. }
            | ConfigError::EnvFile { .. }
            | ConfigError::UnknownRegion(_) => 78,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Usage(message) => {
                write!(f, "{message} (run genesys-video-agent --help for usage)")
            }
            ConfigError::Invalid {
                name,
                value,
                reason,
            } => write!(f, "invalid value \"{value}\" for {name}: {reason}"),
            ConfigError::MissingCredentials { missing } => write!(
                f,
                "missing credentials: set {} in the environment or in the file given to --env-file",
                missing.join(" and ")
            ),
            ConfigError::EnvFile {
                path,
                line: 0,
                reason,
            } => {
                write!(f, "env file {}: {reason}", path.display())
            }
            ConfigError::EnvFile { path, line, reason } => {
                write!(f, "env file {}, line {line}: {reason}", path.display())
            }
            ConfigError::UnknownRegion(error) => {
                write!(f, "{error} (set by --region or GENESYS_REGION)")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses the command line (without the program name) against a snapshot of
/// the process environment, loads the `--env-file` file if one is given, and
/// checks every value.
///
/// `--help` and `--version` return [`Config::defaults`] without reading the
/// environment, so a bad variable cannot hide the help. Credentials are not
/// required here: [`Config::credentials`] checks them for the commands that
/// need them. Warnings (a plain-text URL to a remote host, an env file that
/// other users may read) go to the `log` crate.
pub fn parse<I>(args: I, env: &HashMap<String, String>) -> Result<(Command, Config), ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    let line = cli::split_command_line(args)?;
    if matches!(line.command, Command::Help | Command::Version) {
        return Ok((line.command, Config::defaults()));
    }
    let exit_on_stream_end = line.switches.contains(&cli::EXIT_ON_STREAM_END.flag);
    let command = line.command.clone();
    let sources = Sources::load(line, env)?;

    let mut config = build_config(&sources)?;
    config.exit_on_stream_end = exit_on_stream_end;
    Ok((command, config))
}

/// Returns the process environment for [`parse`]. Variables whose name or
/// value is not UTF-8 are skipped, where `std::env::vars` would panic.
pub fn process_env() -> HashMap<String, String> {
    let variables = std::env::vars_os();
    let utf8 = variables
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)));
    utf8.collect()
}

/// Builds the configuration: each setting from its flag, else its variable, else the default.
fn build_config(sources: &Sources) -> Result<Config, ConfigError> {
    let mut config = Config::defaults();
    config.client_id = sources.variable(CLIENT_ID_VAR);
    config.client_secret = sources.variable(CLIENT_SECRET_VAR).map(Secret::from);
    apply_endpoints(&mut config, sources)?;
    apply_paths(&mut config, sources)?;
    apply_pipeline(&mut config, sources)?;
    apply_retries(&mut config, sources)?;
    apply_extras(&mut config, sources)?;
    Ok(config)
}

/// Sets region, domain and the three URLs, which default to hosts of the domain.
fn apply_endpoints(config: &mut Config, sources: &Sources) -> Result<(), ConfigError> {
    if let Some(setting) = sources.setting(&cli::REGION)? {
        config.domain =
            region::resolve_domain(&setting.value).map_err(ConfigError::UnknownRegion)?;
        config.region = match region::canonical_name(&setting.value) {
            Some(name) => name.to_owned(),
            None => config.domain.clone(),
        };
    }
    let domain = config.domain.as_str();
    config.api_base = sources
        .url(&cli::API_BASE, UrlKind::HttpBase)?
        .unwrap_or_else(|| default_api_base(domain));
    config.login_base = sources
        .url(&cli::LOGIN_BASE, UrlKind::HttpBase)?
        .unwrap_or_else(|| default_login_base(domain));
    config.events_url = sources
        .url(&cli::EVENTS_URL, UrlKind::WebSocket)?
        .unwrap_or_else(|| default_events_url(domain));
    Ok(())
}

fn apply_paths(config: &mut Config, sources: &Sources) -> Result<(), ConfigError> {
    if let Some(path) = sources.path(&cli::AUDIT_LOG)? {
        config.audit_log = path;
    }
    if let Some(path) = sources.path(&cli::STATE_DIR)? {
        config.state_dir = path;
    }
    config.ca_file = sources.path(&cli::CA_FILE)?;
    config.calendar_exec = sources.path(&cli::CALENDAR_EXEC)?;
    Ok(())
}

fn apply_pipeline(config: &mut Config, sources: &Sources) -> Result<(), ConfigError> {
    if let Some(workers) = sources.parsed(&cli::WORKERS, |v| parse_count(v, WORKERS_RANGE))? {
        config.workers = workers;
    }
    let capacity = sources.parsed(&cli::QUEUE_CAPACITY, |v| {
        parse_count(v, QUEUE_CAPACITY_RANGE)
    })?;
    if let Some(capacity) = capacity {
        config.queue_capacity = capacity;
    }
    let ping = sources.parsed(&cli::PING_INTERVAL, |v| {
        parse_duration_in(v, PING_INTERVAL_RANGE, "from 100ms to 1h")
    })?;
    if let Some(ping) = ping {
        config.ping_interval = ping;
    }
    if let Some(profile) = sources.parsed(&cli::GATEWAY_PROFILE, parse_gateway_profile)? {
        config.gateway_profile = profile;
    }
    if let Some(states) = sources.parsed(&cli::STATES, parse_states)? {
        config.states = states;
    }
    Ok(())
}

fn apply_retries(config: &mut Config, sources: &Sources) -> Result<(), ConfigError> {
    let retries = sources.parsed(&cli::MAX_RETRIES, |v| parse_count(v, MAX_RETRIES_RANGE))?;
    if let Some(retries) = retries {
        config.max_retries = retries;
    }
    let longest = sources.parsed(&cli::MAX_RETRY_AFTER, |v| {
        parse_duration_in(v, MAX_RETRY_AFTER_RANGE, "of at most 24h")
    })?;
    if let Some(longest) = longest {
        config.max_retry_after = longest;
    }
    Ok(())
}

/// Sets the optional features: calendar webhook, metrics listener and run time.
fn apply_extras(config: &mut Config, sources: &Sources) -> Result<(), ConfigError> {
    config.calendar_webhook = sources.url(&cli::CALENDAR_WEBHOOK, UrlKind::Webhook)?;
    config.metrics_listen = sources.parsed(&cli::METRICS_LISTEN, parse_socket_address)?;
    config.run_for = sources.parsed(&cli::RUN_FOR, |v| {
        parse_duration_in(v, RUN_FOR_RANGE, "greater than 0 and at most 8760h")
    })?;
    Ok(())
}

/// Cuts `text` to [`MAX_SHOWN_CHARS`] characters for an error message.
fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN_CHARS {
        return text.to_owned();
    }
    let mut truncated: String = text.chars().take(MAX_SHOWN_CHARS).collect();
    truncated.push('…');
    truncated
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SECRET: &str = "hunter2-s3cret";

    type Args<'a> = &'a [&'a str];
    type EnvPairs<'a> = &'a [(&'a str, &'a str)];

    fn os_args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        pairs.collect()
    }

    fn parse_ok(args: &[&str], env: &[(&str, &str)]) -> (Command, Config) {
        parse(os_args(args), &env_of(env)).unwrap_or_else(|e| panic!("{args:?} {env:?}: {e}"))
    }

    fn parse_err(args: &[&str], env: &[(&str, &str)]) -> ConfigError {
        match parse(os_args(args), &env_of(env)) {
            Ok((command, config)) => panic!("{args:?} {env:?} gave {command:?} {config:?}"),
            Err(error) => error,
        }
    }

    fn env_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn path_text(file: &tempfile::NamedTempFile) -> String {
        file.path().to_str().unwrap().to_owned()
    }

    #[test]
    fn process_env_contains_path() {
        let env = process_env();
        assert_eq!(env.get("PATH"), std::env::var("PATH").ok().as_ref());
    }

    #[test]
    fn defaults_without_arguments() {
        let (command, config) = parse_ok(&[], &[]);
        assert_eq!(command, Command::Run);
        assert_eq!(format!("{config:?}"), format!("{:?}", Config::defaults()));
    }

    #[test]
    fn defaults_match_specification() {
        let config = Config::defaults();
        assert_eq!(config.region, "us-east-1");
        assert_eq!(
            region::resolve_domain(DEFAULT_REGION).unwrap(),
            config.domain
        );
        assert_eq!(config.api_base, "https://api.mypurecloud.com");
        assert_eq!(config.login_base, "https://login.mypurecloud.com");
        assert_eq!(
            config.events_url,
            "wss://api.mypurecloud.com/api/v2/analytics/events/subscribe"
        );
        assert_eq!(config.audit_log, PathBuf::from("audit.jsonl"));
        assert_eq!(config.state_dir, PathBuf::from("state"));
        assert_eq!(config.workers, 4);
        assert_eq!(config.queue_capacity, 200);
        assert_eq!(config.ping_interval, Duration::from_secs(30));
        assert_eq!(config.gateway_profile, GatewayProfile::Hd);
        assert_eq!(config.states, ["active", "updating", "recording"]);
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.max_retry_after, Duration::from_secs(120));
        assert!(config.calendar_webhook.is_none());
        assert!(config.calendar_exec.is_none());
        assert!(config.metrics_listen.is_none());
        assert!(config.ca_file.is_none());
        assert!(config.run_for.is_none());
        assert!(!config.exit_on_stream_end);
        assert!(config.client_id.is_none());
        assert!(config.client_secret.is_none());
    }

    fn assert_full_config(config: &Config) {
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.domain, "mypurecloud.ie");
        assert_eq!(config.api_base, "http://127.0.0.1:8080");
        assert_eq!(config.login_base, "http://127.0.0.1:8081/auth");
        assert_eq!(config.events_url, "ws://127.0.0.1:8082/events");
        assert_eq!(
            config.audit_log,
            PathBuf::from("/var/log/agent/audit.jsonl")
        );
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/agent"));

        assert_eq!(config.workers, 8);
        assert_eq!(config.queue_capacity, 500);
        assert_eq!(config.ping_interval, Duration::from_millis(1500));
        assert_eq!(config.gateway_profile, GatewayProfile::Standard);
        assert_eq!(config.states, ["active", "recording"]);
        assert_eq!(config.max_retries, 0);
        assert_eq!(config.max_retry_after, Duration::from_secs(3600));

        assert_eq!(
            config.calendar_webhook.as_deref(),
            Some("https://hooks.example.com/cal")
        );
        assert_eq!(
            config.calendar_exec,
            Some(PathBuf::from("/usr/local/bin/notify"))
        );
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9750".parse().unwrap())
        );
        assert_eq!(config.ca_file, Some(PathBuf::from("/etc/ssl/extra.pem")));
        assert_eq!(config.run_for, Some(Duration::from_secs(59)));
    }

    #[test]
    fn every_flag_is_parsed() {
        #[rustfmt::skip]
        let args = [
            "--region", "eu_west_1",
            "--api-base", "http://127.0.0.1:8080/",
            "--login-base", "http://127.0.0.1:8081/auth",
            "--events-url", "ws://127.0.0.1:8082/events",
            "--audit-log", "/var/log/agent/audit.jsonl",
            "--state-dir", "/var/lib/agent",
            "--workers", "8",
            "--queue-capacity", "500",
            "--ping-interval", "1.5",
            "--gateway-profile", "STANDARD",
            "--states", "active,recording",
            "--max-retries", "0",
            "--max-retry-after", "1h",
            "--calendar-webhook", "https://hooks.example.com/cal",
            "--calendar-exec", "/usr/local/bin/notify",
            "--metrics-listen", "127.0.0.1:9750",
            "--ca-file", "/etc/ssl/extra.pem",
            "--run-for", "59s",
            "--exit-on-stream-end",
        ];
        let (command, config) = parse_ok(&args, &[]);
        assert_eq!(command, Command::Run);
        assert_full_config(&config);
        assert!(config.exit_on_stream_end);
    }

    #[test]
    fn every_env_variable_is_parsed() {
        let env = [
            ("GENESYS_CLIENT_ID", "client-1"),
            ("GENESYS_CLIENT_SECRET", SECRET),
            ("GENESYS_REGION", "EU-WEST-1"),
            ("GENESYS_API_BASE", "http://127.0.0.1:8080"),
            ("GENESYS_LOGIN_BASE", "http://127.0.0.1:8081/auth/"),
            ("GENESYS_EVENTS_URL", "ws://127.0.0.1:8082/events"),
            ("AGENT_AUDIT_LOG", "/var/log/agent/audit.jsonl"),
            ("AGENT_STATE_DIR", "/var/lib/agent"),
            ("AGENT_WORKERS", "8"),
            ("AGENT_QUEUE_CAPACITY", "500"),
            ("AGENT_PING_INTERVAL", "1500ms"),
            ("AGENT_GATEWAY_PROFILE", "standard"),
            ("AGENT_STATES", "active, recording"),
            ("AGENT_MAX_RETRIES", "0"),
            ("AGENT_MAX_RETRY_AFTER", "60m"),
            ("AGENT_CALENDAR_WEBHOOK", "https://hooks.example.com/cal"),
            ("AGENT_CALENDAR_EXEC", "/usr/local/bin/notify"),
            ("AGENT_METRICS_LISTEN", "127.0.0.1:9750"),
            ("AGENT_CA_FILE", "/etc/ssl/extra.pem"),
            ("AGENT_RUN_FOR", "59"),
        ];
        let (_, config) = parse_ok(&[], &env);
        assert_full_config(&config);
        assert!(!config.exit_on_stream_end);
        let (id, secret) = config.credentials().unwrap();
        assert_eq!(id, "client-1");
        assert_eq!(secret.expose(), SECRET);
    }

    #[test]
    fn equals_form_is_accepted() {
        let args = [
            "--workers=8",
            "--region=eu_west_1",
            "--ping-interval=500ms",
            "--states=active",
            "--audit-log=-odd-name",
        ];
        let (_, config) = parse_ok(&args, &[]);
        assert_eq!(config.workers, 8);
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.ping_interval, Duration::from_millis(500));
        assert_eq!(config.states, ["active"]);
        assert_eq!(config.audit_log, PathBuf::from("-odd-name"));
    }

    #[test]
    fn repeated_flag_keeps_last_value() {
        let (_, config) = parse_ok(&["--workers", "2", "--workers", "3"], &[]);
        assert_eq!(config.workers, 3);
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let file = env_file("AGENT_WORKERS=5\n");
        let file_flag = path_text(&file);
        let with_file = ["--env-file", file_flag.as_str()];
        let with_file_and_flag = ["--env-file", file_flag.as_str(), "--workers", "8"];
        let env = [("AGENT_WORKERS", "6")];
        let cases: [(Args, EnvPairs, usize); 6] = [
            (&[], &[], 4),
            (&with_file, &[], 5),
            (&with_file, &env, 6),
            (&with_file_and_flag, &env, 8),
            (&["--workers", "8"], &env, 8),
            (&[], &env, 6),
        ];
        for (args, env, expected) in cases {
            let (_, config) = parse_ok(args, env);
            assert_eq!(config.workers, expected, "{args:?} {env:?}");
        }
    }

    #[test]
    fn flags_come_before_or_after_subcommand() {
        let orders: [&[&str]; 3] = [
            &["--workers", "2", "check"],
            &["check", "--workers", "2"],
            &["--workers=2", "check"],
        ];
        for args in orders {
            let (command, config) = parse_ok(args, &[]);
            assert_eq!(command, Command::Check, "{args:?}");
            assert_eq!(config.workers, 2, "{args:?}");
        }
    }

    #[test]
    fn subcommands_are_parsed() {
        let cases: [(&[&str], Command); 9] = [
            (&[], Command::Run),
            (&["run"], Command::Run),
            (&["check"], Command::Check),
            (&["validate"], Command::Validate { input: None }),
            (&["validate", "-"], Command::Validate { input: None }),
            (
                &["validate", "events.jsonl"],
                Command::Validate {
                    input: Some("events.jsonl".into()),
                },
            ),
            (
                &["validate", "--", "-events.jsonl"],
                Command::Validate {
                    input: Some("-events.jsonl".into()),
                },
            ),
            (
                &["replay", "state/dead-letter.jsonl"],
                Command::Replay {
                    file: "state/dead-letter.jsonl".into(),
                },
            ),
            (
                &["--workers", "2", "replay", "dl.jsonl", "--run-for", "5s"],
                Command::Replay {
                    file: "dl.jsonl".into(),
                },
            ),
        ];
        for (args, expected) in cases {
            let (command, _) = parse_ok(args, &[]);
            assert_eq!(command, expected, "{args:?}");
        }
    }

    #[test]
    fn help_and_version_ignore_bad_environment() {
        let bad_env = [("AGENT_WORKERS", "many"), ("GENESYS_REGION", "mars-1")];
        let cases: [(&[&str], Command); 6] = [
            (&["--help"], Command::Help),
            (&["-h"], Command::Help),
            (&["check", "--help"], Command::Help),
            (&["--version"], Command::Version),
            (&["-V"], Command::Version),
            (&["--workers", "1", "-V"], Command::Version),
        ];
        for (args, expected) in cases {
            let (command, _) = parse_ok(args, &bad_env);
            assert_eq!(command, expected, "{args:?}");
        }
    }

    #[test]
    fn usage_errors_exit_64_and_point_to_help() {
        let cases: [(&[&str], &str); 13] = [
            (&["--bogus"], "unknown option --bogus"),
            (&["--bogus=1"], "unknown option --bogus"),
            (&["-x"], "unknown option -x"),
            (&["--workers"], "missing value for --workers"),
            (
                &["--region", "--workers", "2"],
                "missing value for --region",
            ),
            (&["--workers", "--"], "missing value for --workers"),
            (
                &["--exit-on-stream-end=yes"],
                "--exit-on-stream-end does not take a value",
            ),
            (&["frobnicate"], "unknown subcommand \"frobnicate\""),
            (&["run", "extra"], "unexpected argument \"extra\" after run"),
            (
                &["check", "extra"],
                "unexpected argument \"extra\" after check",
            ),
            (
                &["validate", "a", "b"],
                "unexpected argument \"b\" after validate",
            ),
            (&["replay"], "missing FILE argument for replay"),
            (
                &["replay", "a", "b"],
                "unexpected argument \"b\" after replay",
            ),
        ];
        for (args, expected) in cases {
            let error = parse_err(args, &[]);
            let message = error.to_string();
            assert_eq!(error.exit_code(), 64, "{args:?}: {message}");
            assert!(message.contains(expected), "{args:?}: {message}");
            assert!(message.contains("--help"), "{args:?}: {message}");
        }
    }

    #[test]
    fn credential_flags_point_to_environment() {
        for flag in ["--client-id", "--client-secret"] {
            let message = parse_err(&[flag, SECRET], &[]).to_string();
            assert!(message.contains(CLIENT_ID_VAR), "{message}");
            assert!(message.contains(CLIENT_SECRET_VAR), "{message}");
            let message = parse_err(&[&format!("{flag}={SECRET}")], &[]).to_string();
            assert!(!message.contains(SECRET), "{message}");
        }
    }

    /// (flag, variable, bad value, expected part of the reason)
    const INVALID_VALUES: &[(&str, &str, &str, &str)] = &[
        (
            "--api-base",
            "GENESYS_API_BASE",
            "api.example.com",
            "missing scheme",
        ),
        (
            "--api-base",
            "GENESYS_API_BASE",
            "wss://api.example.com",
            "expected a https://",
        ),
        (
            "--login-base",
            "GENESYS_LOGIN_BASE",
            "https://a:b@x.com",
            "credentials",
        ),
        (
            "--login-base",
            "GENESYS_LOGIN_BASE",
            "https://x.com/a b",
            "whitespace",
        ),
        (
            "--events-url",
            "GENESYS_EVENTS_URL",
            "https://x.com/events",
            "expected a wss://",
        ),
        ("--workers", "AGENT_WORKERS", "0", "from 1 to 64"),
        ("--workers", "AGENT_WORKERS", "65", "from 1 to 64"),
        ("--workers", "AGENT_WORKERS", "four", "whole number"),
        ("--workers", "AGENT_WORKERS", "-1", "whole number"),
        (
            "--queue-capacity",
            "AGENT_QUEUE_CAPACITY",
            "0",
            "from 1 to 1000000",
        ),
        (
            "--queue-capacity",
            "AGENT_QUEUE_CAPACITY",
            "1000001",
            "from 1 to 1000000",
        ),
        (
            "--ping-interval",
            "AGENT_PING_INTERVAL",
            "99ms",
            "from 100ms to 1h",
        ),
        (
            "--ping-interval",
            "AGENT_PING_INTERVAL",
            "61m",
            "from 100ms to 1h",
        ),
        (
            "--ping-interval",
            "AGENT_PING_INTERVAL",
            "5d",
            "unknown unit",
        ),
        (
            "--gateway-profile",
            "AGENT_GATEWAY_PROFILE",
            "4k",
            "hd or standard",
        ),
        (
            "--states",
            "AGENT_STATES",
            "active,,recording",
            "comma-separated",
        ),
        ("--states", "AGENT_STATES", "Active", "lower-case"),
        ("--states", "AGENT_STATES", ",", "comma-separated"),
        ("--max-retries", "AGENT_MAX_RETRIES", "21", "from 0 to 20"),
        (
            "--max-retry-after",
            "AGENT_MAX_RETRY_AFTER",
            "25h",
            "at most 24h",
        ),
        (
            "--max-retry-after",
            "AGENT_MAX_RETRY_AFTER",
            "-1s",
            "negative",
        ),
        (
            "--calendar-webhook",
            "AGENT_CALENDAR_WEBHOOK",
            "ftp://x.com",
            "https://",
        ),
        (
            "--metrics-listen",
            "AGENT_METRICS_LISTEN",
            "localhost:9750",
            "127.0.0.1:9750",
        ),
        (
            "--metrics-listen",
            "AGENT_METRICS_LISTEN",
            "9750",
            "IP address and port",
        ),
        ("--run-for", "AGENT_RUN_FOR", "0", "greater than 0"),
        ("--run-for", "AGENT_RUN_FOR", "8761h", "at most 8760h"),
        ("--run-for", "AGENT_RUN_FOR", "", "empty duration"),
    ];

    #[test]
    fn invalid_flag_values_exit_78_naming_flag() {
        for (flag, _, value, reason) in INVALID_VALUES {
            let error = parse_err(&[flag, value], &[]);
            let message = error.to_string();
            assert_eq!(error.exit_code(), 78, "{flag} {value:?}: {message}");
            assert!(matches!(error, ConfigError::Invalid { .. }), "{error:?}");
            assert!(message.contains(flag), "{message}");
            assert!(message.contains(reason), "{flag} {value:?}: {message}");
        }
    }

    #[test]
    fn invalid_env_values_exit_78_naming_variable() {
        for (_, variable, value, reason) in INVALID_VALUES {
            if value.is_empty() {
                continue; // an empty variable counts as unset
            }
            let error = parse_err(&[], &[(variable, value)]);
            let message = error.to_string();
            assert_eq!(error.exit_code(), 78, "{variable}={value:?}: {message}");
            assert!(message.contains(variable), "{message}");
            assert!(message.contains(reason), "{variable}={value:?}: {message}");
        }
    }

    #[test]
    fn empty_path_flag_is_invalid() {
        for flag in ["--audit-log", "--state-dir", "--ca-file", "--calendar-exec"] {
            let error = parse_err(&[flag, ""], &[]);
            assert_eq!(error.exit_code(), 78, "{flag}");
            assert!(error.to_string().contains(flag), "{error}");
        }
    }

    #[test]
    fn unknown_region_exits_78_with_names() {
        for (args, env) in [
            (&["--region", "mars-1"][..], &[][..]),
            (&[][..], &[("GENESYS_REGION", "mars-1")][..]),
        ] {
            let error = parse_err(args, env);
            let message = error.to_string();
            assert_eq!(error.exit_code(), 78);
            assert!(matches!(error, ConfigError::UnknownRegion(_)), "{error:?}");
            assert!(message.contains("mars-1"), "{message}");
            assert!(message.contains("eu-west-1"), "{message}");
            assert!(message.contains("--region"), "{message}");
        }
    }

    #[test]
    fn region_sets_domain_and_default_urls() {
        let (_, config) = parse_ok(&["--region", "ap_southeast_2"], &[]);
        assert_eq!(config.region, "ap-southeast-2");
        assert_eq!(config.domain, "mypurecloud.com.au");
        assert_eq!(config.api_base, "https://api.mypurecloud.com.au");
        assert_eq!(config.login_base, "https://login.mypurecloud.com.au");
        assert_eq!(
            config.events_url,
            "wss://api.mypurecloud.com.au/api/v2/analytics/events/subscribe"
        );
    }

    #[test]
    fn bare_domain_is_its_own_region() {
        let (_, config) = parse_ok(&["--region", "Example.Pure.Cloud"], &[]);
        assert_eq!(config.region, "example.pure.cloud");
        assert_eq!(config.domain, "example.pure.cloud");
        assert_eq!(config.api_base, "https://api.example.pure.cloud");
    }

    #[test]
    fn url_override_keeps_other_defaults() {
        let args = [
            "--region",
            "eu-central-1",
            "--api-base",
            "https://proxy.example.com//",
        ];
        let (_, config) = parse_ok(&args, &[]);
        assert_eq!(config.api_base, "https://proxy.example.com");
        assert_eq!(config.login_base, "https://login.mypurecloud.de");
    }

    #[test]
    fn empty_env_value_counts_as_unset() {
        let env = [("AGENT_WORKERS", ""), ("GENESYS_CLIENT_ID", "")];
        let (_, config) = parse_ok(&[], &env);
        assert_eq!(config.workers, 4);
        assert!(config.client_id.is_none());
    }

    #[test]
    fn states_are_trimmed_and_deduplicated() {
        let (_, config) = parse_ok(&["--states", " active , recording,active "], &[]);
        assert_eq!(config.states, ["active", "recording"]);
        let (_, config) = parse_ok(&["--states", "on_hold"], &[]);
        assert_eq!(config.states, ["on_hold"]);
    }

    #[test]
    fn gateway_profiles_have_ceilings() {
        assert_eq!(GatewayProfile::Hd.max_bitrate_kbps(), 8000);
        assert_eq!(GatewayProfile::Standard.max_bitrate_kbps(), 4000);
        for profile in [GatewayProfile::Hd, GatewayProfile::Standard] {
            assert_eq!(GatewayProfile::from_name(profile.name()), Some(profile));
        }
        let (_, config) = parse_ok(&["--gateway-profile", "Hd"], &[]);
        assert_eq!(config.gateway_profile, GatewayProfile::Hd);
    }

    #[test]
    fn metrics_listen_accepts_ipv6_and_port_zero() {
        let (_, config) = parse_ok(&["--metrics-listen", "[::1]:0"], &[]);
        assert_eq!(config.metrics_listen, Some("[::1]:0".parse().unwrap()));
    }

    #[test]
    fn limits_are_inclusive() {
        let args = [
            "--workers=64",
            "--queue-capacity=1000000",
            "--ping-interval=100ms",
            "--max-retries=20",
            "--max-retry-after=24h",
            "--run-for=8760h",
        ];
        let (_, config) = parse_ok(&args, &[]);
        assert_eq!(config.workers, 64);
        assert_eq!(config.queue_capacity, 1_000_000);
        assert_eq!(config.ping_interval, Duration::from_millis(100));
        assert_eq!(config.max_retries, 20);
        assert_eq!(config.max_retry_after, Duration::from_secs(86_400));
        assert_eq!(config.run_for, Some(Duration::from_secs(8760 * 3600)));
        let (_, config) = parse_ok(&["--ping-interval=1h", "--max-retry-after=0"], &[]);
        assert_eq!(config.ping_interval, Duration::from_secs(3600));
        assert_eq!(config.max_retry_after, Duration::ZERO);
    }

    #[test]
    fn missing_credentials_name_both_variables() {
        let config = Config::defaults();
        let error = config.credentials().unwrap_err();
        let message = error.to_string();
        assert_eq!(error.exit_code(), 78);
        assert!(message.contains(CLIENT_ID_VAR), "{message}");
        assert!(message.contains(CLIENT_SECRET_VAR), "{message}");
        assert!(message.contains("--env-file"), "{message}");
    }

    #[test]
    fn missing_credentials_name_only_missing_one() {
        let cases = [
            (Some("id"), None, vec![CLIENT_SECRET_VAR]),
            (None, Some(SECRET), vec![CLIENT_ID_VAR]),
            (Some(""), Some(""), vec![CLIENT_ID_VAR, CLIENT_SECRET_VAR]),
        ];
        for (id, secret, missing) in cases {
            let mut config = Config::defaults();
            config.client_id = id.map(str::to_owned);
            config.client_secret = secret.map(Secret::new);
            let expected = ConfigError::MissingCredentials { missing };
            assert_eq!(config.credentials().unwrap_err(), expected);
        }
    }

    #[test]
    fn secret_never_in_debug_or_errors() {
        let env = [
            ("GENESYS_CLIENT_ID", "id"),
            ("GENESYS_CLIENT_SECRET", SECRET),
        ];
        let (_, config) = parse_ok(&[], &env);
        assert!(!format!("{config:?}").contains(SECRET));
        assert!(format!("{config:?}").contains("***"));

        let secret_url = format!("https://user:{SECRET}@x.com");
        let bad_file = env_file(&format!("GENESYS_CLIENT_SECRET {SECRET}\n"));
        let bad_file_path = path_text(&bad_file);
        let failures: [(Args, Vec<(&str, &str)>); 4] = [
            (&["--api-base", &secret_url], env.to_vec()),
            (&[], vec![("GENESYS_EVENTS_URL", &secret_url)]),
            (&["--env-file", &bad_file_path], vec![]),
            (&["--workers", "x"], env.to_vec()),
        ];
        for (args, env) in failures {
            let error = parse_err(args, &env);
            assert!(!error.to_string().contains(SECRET), "{error}");
            assert!(!format!("{error:?}").contains(SECRET), "{error:?}");
        }
    }

    #[test]
    fn env_file_values_are_loaded() {
        let file = env_file(
            "# agent settings\n\
             \n\
             export GENESYS_CLIENT_ID=\"client-1\"\n\
             GENESYS_CLIENT_SECRET='s3cret # not a comment'\n\
             GENESYS_REGION=eu-west-1 # Ireland\n\
             AGENT_STATES=active\n",
        );
        let (_, config) = parse_ok(&["--env-file", &path_text(&file)], &[]);
        let (id, secret) = config.credentials().unwrap();
        assert_eq!(id, "client-1");
        assert_eq!(secret.expose(), "s3cret # not a comment");
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.states, ["active"]);
    }

    #[test]
    fn process_env_wins_over_env_file() {
        let file = env_file("GENESYS_REGION=eu-west-1\nGENESYS_CLIENT_ID=from-file\n");
        let env = [
            ("GENESYS_REGION", "eu-central-1"),
            ("GENESYS_CLIENT_ID", ""),
        ];
        let (_, config) = parse_ok(&["--env-file", &path_text(&file)], &env);
        assert_eq!(config.region, "eu-central-1");
        assert_eq!(config.client_id.as_deref(), Some("from-file"));
    }

    #[test]
    fn env_file_errors_exit_78_with_line() {
        let file = env_file("A=1\n\nthis line is broken\n");
        let error = parse_err(&["--env-file", &path_text(&file)], &[]);
        assert_eq!(error.exit_code(), 78);
        let ConfigError::EnvFile { line, .. } = &error else {
            panic!("unexpected error {error:?}");
        };
        assert_eq!(*line, 3);
        assert!(error.to_string().contains("line 3"), "{error}");

        let directory = tempfile::tempdir().unwrap();
        let absent = directory.path().join("absent.env");
        let error = parse_err(&["--env-file", absent.to_str().unwrap()], &[]);
        assert_eq!(error.exit_code(), 78);
        assert!(error.to_string().contains("absent.env"), "{error}");
    }

    #[test]
    fn env_file_is_not_an_env_variable() {
        let file = env_file("AGENT_WORKERS=9\n");
        let env = [("AGENT_ENV_FILE", path_text(&file))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, config) = parse_ok(&[], &env);
        assert_eq!(config.workers, 4);
    }

    #[test]
    fn exit_codes_by_variant() {
        let cases = [
            (ConfigError::Usage("x".into()), 64),
            (
                ConfigError::Invalid {
                    name: "--workers".into(),
                    value: "x".into(),
                    reason: "y".into(),
                },
                78,
            ),
            (
                ConfigError::MissingCredentials {
                    missing: vec![CLIENT_ID_VAR],
                },
                78,
            ),
            (
                ConfigError::EnvFile {
                    path: "a".into(),
                    line: 1,
                    reason: "y".into(),
                },
                78,
            ),
            (
                ConfigError::UnknownRegion(RegionError::Unknown { value: "x".into() }),
                78,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let value = format!("{}s", "9".repeat(400));
        let error = parse_err(&["--run-for", &value], &[]);
        let ConfigError::Invalid {
            value: truncated, ..
        } = &error
        else {
            panic!("unexpected error {error:?}");
        };
        assert_eq!(truncated.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(truncated.ends_with('…'));
    }

    #[test]
    fn non_utf8_flag_value_is_invalid() {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let bad = OsString::from_vec(vec![b'4', 0xff]);
            let args = vec![OsString::from("--workers"), bad];
            let error = parse(args, &HashMap::new()).unwrap_err();
            assert_eq!(error.exit_code(), 78);
            assert!(error.to_string().contains("UTF-8"), "{error}");

            let path = OsString::from_vec(vec![b'a', 0xff]);
            let args = vec![OsString::from("--audit-log"), path.clone()];
            let (_, config) = parse(args, &HashMap::new()).unwrap();
            assert_eq!(config.audit_log, PathBuf::from(path));
        }
    }
}

//! The command-line options table and the split of the arguments into a
//! subcommand and raw option values.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::Arg;

use super::{Command, ConfigError, shorten};

/// One command-line option and the environment variable it falls back to.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OptionSpec {
    /// Long flag without the leading `--`.
    pub flag: &'static str,
    /// Environment variable, if the option has one.
    pub env: Option<&'static str>,
    /// Placeholder of the value in the help text, `None` for a switch.
    pub value_name: Option<&'static str>,
    /// Help text: what the option sets, its unit, range and default.
    pub help: &'static str,
}

impl OptionSpec {
    const fn valued(flag: &'static str, env: &'static str, value_name: &'static str) -> Self {
        OptionSpec {
            flag,
            env: Some(env),
            value_name: Some(value_name),
            help: "",
        }
    }

    const fn help(self, help: &'static str) -> Self {
        OptionSpec { help, ..self }
    }
}

pub(super) const ENV_FILE: OptionSpec = OptionSpec {
    flag: "env-file",
    env: None,
    value_name: Some("PATH"),
    help: "load KEY=VALUE lines from PATH before reading the environment. \
           Variables already set in the environment win over the file. \
           The file holds the secret, so keep its mode at 600",
};
pub(super) const REGION: OptionSpec = OptionSpec::valued("region", "GENESYS_REGION", "NAME")
    .help("region name (listed below) or a bare domain such as mypurecloud.ie; default us-east-1");
pub(super) const API_BASE: OptionSpec = OptionSpec::valued("api-base", "GENESYS_API_BASE", "URL")
    .help("REST base URL; default https://api.<domain>");
pub(super) const LOGIN_BASE: OptionSpec =
    OptionSpec::valued("login-base", "GENESYS_LOGIN_BASE", "URL")
        .help("OAuth base URL; default https://login.<domain>");
pub(super) const EVENTS_URL: OptionSpec =
    OptionSpec::valued("events-url", "GENESYS_EVENTS_URL", "URL")
        .help("event stream URL; default wss://api.<domain>/api/v2/analytics/events/subscribe");
pub(super) const AUDIT_LOG: OptionSpec = OptionSpec::valued("audit-log", "AGENT_AUDIT_LOG", "PATH")
    .help("audit file, one JSON object per line, appended; default audit.jsonl");
pub(super) const STATE_DIR: OptionSpec = OptionSpec::valued("state-dir", "AGENT_STATE_DIR", "PATH")
    .help("directory for per-session memory, the lock file and dead letters; default state");
pub(super) const WORKERS: OptionSpec =
    OptionSpec::valued("workers", "AGENT_WORKERS", "N").help("worker threads, 1 to 64; default 4");
pub(super) const QUEUE_CAPACITY: OptionSpec =
    OptionSpec::valued("queue-capacity", "AGENT_QUEUE_CAPACITY", "N").help(
        "number of pending states that counts as 100 % utilization, 1 to 1000000; default 200",
    );
pub(super) const PING_INTERVAL: OptionSpec =
    OptionSpec::valued("ping-interval", "AGENT_PING_INTERVAL", "DURATION")
        .help("WebSocket ping period, 100ms to 1h; default 30s");
pub(super) const GATEWAY_PROFILE: OptionSpec =
    OptionSpec::valued("gateway-profile", "AGENT_GATEWAY_PROFILE", "NAME")
        .help("hd (8000 kbps bitrate ceiling) or standard (4000 kbps); default hd");
pub(super) const STATES: OptionSpec = OptionSpec::valued("states", "AGENT_STATES", "LIST").help(
    "comma-separated session states to subscribe to, each of a-z and _; \
     default active,updating,recording",
);
pub(super) const MAX_RETRIES: OptionSpec =
    OptionSpec::valued("max-retries", "AGENT_MAX_RETRIES", "N").help(
        "retries after the first attempt on 429, 5xx and transport errors, 0 to 20; default 3",
    );
pub(super) const MAX_RETRY_AFTER: OptionSpec =
    OptionSpec::valued("max-retry-after", "AGENT_MAX_RETRY_AFTER", "DURATION").help(
        "maximum Retry-After to wait for; a longer one gives the state up at once. \
         At most 24h; default 120s",
    );
pub(super) const CALENDAR_WEBHOOK: OptionSpec =
    OptionSpec::valued("calendar-webhook", "AGENT_CALENDAR_WEBHOOK", "URL")
        .help("http(s) URL that receives a JSON POST per calendar notice; default none");
pub(super) const CALENDAR_EXEC: OptionSpec =
    OptionSpec::valued("calendar-exec", "AGENT_CALENDAR_EXEC", "PATH").help(
        "program run per calendar notice, without a shell, with SESSION_ID, \
         DIRECTIVE and TIMESTAMP in its environment; default none",
    );
pub(super) const METRICS_LISTEN: OptionSpec =
    OptionSpec::valued("metrics-listen", "AGENT_METRICS_LISTEN", "ADDR").help(
        "address and port for /metrics and /healthz, such as 127.0.0.1:9750; \
         default none (no listener)",
    );
pub(super) const CA_FILE: OptionSpec = OptionSpec::valued("ca-file", "AGENT_CA_FILE", "PATH")
    .help("extra PEM root certificates to trust; default none");
pub(super) const RUN_FOR: OptionSpec = OptionSpec::valued("run-for", "AGENT_RUN_FOR", "DURATION")
    .help("stop cleanly after this long, at most 8760h (for cron windows); default none");
pub(super) const EXIT_ON_STREAM_END: OptionSpec = OptionSpec {
    flag: "exit-on-stream-end",
    env: None,
    value_name: None,
    help: "stop cleanly, after draining, when the server closes the stream normally \
           (batch runs and benchmarks)",
};

/// Every option, in help-text order.
pub(super) const OPTIONS: &[&OptionSpec] = &[
    &ENV_FILE,
    &REGION,
    &API_BASE,
    &LOGIN_BASE,
    &EVENTS_URL,
    &AUDIT_LOG,
    &STATE_DIR,
    &WORKERS,
    &QUEUE_CAPACITY,
    &PING_INTERVAL,
    &GATEWAY_PROFILE,
    &STATES,
    &MAX_RETRIES,
    &MAX_RETRY_AFTER,
    &CALENDAR_WEBHOOK,
    &CALENDAR_EXEC,
    &METRICS_LISTEN,
    &CA_FILE,
    &RUN_FOR,
    &EXIT_ON_STREAM_END,
];

/// The command line split into its parts, before any value is checked.
#[derive(Debug, Default)]
pub(super) struct CommandLine {
    pub command: Command,
    /// Values of valued options by flag name. A repeated option keeps its last value.
    pub values: HashMap<&'static str, OsString>,
    /// Switches given, by flag name.
    pub switches: Vec<&'static str>,
}

/// Splits the arguments (without the program name) into a subcommand and
/// option values. Options may come before or after the subcommand, as
/// `--flag value` or `--flag=value`. `--help` and `--version` end the scan.
pub(super) fn split_command_line<I>(args: I) -> Result<CommandLine, ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut parser = lexopt::Parser::from_args(args);
    let mut line = CommandLine::default();
    let mut positionals = Vec::new();
    while let Some(arg) = parser.next().map_err(usage_error)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(early_exit(Command::Help)),
            Arg::Short('V') | Arg::Long("version") => return Ok(early_exit(Command::Version)),
            Arg::Short(letter) => return Err(unknown_option(&format!("-{letter}"))),
            Arg::Long(flag) => {
                let flag = flag.to_owned();
                read_option(&mut parser, &flag, &mut line)?;
            }
            Arg::Value(value) => positionals.push(value),
        }
    }
    line.command = parse_subcommand(positionals)?;
    Ok(line)
}

fn early_exit(command: Command) -> CommandLine {
    CommandLine {
        command,
        ..CommandLine::default()
    }
}

fn read_option(
    parser: &mut lexopt::Parser,
    flag: &str,
    line: &mut CommandLine,
) -> Result<(), ConfigError> {
    let spec = OPTIONS
        .iter()
        .find(|spec| spec.flag == flag)
        .ok_or_else(|| unknown_option(&format!("--{flag}")))?;
    if spec.value_name.is_none() {
        line.switches.push(spec.flag);
        return Ok(());
    }
    let value = read_value(parser, flag)?;
    line.values.insert(spec.flag, value);
    Ok(())
}

/// Reads the value of `--flag`. A separate value that starts with `--` is
/// taken for the next option, so `--region --workers 2` reports the missing
/// region instead of a region named `--workers`. `--flag=--x` still works.
fn read_value(parser: &mut lexopt::Parser, flag: &str) -> Result<OsString, ConfigError> {
    if let Some(value) = parser.optional_value() {
        return Ok(value);
    }
    let missing = || ConfigError::Usage(format!("missing value for --{flag}"));
    let mut rest = parser.raw_args().map_err(|_| missing())?;
    rest.next_if(|next| !next.as_encoded_bytes().starts_with(b"--"))
        .ok_or_else(missing)
}

fn unknown_option(option: &str) -> ConfigError {
    let truncated = shorten(option);
    let message = match option {
        "--client-id" | "--client-secret" => format!(
            "unknown option {truncated}: the client id and secret are read only from \
             GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET"
        ),
        _ => format!("unknown option {truncated}"),
    };
    ConfigError::Usage(message)
}

/// Maps lexopt errors without repeating an option's value, which could be a
/// secret typed in the wrong place.
fn usage_error(error: lexopt::Error) -> ConfigError {
    let message = match error {
        lexopt::Error::UnexpectedValue { option, .. } => format!("{option} does not take a value"),
        lexopt::Error::MissingValue {
            option: Some(option),
        } => format!("missing value for {option}"),
        lexopt::Error::UnexpectedOption(option) => format!("unknown option {}", shorten(&option)),
        other => shorten(&other.to_string()),
    };
    ConfigError::Usage(message)
}

fn parse_subcommand(positionals: Vec<OsString>) -> Result<Command, ConfigError> {
    let mut words = positionals.into_iter();
    let Some(first) = words.next() else {
        return Ok(Command::Run);
    };
    let command = match first.to_str() {
        Some("run") => Command::Run,
        Some("check") => Command::Check,
        Some("validate") => Command::Validate {
            input: words.next().filter(|word| word != "-").map(PathBuf::from),
        },
        Some("replay") => Command::Replay {
            file: words.next().map(PathBuf::from).ok_or_else(|| {
                ConfigError::Usage(
                    "missing FILE argument for replay (the dead-letter file)".to_owned(),
                )
            })?,
        },
        _ => {
            let truncated = shorten(&first.to_string_lossy());
            let message = format!(
                "unknown subcommand \"{truncated}\", expected run, check, validate or replay"
            );
            return Err(ConfigError::Usage(message));
        }
    };
    reject_extra_argument(words.next(), &first)?;
    Ok(command)
}

fn reject_extra_argument(
    extra: Option<OsString>,
    subcommand: &OsString,
) -> Result<(), ConfigError> {
    let Some(extra) = extra else {
        return Ok(());
    };
    let message = format!(
        "unexpected argument \"{}\" after {}",
        shorten(&extra.to_string_lossy()),
        subcommand.to_string_lossy()
    );
    Err(ConfigError::Usage(message))
}

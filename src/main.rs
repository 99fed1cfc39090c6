//! The `genesys-video-agent` command: parse the command line, set up
//! logging and signals, run the chosen subcommand, and map its result to an
//! exit code. Everything else lives in the library.

use std::process::ExitCode;

use genesys_video_agent::config::{self, Command, Config};
use genesys_video_agent::{Agent, RunSummary, Shutdown, audit::ReopenSignal, signals, subcommand};

fn main() -> ExitCode {
    init_logging();
    let env = config::process_env();

    let (command, config) = match config::parse(std::env::args_os().skip(1), &env) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("genesys-video-agent: {err}");
            return exit(err.exit_code());
        }
    };

    match command {
        Command::Help => {
            print!("{}", config::help_text());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("genesys-video-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run => run(config),
        Command::Check => exit(subcommand::check(&config)),
        Command::Validate { input } => exit(subcommand::validate(input.as_deref(), &config)),
        Command::Replay { file } => exit(subcommand::replay(&file, config)),
    }
}

/// Crates whose debug or trace output would print request headers, and
/// so the bearer token: tungstenite dumps the handshake request at trace
/// level. They are held at info whatever RUST_LOG says.
const CHATTY_CRATES: [&str; 4] = ["tungstenite", "ureq", "ureq_proto", "native_tls"];

fn init_logging() {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder.format_timestamp_millis();
    for name in CHATTY_CRATES {
        builder.filter_module(name, log::LevelFilter::Info);
    }
    builder.init();
}

fn run(config: Config) -> ExitCode {
    let shutdown = Shutdown::new();
    let reopen = ReopenSignal::new();
    if let Err(err) = signals::install(&shutdown, &reopen) {
        eprintln!("genesys-video-agent: cannot install signal handlers: {err}");
        return exit(70);
    }

    match Agent::new(config).audit_reopen(reopen).run(shutdown) {
        Ok(summary) => {
            print_summary(&summary);
            ExitCode::SUCCESS
        }
        Err(err) => {
            if err.exit_code() != 0 {
                eprintln!("genesys-video-agent: {err}");
            }
            exit(err.exit_code())
        }
    }
}

fn print_summary(summary: &RunSummary) {
    eprintln!("audit entries by event:");
    for (event, count) in &summary.audit.per_event {
        eprintln!("  {:<22} {count}", event.as_str());
    }
    if summary.audit.dropped > 0 {
        eprintln!("  (not written: {})", summary.audit.dropped);
    }
    eprintln!("audit file: {}", summary.audit_path.display());
    eprintln!("total audit entries: {}", summary.audit.written);
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(70))
}

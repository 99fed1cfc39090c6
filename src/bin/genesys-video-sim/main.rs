//! `genesys-video-sim`: serves the Genesys Cloud OAuth, video conference REST
//! and event stream endpoints on loopback, with fault injection, so the agent
//! can run and be tested without an account.
//!
//! It shares no code with the agent's library. It parses what the agent sends
//! and builds its replies on its own, so a bug on one side cannot hide the
//! same bug on the other.

mod conferences;
mod connection;
mod control;
mod faults;
mod feed;
mod http;
mod http1;
mod http_server;
mod inbound;
mod load;
mod oauth;
mod options;
mod outgoing;
mod put_body;
mod ratelimit;
mod registry;
mod requests;
mod rest;
mod rng;
mod script;
mod state;
mod stats;
mod stream;
mod subscription;
mod tokens;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, after, bounded, never, select};
use log::{error, info, warn};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::feed::Feed;
use crate::http_server::{ApiHandle, ApiServer};
use crate::options::{Command, Options, SourceSpec};
use crate::state::{Settings, Sim};

/// Maximum wait on stop for stream connections to send their close frames.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Exit status for an invalid command line (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// Exit status when the script cannot be read or parsed, or a listener cannot be bound.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let options = match options::parse_args() {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{}", options::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("genesys-video-sim {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("genesys-video-sim: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(*options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(options: Options) -> Result<(), String> {
    let feed = build_feed(&options.source)?;
    let (server, events) = bind(&options)?;
    let api_address = server.local_addr();
    let events_address = events
        .local_addr()
        .map_err(|e| format!("reading the events listener address failed: {e}"))?;

    let (stop_sender, stopping) = bounded::<()>(0);
    let (connection_token, connections_gone) = bounded::<()>(0);
    let seed = match &options.source {
        SourceSpec::Load(spec) => spec.seed,
        _ => 1,
    };
    let settings = Settings {
        client_id: options.client_id,
        client_secret: options.client_secret,
        rate: options.rate,
        heartbeat_interval: options.heartbeat_interval,
        on_end: options.on_end,
    };
    let sim = Sim::new(
        settings,
        options.faults,
        feed,
        seed,
        stopping,
        connection_token,
    );
    let sim = Arc::new(sim);
    let (api, signals) = start_threads(&sim, server, events)?;

    announce(api_address, events_address);
    wait_for_stop(&signals, options.exit_after);
    drop(stop_sender);
    stop(&sim, api, &connections_gone);
    Ok(())
}

fn bind(options: &Options) -> Result<(ApiServer, TcpListener), String> {
    let api = options.listen_api;
    let server = ApiServer::bind(api)
        .map_err(|e| format!("binding the API listener to {api} failed: {e}"))?;
    let events = options.listen_events;
    let listener = TcpListener::bind(events)
        .map_err(|e| format!("binding the events listener to {events} failed: {e}"))?;
    Ok((server, listener))
}

/// Starts the API listener, the stream listener and the signal watcher.
fn start_threads(
    sim: &Arc<Sim>,
    server: ApiServer,
    events: TcpListener,
) -> Result<(ApiHandle, Receiver<i32>), String> {
    let spawn_error = |e: io::Error| format!("starting a thread failed: {e}");
    let api = server.spawn(Arc::clone(sim)).map_err(spawn_error)?;
    stream::spawn_listener(Arc::clone(sim), events).map_err(spawn_error)?;
    let signals = watch_signals().map_err(|e| format!("installing signal handlers failed: {e}"))?;
    Ok((api, signals))
}

fn build_feed(source: &SourceSpec) -> Result<Feed, String> {
    match source {
        SourceSpec::Silent => Ok(Feed::silent()),
        SourceSpec::Load(spec) => Ok(Feed::load(*spec)),
        SourceSpec::Script(path) => Feed::script(path),
    }
}

/// Prints the two address lines that tests and the README read.
fn announce(api: SocketAddr, events: SocketAddr) {
    let mut stdout = io::stdout().lock();
    let printed = writeln!(stdout, "api http://{api}")
        .and_then(|()| writeln!(stdout, "events ws://{events}{}", stream::EVENTS_PATH))
        .and_then(|()| stdout.flush());
    if let Err(e) = printed {
        warn!("printing the listener addresses failed: {e}");
    }
    info!("serving the API on {api} and the event stream on {events}");
}

/// Forwards SIGINT and SIGTERM to a channel.
fn watch_signals() -> io::Result<Receiver<i32>> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    // Capacity 1: the first signal is enough to stop.
    let (sender, receiver) = bounded(1);
    thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = sender.try_send(signal);
            }
        })?;
    Ok(receiver)
}

fn wait_for_stop(signals: &Receiver<i32>, exit_after: Option<Duration>) {
    let deadline = exit_after.map_or_else(never, after);
    select! {
        recv(signals) -> signal => info!("stopping on signal {}", signal.unwrap_or_default()),
        recv(deadline) -> _ => info!("stopping: --exit-after elapsed"),
    }
}

/// Stops serving, lets stream connections close, and prints the summary line.
fn stop(sim: &Sim, api: ApiHandle, connections_gone: &Receiver<()>) {
    api.stop();
    sim.release_connection_token();
    // Disconnects once every connection thread has dropped its token.
    let _ = connections_gone.recv_timeout(STOP_GRACE);
    match serde_json::to_string(&sim.stats.summary()) {
        Ok(summary) => {
            let mut stdout = io::stdout().lock();
            let _ = writeln!(stdout, "{summary}").and_then(|()| stdout.flush());
        }
        Err(e) => error!("serializing the summary failed: {e}"),
    }
}

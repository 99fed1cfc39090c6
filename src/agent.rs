//! The `Agent` builder and `run`: start every thread, wait for the stream
//! to end or a stop request, drain, and stop the threads in order.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use serde_json::json;

use crate::audit::{Audit, AuditEvent, AuditTotals, AuditWriter, ReopenSignal};
use crate::auth::{AuthError, TokenSource};
use crate::backoff::{self, RateGate};
use crate::calendar::{self, Callback, Notice, Targets};
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::http::{self, ClientFactory, Timeouts};
use crate::journal::{Journal, Recovered};
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::proxy::ProxySettings;
use crate::queue::ShardQueue;
use crate::rest::RestClient;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::store::{self, InstanceLock, SessionStore};
use crate::stream::{Reader, ReaderEnd, SocketCutter, StreamSettings};
use crate::tls::TrustRoots;
use crate::worker::{self, WorkerContext};

/// Timeout of one calendar webhook call: long enough for a slow calendar,
/// short enough that a dead one does not hold up the notices behind it.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure that kept the agent from running.
#[derive(Debug)]
pub enum AgentError {
    /// A configuration problem found at start-up (exit code 78).
    Config(String),
    /// The token endpoint rejected the credentials at start-up (exit code 77).
    CredentialsRejected(AuthError),
    /// Another instance holds the lock on the state directory (exit code 0, silent).
    AlreadyRunning,
    /// Anything else that stopped the start-up (exit code 70).
    Internal(String),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Config(reason) => write!(f, "configuration error: {reason}"),
            AgentError::CredentialsRejected(err) => write!(f, "{err}"),
            AgentError::AlreadyRunning => {
                f.write_str("another instance holds the state directory lock")
            }
            AgentError::Internal(reason) => write!(f, "internal error: {reason}"),
        }
    }
}

impl std::error::Error for AgentError {}

impl AgentError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Config(_) => 78,
            AgentError::CredentialsRejected(_) => 77,
            AgentError::AlreadyRunning => 0,
            AgentError::Internal(_) => 70,
        }
    }
}

/// The report of a finished run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub audit: AuditTotals,
    pub audit_path: std::path::PathBuf,
    pub stream_ended: bool,
}

/// The agent, configured and ready to run.
pub struct Agent {
    config: Config,
    callbacks: Vec<Callback>,
    retry_base: Duration,
    reopen: ReopenSignal,
    source: Source,
}

/// The source of states.
#[derive(Clone)]
enum Source {
    /// The WebSocket event stream (the `run` subcommand).
    Stream,
    /// The lines of a dead-letter file (the `replay` subcommand).
    Replay(std::path::PathBuf),
}

/// The threads of a running agent, in the order they are stopped.
struct Threads {
    reader: JoinHandle<ReaderEnd>,
    workers: Vec<JoinHandle<()>>,
    calendar: Option<JoinHandle<()>>,
    monitor: JoinHandle<()>,
    monitor_stop: crossbeam_channel::Sender<()>,
    metrics_listener: Option<crate::metrics_http::Listener>,
}

impl Agent {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            callbacks: Vec::new(),
            retry_base: worker::RETRY_BASE,
            reopen: ReopenSignal::new(),
            source: Source::Stream,
        }
    }

    /// Reopens the audit file whenever `signal` is raised (SIGHUP).
    pub fn audit_reopen(mut self, signal: ReopenSignal) -> Self {
        self.reopen = signal;
        self
    }

    /// Sends the states of a dead-letter file instead of reading the stream;
    /// the run ends when they are all finished.
    pub fn replay_from(mut self, file: std::path::PathBuf) -> Self {
        self.source = Source::Replay(file);
        self
    }

    /// Registers a callback for calendar notices (recording directive changes).
    pub fn on_calendar(mut self, callback: impl Fn(&Notice) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(callback));
        self
    }

    /// Sets the first retry delay (1 s by default); tests shorten it.
    pub fn retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Runs until `shutdown` is triggered, `--run-for` elapses, or the stream
    /// ends with `--exit-on-stream-end`; then drains and stops every thread.
    pub fn run(self, shutdown: Shutdown) -> Result<RunSummary, AgentError> {
        let config = &self.config;
        let (client_id, secret) = config
            .credentials()
            .map_err(|err| AgentError::Config(err.to_string()))?;
        let roots = TrustRoots::load(config.ca_file.as_deref())
            .map_err(|err| AgentError::Config(err.to_string()))?;
        let _lock = take_lock(config)?;
        let store = Arc::new(
            SessionStore::open(&config.state_dir)
                .map_err(|err| AgentError::Config(err.to_string()))?,
        );
        let (audit, writer) =
            AuditWriter::start(&config.audit_log, self.reopen.clone()).map_err(|err| {
                AgentError::Config(format!(
                    "cannot open audit file {}: {err}",
                    config.audit_log.display()
                ))
            })?;

        let result = self.run_with(audit, store, roots, &client_id, &secret, shutdown);
        let totals = writer.join();
        result.map(|stream_ended| RunSummary {
            audit: totals,
            audit_path: config.audit_log.clone(),
            stream_ended,
        })
    }

    fn run_with(
        &self,
        audit: Audit,
        store: Arc<SessionStore>,
        roots: TrustRoots,
        client_id: &str,
        secret: &Secret,
        shutdown: Shutdown,
    ) -> Result<bool, AgentError> {
        let config = &self.config;
        audit.record(
            AuditEvent::AgentStarted,
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "eventsUrl": config.events_url,
                "apiBase": config.api_base,
                "workers": config.workers,
                "gatewayProfile": config.gateway_profile.name(),
                "sessionsRemembered": store.len(),
            }),
        );
        log::info!(
            "agent starting: {} workers, {} profile, {} sessions remembered",
            config.workers,
            config.gateway_profile.name(),
            store.len()
        );

        let factory = ClientFactory {
            roots,
            proxies: ProxySettings::from_env(),
            timeouts: Timeouts::default(),
        };
        let login_client = factory
            .client_for(&config.login_base)
            .map_err(AgentError::Config)?;
        let tokens = Arc::new(TokenSource::new(
            login_client,
            &config.login_base,
            client_id,
            secret,
            audit.clone(),
        ));
        // The stop-watch runs from here, so --run-for and signals also end a
        // start-up that is still waiting for the network. Dropping `_done`
        // on return releases it.
        let cutter = SocketCutter::default();
        let (_done, done_signal) = crossbeam_channel::bounded::<()>(0);
        spawn_stop_watch(
            shutdown.clone(),
            cutter.clone(),
            config.run_for,
            done_signal,
        );
        if !first_token(&tokens, &shutdown)? {
            audit.record(
                AuditEvent::AgentStopped,
                json!({"reason": "stopped before the first token"}),
            );
            return Ok(false);
        }

        let metrics = Arc::new(Metrics::default());
        let (journal, recovered) = Journal::open(&config.state_dir);
        let journal = Arc::new(journal);
        let (threads, queues) = self.start_threads(
            &audit,
            &store,
            &factory,
            &tokens,
            &metrics,
            &shutdown,
            cutter,
            (&journal, recovered),
        )?;
        let stream_ended = self.wait_and_stop(threads, &queues, &shutdown);

        match store.save().and_then(|()| store.sync_dead_letters()) {
            Ok(()) => journal.prune(true),
            Err(err) => log::error!("cannot save session memory at stop: {err}"),
        }
        let mut totals = metrics.totals_json();
        if let Some(map) = totals.as_object_mut() {
            map.insert("backlogLeft".into(), json!(metrics.backlog()));
            map.insert("streamEnded".into(), json!(stream_ended));
        }
        audit.record(AuditEvent::AgentStopped, totals);
        log::info!("agent stopped");
        Ok(stream_ended)
    }

    #[allow(clippy::too_many_arguments)]
    fn start_threads(
        &self,
        audit: &Audit,
        store: &Arc<SessionStore>,
        factory: &ClientFactory,
        tokens: &Arc<TokenSource>,
        metrics: &Arc<Metrics>,
        shutdown: &Shutdown,
        cutter: SocketCutter,
        (journal, recovered): (&Arc<Journal>, Vec<Recovered>),
    ) -> Result<(Threads, Vec<Arc<ShardQueue>>), AgentError> {
        let config = &self.config;
        let internal =
            |err: std::io::Error| AgentError::Internal(format!("cannot start a thread: {err}"));

        let targets = Targets {
            webhook: config.calendar_webhook.clone(),
            exec: config.calendar_exec.clone(),
            callbacks: self.callbacks.clone(),
            webhook_timeout: WEBHOOK_TIMEOUT,
        };
        let webhook_client = match &config.calendar_webhook {
            Some(url) => factory.client_for(url),
            None => http::build_client(&factory.roots, factory.timeouts, None),
        }
        .map_err(AgentError::Config)?;
        let (calendar, calendar_thread) = calendar::start(
            targets,
            webhook_client,
            audit.clone(),
            Arc::clone(metrics),
            shutdown.clone(),
        )
        .map_err(internal)?;

        // One pending nudge is enough: the monitor reads the live backlog.
        let (nudge, nudges) = crossbeam_channel::bounded(1);
        let (dispatcher, shards) = Dispatcher::new(
            config.workers,
            config.gateway_profile,
            config.queue_capacity,
            Arc::clone(metrics),
            audit.clone(),
            nudge,
            Arc::clone(journal),
        );
        dispatcher.enqueue_recovered(recovered);
        let queues: Vec<Arc<ShardQueue>> =
            shards.iter().map(|(queue, _)| Arc::clone(queue)).collect();
        // One HTTP client, and so one keep-alive connection, per worker.
        // ureq 3.5 probes a pooled connection (three syscalls) while it
        // keeps the pool locked, so workers that share a client wait for
        // each other. Separate clients applied 4 % more states per second
        // in the flood of scripts/bench.sh on a 2-core machine.
        let rest_clients = (0..shards.len())
            .map(|_| {
                let http = factory.client_for(&config.api_base)?;
                Ok(RestClient::new(http, &config.api_base))
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(AgentError::Config)?;
        let context = Arc::new(WorkerContext {
            tokens: Arc::clone(tokens),
            gate: RateGate::default(),
            store: Arc::clone(store),
            journal: Arc::clone(journal),
            metrics: Arc::clone(metrics),
            audit: audit.clone(),
            calendar,
            shutdown: shutdown.clone(),
            max_retries: config.max_retries,
            max_retry_after: config.max_retry_after,
            retry_base: self.retry_base,
        });
        let workers = worker::start_pool(context, shards, rest_clients).map_err(internal)?;

        let (rtt_sender, rtt_samples) = crossbeam_channel::bounded(64);
        let (monitor_stop, stop) = crossbeam_channel::bounded(0);
        let monitor = Monitor {
            metrics: Arc::clone(metrics),
            audit: audit.clone(),
            store: Arc::clone(store),
            journal: Arc::clone(journal),
            queue_capacity: config.queue_capacity,
            rtt_samples,
            nudges,
            stop,
        }
        .start()
        .map_err(internal)?;

        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(
                crate::metrics_http::Listener::start(
                    address,
                    Arc::clone(metrics),
                    Arc::clone(tokens),
                )
                .map_err(AgentError::Config)?,
            ),
            None => None,
        };

        let reader = Reader {
            settings: StreamSettings {
                url: config.events_url.clone(),
                states: config.states.clone(),
                ping_interval: config.ping_interval,
                exit_on_stream_end: config.exit_on_stream_end,
                roots: factory.roots.clone(),
                proxies: factory.proxies.clone(),
            },
            tokens: Arc::clone(tokens),
            dispatcher,
            audit: audit.clone(),
            metrics: Arc::clone(metrics),
            shutdown: shutdown.clone(),
            rtt_samples: rtt_sender,
            cutter,
        };
        let reader = match self.source.clone() {
            Source::Stream => std::thread::Builder::new()
                .name("stream-reader".into())
                .spawn(move || reader.run())
                .map_err(internal)?,
            Source::Replay(file) => std::thread::Builder::new()
                .name("replay".into())
                .spawn(move || crate::replay::feed(&file, &reader.dispatcher, &reader.shutdown))
                .map_err(internal)?,
        };

        let threads = Threads {
            reader,
            workers,
            calendar: calendar_thread,
            monitor,
            monitor_stop,
            metrics_listener,
        };
        Ok((threads, queues))
    }

    /// Waits for the reader to end, lets the workers drain, and stops the
    /// rest. Returns whether the stream ended on its own.
    fn wait_and_stop(
        &self,
        threads: Threads,
        queues: &[Arc<ShardQueue>],
        shutdown: &Shutdown,
    ) -> bool {
        let stream_ended = match threads.reader.join() {
            Ok(end) => end == ReaderEnd::StreamEnded,
            Err(_) => {
                log::error!("the stream reader thread panicked; stopping");
                shutdown.trigger();
                false
            }
        };
        if stream_ended {
            log::info!(
                "event stream ended; finishing {} accepted states",
                queues.iter().map(|q| q.len()).sum::<usize>()
            );
        }
        for worker in threads.workers {
            if worker.join().is_err() {
                log::error!("a worker thread panicked");
            }
        }
        if let Some(calendar) = threads.calendar {
            let _ = calendar.join();
        }
        drop(threads.monitor_stop);
        let _ = threads.monitor.join();
        drop(threads.metrics_listener);
        stream_ended
    }
}

fn take_lock(config: &Config) -> Result<InstanceLock, AgentError> {
    match store::try_lock_instance(&config.state_dir) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(AgentError::AlreadyRunning),
        Err(err) => Err(AgentError::Config(err.to_string())),
    }
}

/// Fetches the first token. A rejection of the credentials is fatal; any
/// other failure (the uplink may not be up yet) is retried with backoff.
/// Returns false when a stop came first.
fn first_token(tokens: &TokenSource, shutdown: &Shutdown) -> Result<bool, AgentError> {
    let mut attempt = 0;
    loop {
        match tokens.token() {
            Ok(_) => return Ok(true),
            Err(err) if !err.is_transient() => return Err(AgentError::CredentialsRejected(err)),
            Err(err) => {
                let delay =
                    backoff::full_jitter(Duration::from_secs(1), Duration::from_secs(60), attempt);
                attempt = attempt.saturating_add(1);
                log::warn!(
                    "cannot fetch a token yet ({err}); retrying in {:.1}s",
                    delay.as_secs_f64()
                );
                if shutdown.sleep(delay) {
                    return Ok(false);
                }
            }
        }
    }
}

/// Starts a small thread that ends the run: it triggers the stop after
/// `--run-for` and cuts the stream socket as soon as a stop is requested.
/// It exits when `done` closes at the end of the run.
fn spawn_stop_watch(
    shutdown: Shutdown,
    cutter: SocketCutter,
    run_for: Option<Duration>,
    done: Receiver<()>,
) {
    let spawned = std::thread::Builder::new()
        .name("stop-watch".into())
        .spawn(move || {
            let limit = run_for.map_or_else(crossbeam_channel::never, crossbeam_channel::after);
            crossbeam_channel::select! {
                recv(shutdown.channel()) -> _ => cutter.cut(),
                recv(limit) -> _ => {
                    log::info!("--run-for elapsed; stopping");
                    shutdown.trigger();
                    cutter.cut();
                }
                recv(done) -> _ => {}
            }
        });
    if let Err(err) = spawned {
        log::error!("cannot start the stop-watch thread: {err}");
    }
}

//! `genesys-video-agent`: keeps Genesys Cloud video conference sessions in a
//! valid state from an edge appliance.
//!
//! [`Agent`] wires the threads together: the stream reader, a sharded
//! worker pool, the monitor, the audit writer, the calendar notifier and
//! the optional metrics listener. They talk over crossbeam channels and
//! share atomics; see each module for the part it owns.

pub mod audit;
pub mod auth;
pub mod backoff;
pub mod calendar;
pub mod config;
pub mod connect;
pub mod dispatch;
pub mod event;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod metrics_http;
pub mod monitor;
pub mod proxy;
pub mod queue;
pub mod region;
pub mod replay;
pub mod resolver;
pub mod rest;
pub mod secret;
pub mod shutdown;
pub mod signals;
pub mod store;
pub mod stream;
pub mod subcommand;
pub mod tls;
pub mod validate;
pub mod worker;

mod agent;

pub use agent::{Agent, AgentError, RunSummary};
pub use config::Config;
pub use shutdown::Shutdown;

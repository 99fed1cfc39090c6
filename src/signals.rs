//! Unix signals: SIGINT and SIGTERM request a clean stop (a second one
//! exits at once), SIGHUP reopens the audit file.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::audit::ReopenSignal;
use crate::shutdown::Shutdown;

/// Starts the thread that turns signals into requests.
pub fn install(shutdown: &Shutdown, reopen: &ReopenSignal) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let shutdown = shutdown.clone();
    let reopen = reopen.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => {
                        log::info!("SIGHUP: reopening the audit file");
                        reopen.request();
                    }
                    _ if shutdown.is_stopping() => {
                        eprintln!("genesys-video-agent: second stop signal; exiting at once");
                        std::process::exit(128 + signal);
                    }
                    _ => {
                        log::info!(
                            "stop signal received; finishing accepted states (at most 10 s)"
                        );
                        shutdown.trigger();
                    }
                }
            }
        })?;
    Ok(())
}

//! Opening the WebSocket's TCP connection, with a timeout on every address.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connects to `host:port`, trying each resolved address in turn.
pub fn tcp_via_proxy(
    host: &str,
    port: u16,
    _secure: bool,
    timeout: Duration,
) -> Result<TcpStream, String> {
    direct(host, port, timeout)
}

fn direct(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addresses = (host, port)
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {host}: {err}"))?;
    let mut last_error = format!("{host} resolved to no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => last_error = format!("cannot connect to {host}:{port} ({address}): {err}"),
        }
    }
    Err(last_error)
}

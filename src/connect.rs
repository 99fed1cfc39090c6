//! Opening the WebSocket's TCP connection: directly, or through an HTTP
//! proxy with a `CONNECT` tunnel, with a timeout on every step.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::http::USER_AGENT;
use crate::proxy::{ProxySettings, ProxyTarget};

/// The maximum size of a proxy's reply header.
const MAX_PROXY_REPLY: usize = 16 * 1024;

/// Connects to `host:port`, through the proxy the environment names for it.
pub fn open_tcp(
    proxies: &ProxySettings,
    host: &str,
    port: u16,
    secure: bool,
    timeout: Duration,
) -> Result<TcpStream, String> {
    match proxies.proxy_for(secure, host, port)? {
        None => direct(host, port, timeout),
        Some(proxy) => tunnel(&proxy, host, port, timeout),
    }
}

/// Connects to `host:port`, trying each resolved address in turn.
pub fn direct(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
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

/// Opens a `CONNECT` tunnel to `host:port` through `proxy` (RFC 9110,
/// section 9.3.6) and returns the stream once the proxy answered 2xx.
fn tunnel(
    proxy: &ProxyTarget,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let mut stream = direct(&proxy.host, proxy.port, timeout)
        .map_err(|err| format!("cannot reach proxy {}: {err}", proxy.display))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|err| err.to_string())?;

    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {USER_AGENT}\r\n");
    if let Some(authorization) = &proxy.authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(authorization.expose());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("cannot send CONNECT to proxy {}: {err}", proxy.display))?;

    let reply =
        read_reply_head(&mut stream).map_err(|err| format!("proxy {}: {err}", proxy.display))?;
    let status_line = reply.lines().next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    if !(200..300).contains(&status) {
        return Err(format!(
            "proxy {} refused the tunnel to {target}: {}",
            proxy.display,
            crate::event::excerpt(status_line, 120)
        ));
    }
    log::debug!("tunnel to {target} open through proxy {}", proxy.display);
    Ok(stream)
}

/// Reads the proxy's reply up to the blank line, one byte at a time so no
/// byte of the tunnelled stream is consumed.
fn read_reply_head(stream: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_PROXY_REPLY {
            return Err(format!("reply header longer than {MAX_PROXY_REPLY} bytes"));
        }
        match stream.read(&mut byte) {
            Ok(0) => return Err("closed the connection during CONNECT".to_owned()),
            Ok(_) => head.push(byte[0]),
            Err(err) => return Err(format!("no reply to CONNECT: {err}")),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

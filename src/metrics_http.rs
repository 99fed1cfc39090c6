//! The optional `--metrics-listen` server: `/metrics` in the Prometheus text
//! format and `/healthz` for liveness checks. tiny_http parses HTTP; the
//! handlers only read atomics, so a scrape never touches the pipeline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Response, Server};

use crate::auth::TokenSource;
use crate::metrics::Metrics;

const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The listener thread; dropping it stops the server and joins the thread.
pub struct Listener {
    server: Arc<Server>,
    handle: Option<JoinHandle<()>>,
    address: SocketAddr,
}

impl Listener {
    /// Binds `address` and serves until dropped.
    pub fn start(
        address: SocketAddr,
        metrics: Arc<Metrics>,
        tokens: Arc<TokenSource>,
    ) -> Result<Self, String> {
        let server = Server::http(address)
            .map_err(|err| format!("cannot listen on --metrics-listen {address}: {err}"))?;
        let bound = server.server_addr().to_ip().unwrap_or(address);
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let handle = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&serving, &metrics, &tokens))
            .map_err(|err| format!("cannot start the metrics thread: {err}"))?;
        log::info!("serving /metrics and /healthz on http://{bound}");
        Ok(Self {
            server,
            handle: Some(handle),
            address: bound,
        })
    }

    /// The bound address (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn serve(server: &Server, metrics: &Metrics, tokens: &TokenSource) {
    for request in server.incoming_requests() {
        let response = route(request.method(), request.url(), metrics, tokens);
        if let Err(err) = request.respond(response) {
            log::debug!("metrics client went away: {err}");
        }
    }
}

fn route(
    method: &Method,
    url: &str,
    metrics: &Metrics,
    tokens: &TokenSource,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let path = url.split('?').next().unwrap_or("");
    if *method != Method::Get && *method != Method::Head {
        return text(405, "only GET is supported\n", "text/plain");
    }
    match path {
        "/metrics" => text(200, &metrics.render_prometheus(), PROMETHEUS_CONTENT_TYPE),
        "/healthz" => {
            let connected = metrics.stream_connected.load(Ordering::Relaxed);
            let has_token = tokens.has_token();
            let body = serde_json::json!({"streamConnected": connected, "tokenHeld": has_token})
                .to_string()
                + "\n";
            let status = if connected && has_token { 200 } else { 503 };
            text(status, &body, "application/json")
        }
        _ => text(404, "not found: try /metrics or /healthz\n", "text/plain"),
    }
}

fn text(status: u16, body: &str, content_type: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut response = Response::from_string(body).with_status_code(status);
    if let Ok(header) = Header::from_bytes("Content-Type", content_type) {
        response.add_header(header);
    }
    response
}

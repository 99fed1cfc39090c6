//! The control API under `/_sim/`: runtime faults, stream drops and inspection.

use log::info;
use serde_json::{Value, json};

use crate::http::{Exchange, Reply, method_not_allowed};
use crate::state::Sim;

pub fn handle(sim: &Sim, exchange: &Exchange) -> Reply {
    let method = exchange.method.as_str();
    match exchange.path.as_str() {
        "/_sim/control" => match method {
            "POST" => update_faults(sim, &exchange.body),
            "GET" => config_reply(sim),
            _ => method_not_allowed("GET, POST"),
        },
        "/_sim/drop" => post_only(method, || drop_streams(sim)),
        "/_sim/revoke-tokens" => post_only(method, || revoke_tokens(sim)),
        "/_sim/conferences" => get_only(method, || Reply::json(200, &sim.conferences.summary())),
        "/_sim/requests" => get_only(method, || serialized(&sim.requests.snapshot())),
        "/_sim/streams" => get_only(method, || serialized(&sim.streams.handshakes())),
        "/_sim/stats" => get_only(method, || Reply::json(200, &stats(sim))),
        other => Reply::error(404, "not_found", &format!("no control endpoint at {other}")),
    }
}

fn post_only(method: &str, reply: impl FnOnce() -> Reply) -> Reply {
    if method == "POST" {
        reply()
    } else {
        method_not_allowed("POST")
    }
}

fn get_only(method: &str, reply: impl FnOnce() -> Reply) -> Reply {
    if method == "GET" {
        reply()
    } else {
        method_not_allowed("GET")
    }
}

fn serialized(value: &impl serde::Serialize) -> Reply {
    match serde_json::to_value(value) {
        Ok(value) => Reply::json(200, &value),
        Err(error) => Reply::error(500, "internal_error", &error.to_string()),
    }
}

/// Applies a JSON object of fault settings, all of them or none.
fn update_faults(sim: &Sim, body: &[u8]) -> Reply {
    let patch = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(patch)) => patch,
        Ok(_) => return Reply::error(400, "invalid_body", "expected a JSON object of settings"),
        Err(error) => {
            let message = format!("body is not valid JSON: {error}");
            return Reply::error(400, "invalid_body", &message);
        }
    };
    if let Err(message) = sim.faults.lock().apply_patch(&patch) {
        return Reply::error(400, "invalid_setting", &message);
    }
    info!("fault settings changed: {}", Value::Object(patch));
    config_reply(sim)
}

fn config_reply(sim: &Sim) -> Reply {
    serialized(&sim.faults())
}

fn drop_streams(sim: &Sim) -> Reply {
    let dropped = sim.streams.drop_all();
    info!("dropping {dropped} stream connection(s) on request");
    Reply::json(200, &json!({"dropped": dropped}))
}

fn revoke_tokens(sim: &Sim) -> Reply {
    let revoked = sim.tokens.revoke_all();
    info!("revoked {revoked} valid token(s) on request");
    Reply::json(200, &json!({"revoked": revoked}))
}

/// Builds the stop summary plus live figures of the event stream.
pub fn stats(sim: &Sim) -> Value {
    let mut stats = serde_json::to_value(sim.stats.summary()).unwrap_or_else(|_| json!({}));
    let (stream_done, total_frames) = {
        let feed = sim.feed.lock();
        (feed.is_done(), feed.total())
    };
    if let Value::Object(fields) = &mut stats {
        fields.insert("pings".to_string(), json!(sim.stats.pings()));
        fields.insert("connected".to_string(), json!(sim.streams.connected()));
        fields.insert("streamDone".to_string(), json!(stream_done));
        fields.insert(
            "heartbeatsSent".to_string(),
            json!(sim.stats.heartbeats_sent()),
        );
        fields.insert("totalFrames".to_string(), json!(total_frames));
    }
    stats
}

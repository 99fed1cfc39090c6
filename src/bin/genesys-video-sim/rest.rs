//! `GET` and `PUT /api/v2/videoconferences/{id}`: bearer checks, the rate budget,
//! injected failures and the sequence-checked update.

use std::time::Duration;

use log::debug;
use serde_json::json;

use crate::conferences::Outcome;
use crate::faults::PutFault;
use crate::http::{Exchange, Reply, percent_decode};
use crate::oauth::media_type_is;
use crate::put_body::{parse_body, parse_if_match};
use crate::ratelimit::Budget;
use crate::state::Sim;
use crate::stats::Stats;
use crate::tokens::bearer_token;

pub fn get(sim: &Sim, exchange: &Exchange, raw_id: &str) -> Reply {
    let budget = match admit(sim, exchange) {
        Ok((_, budget)) => budget,
        Err(reply) if reply.status == 429 => {
            Stats::add(&sim.stats.rate_limited, 1);
            return reply;
        }
        Err(reply) => return reply,
    };
    let reply = match session_id(raw_id) {
        Ok(id) => Reply::json(200, &sim.conferences.view(&id)),
        Err(reply) => reply,
    };
    with_budget(reply, budget)
}

pub fn put(sim: &Sim, exchange: &Exchange, raw_id: &str) -> Reply {
    Stats::add(&sim.stats.puts, 1);
    let (token, budget) = match admit(sim, exchange) {
        Ok(admitted) => admitted,
        Err(reply) => return count_reply(sim, reply),
    };
    let reply = match session_id(raw_id) {
        Ok(id) => update(sim, exchange, &id, token),
        Err(reply) => reply,
    };
    count_reply(sim, with_budget(reply, budget))
}

/// Waits the injected latency, then checks the bearer token and the rate budget.
/// Returns the token and the budget headers to add to the reply.
fn admit<'a>(sim: &Sim, exchange: &'a Exchange) -> Result<(&'a str, Option<Budget>), Reply> {
    let faults = sim.faults();
    sim.pause(Duration::from_millis(faults.put_latency));
    let token = bearer_token(exchange.header("authorization"))
        .filter(|token| sim.tokens.is_valid(token))
        .ok_or_else(invalid_token)?;
    let window = Duration::from_secs(faults.rate_window);
    let budget = sim.rate_window.count(faults.rate_budget, window);
    match budget {
        Some(budget) if budget.exceeded => Err(over_budget(budget)),
        budget => Ok((token, budget)),
    }
}

fn invalid_token() -> Reply {
    let message = "missing, unknown, expired or revoked bearer token";
    Reply::error(401, "invalid_token", message)
        .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
}

fn over_budget(budget: Budget) -> Reply {
    let message = format!("rate budget of {} requests exceeded", budget.allowed);
    let retry_after = budget.reset_secs.to_string();
    Reply::error(429, "too_many_requests", &message)
        .with_header("Retry-After", &retry_after)
        .with_headers(budget.headers())
}

fn with_budget(reply: Reply, budget: Option<Budget>) -> Reply {
    match budget {
        Some(budget) => reply.with_headers(budget.headers()),
        None => reply,
    }
}

/// Applies one PUT to conference `id`, after the injected failures.
fn update(sim: &Sim, exchange: &Exchange, id: &str, token: &str) -> Reply {
    sim.conferences.count_put(id);
    let fault = sim.faults.lock().take_put_fault();
    if let Some(fault) = fault {
        debug!("PUT {id}: injected {fault:?}");
        return injected_failure(sim, fault, token);
    }
    let (sequence, update) = match parse_request(exchange) {
        Ok(parsed) => parsed,
        Err(reply) => return reply,
    };
    let conflict = sim.faults.lock().take_conflict_fault();
    match sim.conferences.apply(id, sequence, update, conflict) {
        Outcome::Applied(conference) => Reply::json(200, &conference),
        Outcome::Conflict { held } => {
            Reply::json(409, &json!({"error": "conflict", "sequenceNumber": held}))
        }
    }
}

/// Checks Content-Type, If-Match and the body of a PUT.
fn parse_request(exchange: &Exchange) -> Result<(u64, crate::conferences::Update), Reply> {
    let content_type = exchange.header("content-type").unwrap_or_default();
    if !media_type_is(content_type, "application/json") {
        let message = format!("Content-Type must be application/json, got '{content_type}'");
        return Err(Reply::error(415, "unsupported_media_type", &message));
    }
    let Some(if_match) = exchange.header("if-match") else {
        let message = "missing If-Match header; send If-Match: seq=N";
        return Err(Reply::error(428, "precondition_required", message));
    };
    let sequence = parse_if_match(if_match)
        .map_err(|message| Reply::error(400, "invalid_if_match", &message))?;
    let update = parse_body(&exchange.body)
        .map_err(|message| Reply::error(400, "invalid_body", &message))?;
    Ok((sequence, update))
}

fn injected_failure(sim: &Sim, fault: PutFault, token: &str) -> Reply {
    match fault {
        PutFault::Unauthorized => {
            sim.tokens.revoke(token);
            invalid_token()
        }
        PutFault::Forbidden => {
            let message = "missing permission video:videoconference:write";
            Reply::error(403, "forbidden", message)
        }
        PutFault::NotFound => Reply::error(404, "not_found", "video conference not found"),
        PutFault::TooManyRequests { retry_after } => {
            let reply = Reply::error(429, "too_many_requests", "injected rate limit");
            if retry_after.is_empty() {
                reply
            } else {
                reply.with_header("Retry-After", &retry_after)
            }
        }
        PutFault::ServerError { status } => {
            Reply::error(status, "server_error", "injected server failure")
        }
    }
}

/// Counts applied, conflicting and rate-limited PUTs by their reply status.
fn count_reply(sim: &Sim, reply: Reply) -> Reply {
    let counter = match reply.status {
        200 => &sim.stats.applied,
        409 => &sim.stats.conflicts,
        429 => &sim.stats.rate_limited,
        _ => return reply,
    };
    Stats::add(counter, 1);
    reply
}

/// Decodes the id path segment. Ids with `/` or `..` cannot be valid.
fn session_id(raw: &str) -> Result<String, Reply> {
    let id = percent_decode(raw, false)
        .map_err(|message| Reply::error(400, "invalid_session_id", &message))?;
    let invalid =
        id.is_empty() || id.contains('/') || id.contains("..") || id.chars().any(char::is_control);
    if invalid {
        let message = format!("invalid session id '{id}'");
        return Err(Reply::error(400, "invalid_session_id", &message));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_decodes_and_rejects_traversal() {
        assert_eq!(session_id("abc-1").ok(), Some("abc-1".to_string()));
        assert_eq!(session_id("a%2Db").ok(), Some("a-b".to_string()));
        for bad in ["", "a%2Fb", "..", "%2E%2E", "a/b", "%zz"] {
            assert!(session_id(bad).is_err(), "{bad} accepted");
        }
    }
}

//! Parsers of single setting values: counts, bounded durations, profiles, states, addresses.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::{GatewayProfile, parse_duration};

const DURATION_HINT: &str = "a duration such as 500ms, 30s, 5m, 1h or a number of seconds";

/// Parses a whole number within `range` into the field's type.
pub(super) fn parse_count<T: TryFrom<u64>>(
    text: &str,
    range: RangeInclusive<u64>,
) -> Result<T, String> {
    let expected = format!(
        "expected a whole number from {} to {}",
        range.start(),
        range.end()
    );
    let number: u64 = text.parse().map_err(|_| expected.clone())?;
    if !range.contains(&number) {
        return Err(format!("out of range, {expected}"));
    }
    T::try_from(number).map_err(|_| expected)
}

/// Parses a duration within `range`, described as `range_text` in the error.
pub(super) fn parse_duration_in(
    text: &str,
    range: RangeInclusive<Duration>,
    range_text: &str,
) -> Result<Duration, String> {
    let duration =
        parse_duration(text).map_err(|reason| format!("{reason}, expected {DURATION_HINT}"))?;
    if !range.contains(&duration) {
        return Err(format!("out of range, expected a duration {range_text}"));
    }
    Ok(duration)
}

pub(super) fn parse_gateway_profile(text: &str) -> Result<GatewayProfile, String> {
    GatewayProfile::from_name(text).ok_or_else(|| "expected hd or standard".to_owned())
}

/// Parses a comma-separated list of states. Spaces around items are
/// ignored, and a repeated state is kept once.
pub(super) fn parse_states(text: &str) -> Result<Vec<String>, String> {
    let mut states: Vec<String> = Vec::new();
    for item in text.split(',').map(str::trim) {
        let valid = !item.is_empty() && item.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !valid {
            return Err(
                "expected comma-separated states of lower-case letters and _, such as active,recording"
                    .to_owned(),
            );
        }
        if !states.iter().any(|state| state == item) {
            states.push(item.to_owned());
        }
    }
    Ok(states)
}

pub(super) fn parse_socket_address(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "expected an IP address and port such as 127.0.0.1:9750 or [::1]:9750".to_owned()
    })
}

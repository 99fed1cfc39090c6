//! Parsing of durations written as `500ms`, `30s`, `5m`, `1h` or a bare number of seconds.

use std::time::Duration;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// More decimal places than this would be below one nanosecond for seconds.
const MAX_DECIMAL_PLACES: usize = 9;

/// Parses a duration: a number with an optional unit `ms`, `s`, `m` or `h`.
///
/// A number without a unit is seconds. The number may have a fraction
/// (`1.5`, `0.5h`). Empty text, a sign, an unknown unit and a value beyond
/// [`Duration::MAX`] are errors. The error text is lower-case and states the
/// problem, without the expected format, which the caller adds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if text.starts_with('-') {
        return Err("negative duration".to_owned());
    }

    let unit_start = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_start);
    if number.is_empty() {
        return Err("missing number".to_owned());
    }
    let unit_nanos = unit_in_nanos(unit)
        .ok_or_else(|| format!("unknown unit \"{unit}\" (units are ms, s, m and h)"))?;
    let nanos = scaled_nanos(number, unit_nanos)?;
    duration_from_nanos(nanos)
}

fn unit_in_nanos(unit: &str) -> Option<u128> {
    match unit {
        "ms" => Some(1_000_000),
        "" | "s" => Some(NANOS_PER_SECOND),
        "m" => Some(60 * NANOS_PER_SECOND),
        "h" => Some(3600 * NANOS_PER_SECOND),
        _ => None,
    }
}

/// Multiplies the decimal `number` by `unit_nanos` exactly, in integers, so
/// that `0.1s` is 100 ms and not a float rounding of it.
fn scaled_nanos(number: &str, unit_nanos: u128) -> Result<u128, String> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let has_dot = number.contains('.');
    if whole.is_empty() || (has_dot && fraction.is_empty()) || fraction.contains('.') {
        return Err("malformed number".to_owned());
    }
    if fraction.len() > MAX_DECIMAL_PLACES {
        return Err(format!("more than {MAX_DECIMAL_PLACES} decimal places"));
    }

    let overflow = || "duration too large".to_owned();
    let denominator = 10u128.pow(fraction.len() as u32);
    let digits = format!("{whole}{fraction}");
    let numerator: u128 = digits.parse().map_err(|_| overflow())?;
    let product = numerator.checked_mul(unit_nanos).ok_or_else(overflow)?;
    Ok(product / denominator)
}

fn duration_from_nanos(nanos: u128) -> Result<Duration, String> {
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).map_err(|_| "duration too large")?;
    let subsecond = (nanos % NANOS_PER_SECOND) as u32;
    Ok(Duration::new(seconds, subsecond))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_bare_seconds() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("30", Duration::from_secs(30)),
            ("0", Duration::ZERO),
            ("0ms", Duration::ZERO),
            ("1.5", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("0.5h", Duration::from_secs(1800)),
            ("1.5m", Duration::from_secs(90)),
            ("2.5ms", Duration::from_micros(2500)),
            ("0.000000001", Duration::from_nanos(1)),
            ("007s", Duration::from_secs(7)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn largest_duration_in_seconds_is_accepted() {
        let text = u64::MAX.to_string();
        assert_eq!(parse_duration(&text), Ok(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn rejects_malformed_durations() {
        let cases = [
            ("", "empty"),
            ("-5s", "negative"),
            ("-1", "negative"),
            ("+5s", "missing number"),
            ("s", "missing number"),
            ("ms", "missing number"),
            (".5s", "malformed"),
            ("5.s", "malformed"),
            ("1.2.3s", "malformed"),
            ("5d", "unknown unit \"d\""),
            ("5 s", "unknown unit \" s\""),
            ("5S", "unknown unit \"S\""),
            ("1h30m", "unknown unit \"h30m\""),
            ("5sec", "unknown unit \"sec\""),
            ("five", "missing number"),
            ("0.0000000001", "decimal places"),
            ("18446744073709551616", "too large"),
            ("5124095576030432h", "too large"),
            ("99999999999999999999999999999999999999999", "too large"),
        ];
        for (text, expected) in cases {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}

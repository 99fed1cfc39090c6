//! Feeds arbitrary header values to `parse_retry_after` with fixed clocks.
//! It must never panic, and a number of seconds must come back as that
//! number (or saturate) at any clock value.

#![no_main]

use std::time::{Duration, SystemTime};

use genesys_video_agent::backoff::parse_retry_after;
use libfuzzer_sys::fuzz_target;

/// 2026-12-04T19:20:00Z, a fixed "now" so a run is reproducible.
const NOW_SECONDS: u64 = 1_796_412_000;

fuzz_target!(|bytes: &[u8]| {
    // ureq exposes header values as bytes, and the agent reads them as str.
    let value = String::from_utf8_lossy(bytes);
    let fixed_now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECONDS);

    let at_epoch = parse_retry_after(&value, SystemTime::UNIX_EPOCH);
    let at_now = parse_retry_after(&value, fixed_now);

    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let expected = Duration::from_secs(trimmed.parse().unwrap_or(u64::MAX));
        assert_eq!(at_now, Some(expected), "delay seconds {trimmed:?}");
        assert_eq!(at_epoch, at_now, "delay seconds depend on the clock");
        return;
    }

    // An HTTP date is parsed or rejected at any clock value, and a later
    // clock never gives a longer wait.
    assert_eq!(at_epoch.is_some(), at_now.is_some(), "{value:?}");
    if let (Some(from_epoch), Some(from_now)) = (at_epoch, at_now) {
        assert!(
            from_now <= from_epoch,
            "{value:?}: {from_now:?} > {from_epoch:?}"
        );
    }
});

//! Feeds arbitrary bytes, read as JSON, to the token reply parsers.
//! An accepted lifetime must be usable: at least 1 s, and small enough that
//! adding it to `Instant::now()` cannot overflow.

#![no_main]

use std::time::{Duration, Instant};

use genesys_video_agent::auth::{parse_expires_in, parse_token_reply, refresh_margin};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// `parse_expires_in` caps lifetimes at ten years of 365 days.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };

    // The whole input as the `expires_in` value, and the input as a token
    // reply whose `expires_in` field is read.
    check_lifetime(parse_expires_in(Some(&value)).ok());
    check_lifetime(parse_expires_in(value.get("expires_in")).ok());

    let text = String::from_utf8_lossy(bytes);
    if let Ok((_token, lifetime)) = parse_token_reply(&text) {
        check_lifetime(Some(lifetime));
    }
});

fn check_lifetime(lifetime: Option<Duration>) {
    let Some(lifetime) = lifetime else {
        return;
    };
    assert!(
        lifetime >= Duration::from_secs(1),
        "lifetime {lifetime:?} under 1 s"
    );
    assert!(
        lifetime <= MAX_LIFETIME,
        "lifetime {lifetime:?} above the cap"
    );

    // The token cache adds the lifetime to `Instant::now()` and refreshes
    // `refresh_margin` before that.
    let margin = refresh_margin(lifetime);
    assert!(
        margin < lifetime,
        "margin {margin:?} not below lifetime {lifetime:?}"
    );
    let now = Instant::now();
    assert!(
        now.checked_add(lifetime).is_some(),
        "expiry overflows Instant"
    );
}

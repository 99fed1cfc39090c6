//! The subscription frame a client sends right after the handshake:
//! `{"eventType":"videoConferenceEvent","filter":{"state":["active","updating","recording"]}}`.

use serde_json::Value;

const EVENT_TYPE: &str = "videoConferenceEvent";

/// Parses and checks a subscription frame. The error describes what is invalid.
pub fn parse_subscription(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| format!("subscription is not valid JSON: {error}"))?;
    if value.get("eventType").and_then(Value::as_str) != Some(EVENT_TYPE) {
        return Err(format!("subscription eventType must be {EVENT_TYPE}"));
    }
    let states = value
        .get("filter")
        .and_then(|filter| filter.get("state"))
        .and_then(Value::as_array)
        .ok_or_else(|| "subscription needs filter.state, a list of states".to_string())?;
    if states.is_empty() {
        return Err("subscription filter.state is empty".to_string());
    }
    if !states
        .iter()
        .all(|state| state.as_str().is_some_and(|s| !s.is_empty()))
    {
        return Err("subscription filter.state must hold non-empty strings".to_string());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::parse_subscription;

    #[test]
    fn accepts_valid_subscription() {
        let text = r#"{"eventType":"videoConferenceEvent","filter":{"state":["active"]}}"#;
        assert!(parse_subscription(text).is_ok());
    }

    #[test]
    fn rejects_malformed_subscriptions() {
        let cases = [
            "not json",
            r#"{"eventType":"other","filter":{"state":["active"]}}"#,
            r#"{"eventType":"videoConferenceEvent"}"#,
            r#"{"eventType":"videoConferenceEvent","filter":{"state":[]}}"#,
            r#"{"eventType":"videoConferenceEvent","filter":{"state":[1]}}"#,
        ];
        for text in cases {
            assert!(parse_subscription(text).is_err(), "{text} accepted");
        }
    }
}

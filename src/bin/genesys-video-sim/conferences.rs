//! Conference state held by the simulated gateway, and the sequence-checked update.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::faults::ConflictFault;

/// Versions a racing writer stores above the request's `If-Match` version.
const RACE_LEAD: u64 = 5;

#[derive(Default)]
struct Conference {
    /// Stored version, 0 for a conference never updated.
    sequence: u64,
    /// Body of the last applied PUT.
    body: Option<Map<String, Value>>,
    codec: Option<String>,
    directive: Option<String>,
    /// PUT requests received for this conference, whatever their outcome.
    puts: u64,
    applied: u64,
}

/// A PUT body that passed validation.
pub struct Update {
    pub body: Map<String, Value>,
    pub codec: String,
    pub directive: String,
}

pub enum Outcome {
    /// The update was stored. Carries the conference as GET returns it.
    Applied(Value),
    /// The conference is at version `held`, which is not older than the request
    /// unless an injected lagging replica rejected it.
    Conflict { held: u64 },
}

#[derive(Default)]
pub struct Conferences {
    by_id: Mutex<HashMap<String, Conference>>,
}

impl Conferences {
    pub fn count_put(&self, id: &str) {
        self.by_id.lock().entry(id.to_string()).or_default().puts += 1;
    }

    /// Returns the conference as `GET` returns it. An unknown id is at version 0.
    pub fn view(&self, id: &str) -> Value {
        let by_id = self.by_id.lock();
        match by_id.get(id) {
            Some(conference) => conference_json(id, conference),
            None => json!({"id": id, "sequenceNumber": 0}),
        }
    }

    /// Stores `update` as version `sequence` if the stored version is lower.
    pub fn apply(
        &self,
        id: &str,
        sequence: u64,
        update: Update,
        fault: Option<ConflictFault>,
    ) -> Outcome {
        let mut by_id = self.by_id.lock();
        let conference = by_id.entry(id.to_string()).or_default();
        match fault {
            Some(ConflictFault::Race) => {
                conference.sequence = conference.sequence.max(sequence + RACE_LEAD);
            }
            Some(ConflictFault::Lag) => {
                return Outcome::Conflict {
                    held: conference.sequence,
                };
            }
            None => {}
        }
        if conference.sequence >= sequence {
            return Outcome::Conflict {
                held: conference.sequence,
            };
        }
        conference.sequence = sequence;
        conference.body = Some(update.body);
        conference.codec = Some(update.codec);
        conference.directive = Some(update.directive);
        conference.applied += 1;
        Outcome::Applied(conference_json(id, conference))
    }

    /// Returns every conference for `GET /_sim/conferences`.
    pub fn summary(&self) -> Value {
        let by_id = self.by_id.lock();
        let entries = by_id.iter().map(|(id, conference)| {
            let entry = json!({
                "sequenceNumber": conference.sequence,
                "codec": conference.codec,
                "directive": conference.directive,
                "puts": conference.puts,
                "applied": conference.applied,
            });
            (id.clone(), entry)
        });
        Value::Object(entries.collect())
    }
}

fn conference_json(id: &str, conference: &Conference) -> Value {
    let mut object = conference.body.clone().unwrap_or_default();
    object.insert("id".to_string(), Value::from(id));
    object.insert(
        "sequenceNumber".to_string(),
        Value::from(conference.sequence),
    );
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(codec: &str) -> Update {
        let body = json!({"mediaConfig": {"codec": codec}});
        Update {
            body: body.as_object().cloned().unwrap_or_default(),
            codec: codec.to_string(),
            directive: "start".to_string(),
        }
    }

    fn held(outcome: Outcome) -> Option<u64> {
        match outcome {
            Outcome::Applied(_) => None,
            Outcome::Conflict { held } => Some(held),
        }
    }

    #[test]
    fn applies_newer_rejects_same() {
        let conferences = Conferences::default();
        assert_eq!(held(conferences.apply("a", 3, update("vp9"), None)), None);
        assert_eq!(
            held(conferences.apply("a", 3, update("vp8"), None)),
            Some(3)
        );
        assert_eq!(
            held(conferences.apply("a", 2, update("vp8"), None)),
            Some(3)
        );
        assert_eq!(conferences.view("a")["mediaConfig"]["codec"], "vp9");
    }

    #[test]
    fn unknown_conference_holds_zero() {
        let view = Conferences::default().view("nobody");
        assert_eq!(view["sequenceNumber"], 0);
    }

    #[test]
    fn race_stores_newer_version() {
        let conferences = Conferences::default();
        let outcome = conferences.apply("a", 4, update("vp9"), Some(ConflictFault::Race));
        assert_eq!(held(outcome), Some(9));
        assert_eq!(conferences.view("a")["sequenceNumber"], 9);
    }

    #[test]
    fn lag_rejects_but_keeps_older_version() {
        let conferences = Conferences::default();
        let outcome = conferences.apply("a", 4, update("vp9"), Some(ConflictFault::Lag));
        assert_eq!(held(outcome), Some(0));
        assert_eq!(held(conferences.apply("a", 4, update("vp9"), None)), None);
    }
}

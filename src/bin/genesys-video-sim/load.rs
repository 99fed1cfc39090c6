//! Generated load: seeded `videoConferenceEvent` frames spread over many sessions.

use std::fmt::Write as _;

use tungstenite::Bytes;

use crate::rng::SplitMix64;

/// Shape of a generated load (`--events`, `--sessions`, `--seed`, `--invalid-every`).
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    pub events: u64,
    pub sessions: u64,
    pub seed: u64,
    /// Every K-th event gets `maxBitrate` 9000, which no gateway profile allows.
    /// 0 makes every event valid.
    pub invalid_every: u64,
}

const CODECS: [&str; 3] = ["vp8", "vp9", "h264"];
const ACTIONS: [&str; 3] = ["start", "stop", "pause"];
const STATES: [&str; 3] = ["active", "updating", "recording"];
const MAX_BITRATES: [u64; 2] = [4000, 8000];
/// Above the 8000 kbps `hd` ceiling, so the agent must reject it.
const INVALID_MAX_BITRATE: u64 = 9000;
const MAX_PARTICIPANTS: u64 = 6;
/// Each session draws its participants from this many user ids.
const USERS_PER_SESSION: u32 = 12;
const BITRATE_STEP: u64 = 50;

/// Produces the frames of a load one at a time, in a fixed order for a given seed.
pub struct LoadGenerator {
    spec: LoadSpec,
    rng: SplitMix64,
    produced: u64,
    /// Session order of the current round: every session once, shuffled.
    round: Vec<u32>,
    round_position: usize,
    /// Last sequence number sent per session.
    sequences: Vec<u64>,
}

impl LoadGenerator {
    pub fn new(spec: LoadSpec) -> Self {
        let sessions = usize::try_from(spec.sessions).unwrap_or(usize::MAX);
        Self {
            spec,
            rng: SplitMix64::new(spec.seed),
            produced: 0,
            round: (0..spec.sessions as u32).collect(),
            round_position: sessions,
            sequences: vec![0; sessions],
        }
    }

    pub fn total(&self) -> u64 {
        self.spec.events
    }

    pub fn remaining(&self) -> u64 {
        self.spec.events - self.produced
    }

    /// Returns the next frame, or `None` once all events are produced.
    pub fn next_frame(&mut self) -> Option<Bytes> {
        if self.produced >= self.spec.events {
            return None;
        }
        self.produced += 1;
        let session = self.next_session();
        let gap = self.rng.between(1, 3);
        self.sequences[session] += gap;
        let invalid =
            self.spec.invalid_every > 0 && self.produced.is_multiple_of(self.spec.invalid_every);
        Some(Bytes::from(self.event_json(session, invalid)))
    }

    /// Picks sessions round by round, each round a new random order of all sessions.
    fn next_session(&mut self) -> usize {
        if self.round_position >= self.round.len() {
            self.rng.shuffle(&mut self.round);
            self.round_position = 0;
        }
        let session = self.round[self.round_position] as usize;
        self.round_position += 1;
        session
    }

    fn event_json(&mut self, session: usize, invalid: bool) -> String {
        let max_bitrate = *self.rng.pick(&MAX_BITRATES);
        let state = *self.rng.pick(&STATES);
        let codec = *self.rng.pick(&CODECS);
        let action = *self.rng.pick(&ACTIONS);
        let participants = self.participants_json(session, max_bitrate);
        let sent_max_bitrate = if invalid {
            INVALID_MAX_BITRATE
        } else {
            max_bitrate
        };
        format!(
            concat!(
                r#"{{"eventType":"videoConferenceEvent","data":{{"sessionId":"{}","#,
                r#""state":"{}","sequenceNumber":{},"participants":[{}],"#,
                r#""recording":{{"action":"{}"}},"mediaConfig":{{"maxBitrate":{},"codec":"{}"}}}}}}"#
            ),
            session_id(session),
            state,
            self.sequences[session],
            participants,
            action,
            sent_max_bitrate,
            codec
        )
    }

    /// Builds 1 to 6 distinct participants whose allocations sum to at most `max_bitrate`.
    fn participants_json(&mut self, session: usize, max_bitrate: u64) -> String {
        let count = self.rng.between(1, MAX_PARTICIPANTS);
        let mut users: Vec<u32> = (1..=USERS_PER_SESSION).collect();
        self.rng.shuffle(&mut users);
        // Each allocation is at most max_bitrate / count, so the sum never exceeds max_bitrate.
        let steps_per_share = max_bitrate / count / BITRATE_STEP;
        let mut json = String::new();
        for (index, user) in users.iter().take(count as usize).enumerate() {
            let role = if index == 0 {
                "presenter"
            } else {
                "participant"
            };
            let allocation = self.rng.between(2, steps_per_share) * BITRATE_STEP;
            if index > 0 {
                json.push(',');
            }
            let _ = write!(
                json,
                r#"{{"userId":"sim-user-{:04}-{:02}","role":"{}","allocatedBitrateKbps":{}}}"#,
                session + 1,
                user,
                role,
                allocation
            );
        }
        json
    }
}

/// Returns the id of the session at `index`, such as `sim-session-0001` for 0.
pub fn session_id(index: usize) -> String {
    format!("sim-session-{:04}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashMap;

    fn spec(events: u64, sessions: u64, invalid_every: u64) -> LoadSpec {
        LoadSpec {
            events,
            sessions,
            seed: 42,
            invalid_every,
        }
    }

    fn frames(spec: LoadSpec) -> Vec<Value> {
        let mut generator = LoadGenerator::new(spec);
        std::iter::from_fn(|| generator.next_frame())
            .map(|frame| serde_json::from_slice(&frame).expect("generated frame is JSON"))
            .collect()
    }

    #[test]
    fn produces_requested_count() {
        assert_eq!(frames(spec(250, 7, 0)).len(), 250);
    }

    #[test]
    fn sequences_grow_per_session() {
        let mut last: HashMap<String, u64> = HashMap::new();
        for event in frames(spec(500, 9, 0)) {
            let data = &event["data"];
            let id = data["sessionId"].as_str().unwrap().to_string();
            let sequence = data["sequenceNumber"].as_u64().unwrap();
            let previous = last.insert(id, sequence).unwrap_or(0);
            assert!((previous + 1..=previous + 3).contains(&sequence));
        }
        assert_eq!(last.len(), 9);
    }

    #[test]
    fn allocations_fit_max_bitrate() {
        for event in frames(spec(500, 5, 0)) {
            let data = &event["data"];
            let max = data["mediaConfig"]["maxBitrate"].as_u64().unwrap();
            let participants = data["participants"].as_array().unwrap();
            let sum: u64 = participants
                .iter()
                .map(|p| p["allocatedBitrateKbps"].as_u64().unwrap())
                .sum();
            assert!((1..=6).contains(&participants.len()));
            assert!(sum <= max, "{sum} > {max}");
        }
    }

    #[test]
    fn invalid_every_marks_events() {
        let events = frames(spec(30, 4, 10));
        let invalid: Vec<usize> = (0..events.len())
            .filter(|&i| events[i]["data"]["mediaConfig"]["maxBitrate"] == 9000)
            .collect();
        assert_eq!(invalid, vec![9, 19, 29]);
    }

    #[test]
    fn same_seed_same_frames() {
        assert_eq!(frames(spec(50, 3, 0)), frames(spec(50, 3, 0)));
    }
}

//! Results computed outside the transaction (`Handler::prepare`), kept until `handle` records them, by message id.
//! A message may never reach `handle` (found in the inbox already, or its transaction could not begin and it comes
//! back later): entries are dropped after [`KEEP`], their claims with them (a later delivery claims again).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use shopbridge_proto::gateway as pb;

use super::{claims::Claim, results::Published};

/// How long a prepared result waits for its transaction.
const KEEP: Duration = Duration::from_secs(600);

/// What `prepare` found or computed for a message.
pub(super) enum Prepared {
    /// Answered before: its stored result is published again.
    AnswerAgain(Option<Vec<u8>>),
    /// Run now: the result, the events before it, and the claim held until it is recorded.
    Answer {
        result: Box<pb::CommandResult>,
        published: Vec<Published>,
        claim: Claim,
    },
}

#[derive(Default)]
pub(super) struct Pending(Mutex<HashMap<String, (Instant, Prepared)>>);

impl Pending {
    pub(super) fn put(&self, message_id: &str, prepared: Prepared) {
        let mut map = self.0.lock().unwrap();
        map.retain(|_, (at, _)| at.elapsed() < KEEP);
        map.insert(message_id.to_string(), (Instant::now(), prepared));
    }

    pub(super) fn has(&self, message_id: &str) -> bool {
        self.0.lock().unwrap().contains_key(message_id)
    }

    pub(super) fn take(&self, message_id: &str) -> Option<Prepared> {
        self.0.lock().unwrap().remove(message_id).map(|(_, p)| p)
    }
}

//! What the adapter has read so far about each customer and session, so
//! the facts it reports do not depend on which page, or which order of
//! pages, it is mapping.
//!
//! ccmessaging history is re-read with an overlap on every poll, and a page
//! holds only part of a session. Facts that `providers/ccmessaging.md`
//! defines over the whole history are kept here and folded in with the
//! order-free rules the page gives:
//! - the customer's `name` and `avatar_url`: from the customer's own items
//!   only, the newest by `sendTime` (then by `id`, so ties are decided the
//!   same way every time) that carries one;
//! - `assigned_at`: the earliest `TRANS2AGENT` seen for the session, never
//!   moved by a later one;
//! - `agent`: the sender of the newest `AGENT` item of the session;
//! - `closed_at`: the newest `DISCONNECT` (a session keyed by the user's
//!   day may hold several conversations).
//!
//! Memory is bounded: past [`MAX_ENTRIES`] customers or sessions, the half
//! seen longest ago is forgotten (an old session that is read again simply
//! relearns its facts from the page). After a restart the first overlap
//! window is all the adapter knows; the store keeps what it stored before.

use std::collections::HashMap;

use chat_core::{Participant, Role, SessionChange};
use chrono::{DateTime, Utc};

/// Most customers, and most sessions, remembered at once.
pub(crate) const MAX_ENTRIES: usize = 20_000;

/// A value and the item that said it, ordered by (`sendTime`, `id`).
#[derive(Debug, Clone, PartialEq)]
struct Stamped<T> {
    at: DateTime<Utc>,
    id: String,
    value: T,
}

impl<T> Stamped<T> {
    fn key(&self) -> (DateTime<Utc>, &str) {
        (self.at, self.id.as_str())
    }
}

/// Keeps `new` in `slot` when it is newer than what is there.
fn keep_newest<T>(slot: &mut Option<Stamped<T>>, new: Stamped<T>) {
    if slot.as_ref().is_none_or(|old| new.key() > old.key()) {
        *slot = Some(new);
    }
}

/// Keeps `new` in `slot` when it is older than what is there.
fn keep_oldest<T>(slot: &mut Option<Stamped<T>>, new: Stamped<T>) {
    if slot.as_ref().is_none_or(|old| new.key() < old.key()) {
        *slot = Some(new);
    }
}

#[derive(Debug, Default)]
struct CustomerFacts {
    name: Option<Stamped<String>>,
    avatar_url: Option<Stamped<String>>,
    last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct SessionFacts {
    assigned: Option<Stamped<()>>,
    closed: Option<Stamped<()>>,
    agent: Option<Stamped<Participant>>,
    last_seen: Option<DateTime<Utc>>,
}

/// One mapped item, as far as these facts are concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen<'a> {
    /// The item's `id`.
    pub id: &'a str,
    /// Its session key.
    pub session: &'a str,
    /// The customer whose history it is in.
    pub user_id: &'a str,
    /// `sendTime`.
    pub at: DateTime<Utc>,
    /// The sender's role.
    pub role: Role,
    /// `senderNickname`.
    pub name: Option<&'a str>,
    /// `senderAvatar`, already absolute.
    pub avatar_url: Option<&'a str>,
    /// Whether it is a `TRANS2AGENT`.
    pub transfer: bool,
    /// Whether it is a `DISCONNECT`.
    pub disconnect: bool,
}

impl Seen<'_> {
    /// `value` stamped with this item's time and id.
    fn stamp<T>(&self, value: T) -> Stamped<T> {
        Stamped {
            at: self.at,
            id: self.id.to_string(),
            value,
        }
    }
}

/// Facts over every page read so far.
#[derive(Debug, Default)]
pub(crate) struct Recall {
    customers: HashMap<String, CustomerFacts>,
    sessions: HashMap<String, SessionFacts>,
}

impl Recall {
    /// Folds one item in.
    pub(crate) fn learn(&mut self, item: Seen<'_>) {
        if item.role == Role::Customer {
            let customer = self.customers.entry(item.user_id.to_string()).or_default();
            customer.last_seen = customer.last_seen.max(Some(item.at));
            if let Some(name) = item.name {
                keep_newest(&mut customer.name, item.stamp(name.to_string()));
            }
            if let Some(avatar) = item.avatar_url {
                keep_newest(&mut customer.avatar_url, item.stamp(avatar.to_string()));
            }
        }
        let session = self.sessions.entry(item.session.to_string()).or_default();
        session.last_seen = session.last_seen.max(Some(item.at));
        if item.transfer {
            keep_oldest(&mut session.assigned, item.stamp(()));
        }
        if item.disconnect {
            keep_newest(&mut session.closed, item.stamp(()));
        }
        if item.role == Role::Agent && item.name.is_some() {
            let agent = Participant {
                external_id: item.name.map(str::to_string),
                name: item.name.map(str::to_string),
                avatar_url: item.avatar_url.map(str::to_string),
            };
            keep_newest(&mut session.agent, item.stamp(agent));
        }
        forget_oldest(&mut self.customers, |c| c.last_seen);
        forget_oldest(&mut self.sessions, |s| s.last_seen);
    }

    /// Writes the facts known for `change`'s session into it: the
    /// customer's name and avatar always; `assigned_at` and `agent` on the
    /// change that holds (or follows) the item that set them.
    pub(crate) fn apply(&self, change: &mut SessionChange, user_id: &str) {
        let newest_message = change.messages.iter().map(|m| m.sent_at).max();
        let session = &mut change.session;
        if let Some(customer) = self.customers.get(user_id) {
            let participant = session.customer.get_or_insert_with(Participant::default);
            participant.name = customer.name.as_ref().map(|s| s.value.clone());
            participant.avatar_url = customer.avatar_url.as_ref().map(|s| s.value.clone());
        }
        let Some(facts) = self.sessions.get(&session.external_id) else {
            return;
        };
        let reached = |at: DateTime<Utc>| newest_message.is_some_and(|n| n >= at);
        if let Some(assigned) = facts.assigned.as_ref().filter(|a| reached(a.at)) {
            session.assigned_at = Some(assigned.at);
        }
        // A session keyed by the user's day can hold several conversations,
        // each ending in a DISCONNECT: it closed at the newest one.
        if session.status == Some(chat_core::SessionStatus::Closed) {
            if let Some(closed) = facts.closed.as_ref() {
                session.closed_at = Some(closed.at);
            }
        }
        if let Some(agent) = facts.agent.as_ref().filter(|a| reached(a.at)) {
            session.agent = Some(agent.value.clone());
        }
    }
}

/// Past [`MAX_ENTRIES`], forgets the half of `map` seen longest ago.
fn forget_oldest<T>(map: &mut HashMap<String, T>, seen: impl Fn(&T) -> Option<DateTime<Utc>>) {
    if map.len() <= MAX_ENTRIES {
        return;
    }
    let mut times: Vec<Option<DateTime<Utc>>> = map.values().map(&seen).collect();
    times.sort_unstable();
    let cut = times[times.len() / 2];
    map.retain(|_, v| seen(v) > cut);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn seen<'a>(id: &'a str, secs: i64, role: Role, name: &'a str) -> Seen<'a> {
        Seen {
            id,
            session: "s1",
            user_id: "u1",
            at: Utc.timestamp_opt(secs, 0).unwrap(),
            role,
            name: Some(name),
            avatar_url: None,
            transfer: false,
            disconnect: false,
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let mut recall = Recall::default();
        for i in 0..(MAX_ENTRIES as i64 + 10) {
            let id = i.to_string();
            let mut item = seen(&id, i, Role::Agent, "a");
            item.session = &id;
            recall.learn(item);
        }
        assert!(recall.sessions.len() <= MAX_ENTRIES);
        assert!(recall
            .sessions
            .contains_key(&(MAX_ENTRIES as i64 + 9).to_string()));
    }

    #[test]
    fn the_newest_customer_item_names_the_customer_in_any_order() {
        let items = [
            seen("1", 10, Role::Customer, "old"),
            seen("2", 30, Role::Customer, "new"),
            seen("3", 40, Role::System, "系统"),
            seen("4", 20, Role::Customer, "middle"),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let mut recall = Recall::default();
            for i in order {
                recall.learn(items[i]);
            }
            let name = &recall.customers["u1"].name;
            assert_eq!(name.as_ref().map(|n| n.value.as_str()), Some("new"));
        }
    }
}

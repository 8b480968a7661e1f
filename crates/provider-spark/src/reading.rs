//! Every "our reading" of the Spark contract, in one place.
//!
//! The Spark seed leaves channels, versions, limits and error codes open; the
//! adapter, the simulator and the behaviour suite all follow the readings in
//! `shared/providers/spark.md`. Change a reading here and nowhere else.

use chat_core::{MessageKind, Role, SessionStatus};

/// Receive (long poll).
pub(crate) const PATH_QUERY: &str = "/message/query";
/// Send a message.
pub(crate) const PATH_SEND: &str = "/message/send";
/// The agent ends a session.
pub(crate) const PATH_CLOSE: &str = "/session/close";
/// The agent reopens a closed session.
pub(crate) const PATH_RESTART: &str = "/session/restart";
/// Hand a session to another agent.
pub(crate) const PATH_TRANSFER: &str = "/session/transfer";

/// Longest text a send may carry, in Unicode scalar values.
pub(crate) const MAX_TEXT_CHARS: usize = 2000;

/// `Acks` is the acknowledged message ids joined by this.
pub(crate) const ACK_SEPARATOR: &str = ",";

/// `ContentType` of a text message.
pub(crate) const CONTENT_TYPE_TEXT: &str = "0";
/// `ContentType` of an image message (`Content` is the URL).
pub(crate) const CONTENT_TYPE_IMAGE: &str = "1";

/// Event name given to a message whose `ContentType` we do not know; the
/// message keeps its `Content` as text and its raw JSON.
pub(crate) const UNKNOWN_CONTENT_EVENT: &str = "spark.unknown_content_type";

/// The session status an operation `Type` announces: 0 AddSession (active,
/// also reopens a closed session), 1 DelSession (ended). Unknown types leave
/// the status alone.
pub(crate) fn session_status(op_type: i64) -> Option<SessionStatus> {
    match op_type {
        0 => Some(SessionStatus::Open),
        1 => Some(SessionStatus::Closed),
        _ => None,
    }
}

/// The channel a `SessionType` names: 0 web, 1 wechat, 2 app; anything else
/// has no channel (the number stays in the session's raw JSON).
pub(crate) fn channel(session_type: i64) -> Option<&'static str> {
    match session_type {
        0 => Some("web"),
        1 => Some("wechat"),
        2 => Some("app"),
        _ => None,
    }
}

/// Who wrote a message, by its `Type`: 0 received from the customer (the
/// operation's `From*`), 1 sent by an agent (the operation's `To*`, also
/// echoes of sends). An unknown type is kept as a system message so nothing
/// is lost; its raw JSON tells what it was.
pub(crate) fn message_role(message_type: i64) -> Role {
    match message_type {
        0 => Role::Customer,
        1 => Role::Agent,
        _ => Role::System,
    }
}

/// The kind a `ContentType` names; `None` for types we do not know.
pub(crate) fn content_kind(content_type: &str) -> Option<MessageKind> {
    match content_type {
        CONTENT_TYPE_TEXT => Some(MessageKind::Text),
        CONTENT_TYPE_IMAGE => Some(MessageKind::Image),
        _ => None,
    }
}

/// The `ContentType` to send for a kind; `None` for kinds Spark cannot carry.
pub(crate) fn content_type_for(kind: MessageKind) -> Option<&'static str> {
    match kind {
        MessageKind::Text => Some(CONTENT_TYPE_TEXT),
        MessageKind::Image => Some(CONTENT_TYPE_IMAGE),
        _ => None,
    }
}

/// What a Spark `Code` means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeMeaning {
    /// 0: success.
    Ok,
    /// 401: bad credentials.
    Unauthorized,
    /// 1001 no such session or not active, 1002 target agent offline, 1003
    /// invalid parameter (also restart of an active session, wrong `ToId`),
    /// and every code we do not know: the action was refused.
    Rejected,
    /// 1004: the version is older than a week or unknown; restart in live mode.
    CursorExpired,
}

/// Reads a Spark `Code`.
pub(crate) fn code_meaning(code: i64) -> CodeMeaning {
    match code {
        0 => CodeMeaning::Ok,
        401 => CodeMeaning::Unauthorized,
        1004 => CodeMeaning::CursorExpired,
        _ => CodeMeaning::Rejected,
    }
}

/// The version to send as `LastVersion`: a non-empty version asks for the
/// history after that message, none (or empty) asks for live messages.
pub(crate) fn requested_version(version: Option<&str>) -> Option<&str> {
    version.filter(|v| !v.is_empty())
}

/// The version after an answer: a version is a message `Id`, so it is the
/// `Id` of the last message the answer delivered (in delivery order, not the
/// largest), or the version asked with when the answer carried none.
pub(crate) fn next_version(asked: Option<&str>, last_id_in_answer: Option<&str>) -> Option<String> {
    last_id_in_answer.or(asked).map(str::to_string)
}

/// History replay is over when a history answer has no operation at all.
pub(crate) fn caught_up(history_mode: bool, operation_count: usize) -> bool {
    history_mode && operation_count == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_last_delivered_message() {
        assert_eq!(next_version(None, None), None);
        assert_eq!(next_version(Some("m1"), None), Some("m1".into()));
        assert_eq!(next_version(Some("m1"), Some("m0")), Some("m0".into()));
        assert_eq!(requested_version(Some("")), None);
        assert!(caught_up(true, 0));
        assert!(!caught_up(false, 0));
        assert!(!caught_up(true, 1));
    }

    #[test]
    fn codes_sort_into_what_the_caller_does() {
        assert_eq!(code_meaning(0), CodeMeaning::Ok);
        assert_eq!(code_meaning(401), CodeMeaning::Unauthorized);
        for code in [1001, 1002, 1003, 9999, -1] {
            assert_eq!(code_meaning(code), CodeMeaning::Rejected);
        }
        assert_eq!(code_meaning(1004), CodeMeaning::CursorExpired);
    }
}

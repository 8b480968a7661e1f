//! Gateway-made identifiers: opaque to callers, time-ordered for the database.

/// A new id with a type prefix (`ses_…`, `msg_…`), so a pasted id says what
/// it is, and a UUIDv7 body, so new rows land at the end of their index.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_unique() {
        let a = new_id("ses");
        let b = new_id("ses");
        assert!(a.starts_with("ses_"));
        assert_ne!(a, b);
    }
}

//! provider-spark (in progress).

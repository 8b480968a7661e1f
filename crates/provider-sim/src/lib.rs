//! provider-sim (in progress).

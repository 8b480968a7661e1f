//! provider-kchat (in progress).

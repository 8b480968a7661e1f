//! provider-ccmessaging (in progress).

//! chat-gateway.

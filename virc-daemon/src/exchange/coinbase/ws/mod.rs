//! The WebSocket feed: message types and their parsing.

pub mod messages;

//! The WebSocket feed: message types and their parsing, and the live client.

pub mod client;
pub mod messages;
pub mod user;

//! Exchange connectors. Coinbase JSON types never leave their connector:
//! what comes out is virc-core's types.

pub mod coinbase;

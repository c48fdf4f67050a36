//! Authenticated node-to-node messages: the envelope of spec/fleet-replication.md §4, from
//! the sans-I/O core (`bkv_protocol::fleet_replication::rpc`), where it is implemented and
//! tested; re-exported here for the transport (`net.rs`) and the RPC handler.

pub use bkv_protocol::fleet_replication::rpc::{
    KeyDirectory, PURPOSE, RpcKind, RpcMessage, SignedRpc, check_reply, open, seal,
};

//! Asana webhooks: the receiver's handshake and signature checks, the hook store, the rules
//! that turn events into attaches, the jobs and their workers, and registration.

pub mod admin;
mod events;
mod hooks;
mod rules;
mod signature;
mod worker;

pub use events::{Event, EventBatch};
pub use hooks::{HandshakeRefused, HookId, HookStore, HookStoreError};
pub use rules::{Rule, Rules, RulesError};
pub use signature::verify_signature;
pub use worker::{EnqueueError, Jobs, spawn_workers};

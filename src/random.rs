//! Random identifiers for request ids and webhook hook ids.

use std::fmt::Write;
use std::hash::{BuildHasher, Hasher};

/// 32 random hex characters: two outputs of randomly seeded SipHash (std's `RandomState`),
/// unguessable enough for ids that are not secrets.
pub fn hex_id() -> String {
    let mut id = String::with_capacity(32);
    for _ in 0..2 {
        let value = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        // Writing to a String cannot fail.
        let _ = write!(id, "{value:016x}");
    }
    id
}

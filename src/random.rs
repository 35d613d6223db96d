//! Random identifiers for request ids and webhook hook ids.

use std::hash::{BuildHasher, Hasher};

/// 32 random hex characters: two outputs of randomly seeded SipHash (std's `RandomState`),
/// unguessable enough for ids that are not secrets.
pub fn hex_id() -> String {
    (0..2)
        .map(|_| {
            let value = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            format!("{value:016x}")
        })
        .collect()
}

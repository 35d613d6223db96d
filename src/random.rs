//! Random identifiers for request ids and webhook hook ids.

use std::hash::{BuildHasher, Hasher};

/// 32 random hex characters: two outputs of randomly seeded SipHash (std's `RandomState`),
/// unguessable enough for ids that are not secrets.
pub fn hex_id() -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for _ in 0..2 {
        let value = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        id.extend(
            (0..16)
                .rev()
                .map(|nibble| char::from(DIGITS[((value >> (nibble * 4)) & 0xf) as usize])),
        );
    }
    id
}

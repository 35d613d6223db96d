//! Random identifiers for request ids and webhook hook ids.

use std::hash::{BuildHasher, Hasher};

/// 32 random hex characters: two outputs of randomly seeded SipHash (std's `RandomState`),
/// unguessable enough for ids that are not secrets.
pub fn hex_id() -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for half in id.chunks_exact_mut(16) {
        let value = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        for (i, digit) in half.iter_mut().enumerate() {
            *digit = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
        }
    }
    id.iter().map(|&digit| char::from(digit)).collect()
}

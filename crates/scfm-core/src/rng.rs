//! SplitMix64: the small seeded generator behind scfm's own shuffles, splits and per-step
//! seeds (not the NumPy streams that reproduce upstream draws; those are in `scfm-tokenize`).

/// SplitMix64 (Steele, Lea & Flood 2014): fast, seeded, 64-bit state.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) (53 random bits).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (multiply-shift; `n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Advances the state by `steps` draws' worth without drawing (for derived seeds).
    pub fn skip(&mut self, steps: u64) {
        self.0 = self.0.wrapping_add(steps.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
}

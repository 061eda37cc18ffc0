//! The two NumPy random streams upstream code draws from, reproduced bit for bit:
//! the legacy global `np.random` (MT19937, `np.random.seed(int)`, `random_sample`) and
//! `np.random.default_rng(seed)` (`SeedSequence` → PCG64, `random()`).

/// NumPy's legacy MT19937 (`np.random.seed(seed)`; `np.random.rand`).
#[derive(Clone)]
pub struct NumpyLegacy {
    mt: [u32; 624],
    index: usize,
}

impl std::fmt::Debug for NumpyLegacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumpyLegacy").field("index", &self.index).finish_non_exhaustive()
    }
}

impl NumpyLegacy {
    /// `np.random.seed(seed)` for an integer seed (MT19937 `init_genrand`).
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Self { mt, index: 624 }
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
            let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.mt[i] = v;
        }
        self.index = 0;
    }

    /// The next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `np.random.random_sample()`: a double in [0, 1) from two outputs (53 bits).
    pub fn next_f64(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

/// `np.random.default_rng(seed)`, which the models draw from too, lives in `scfm-core`.
pub use scfm_core::NumpyPcg64;

//! SplitMix64: the small seeded generator behind scfm's own shuffles, splits and per-step
//! seeds; and NumPy's `default_rng` stream ([`NumpyPcg64`]), which upstream code draws from in
//! tokenizers (helical's scGPT ties) and models (FAVOR+ projections), reproduced bit for bit.
//! NumPy's legacy MT19937 is in `scfm-tokenize`, its only user.

/// SplitMix64 (Steele, Lea & Flood 2014): fast, seeded, 64-bit state.
///
/// Kept here rather than taken from `rand`: its stream decides saved results (splits, batch
/// orders, masks), so it must never change with a dependency's version, and it is 20 lines.
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

/// `np.random.default_rng(seed)`: PCG64 (XSL-RR) seeded through NumPy's `SeedSequence`.
#[derive(Debug, Clone)]
pub struct NumpyPcg64 {
    state: u128,
    inc: u128,
}

const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// NumPy's `SeedSequence(entropy).generate_state(n_words, uint32)` (no spawn key, pool of 4).
fn seed_sequence(entropy: &[u32], n_words: usize) -> Vec<u32> {
    const INIT_A: u32 = 0x43b0_d7e5;
    const MULT_A: u32 = 0x931e_8875;
    const INIT_B: u32 = 0x8b51_f9dd;
    const MULT_B: u32 = 0x58f3_8ded;
    const MIX_MULT_L: u32 = 0xca01_f9dd;
    const MIX_MULT_R: u32 = 0x4973_f715;
    let mut hash_const = INIT_A;
    let mut hashmix = |value: u32| {
        let mut v = value ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_const);
        v ^ (v >> 16)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> 16)
    };
    let mut pool = [0u32; 4];
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..4 {
        for dst in 0..4 {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    for &e in entropy.iter().skip(4) {
        for p in pool.iter_mut() {
            let h = hashmix(e);
            *p = mix(*p, h);
        }
    }
    let mut hash_const = INIT_B;
    (0..n_words)
        .map(|i| {
            let mut v = pool[i % 4] ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_B);
            v = v.wrapping_mul(hash_const);
            v ^ (v >> 16)
        })
        .collect()
}

impl NumpyPcg64 {
    /// `np.random.default_rng(seed)` for a seed below 2^32.
    pub fn new(seed: u32) -> Self {
        Self::from_entropy(&[seed])
    }

    /// `np.random.default_rng([w0, w1, …])`: a stream per `(seed, cell, …)` key, so that every
    /// cell's draws are independent of batch composition and thread count.
    pub fn from_entropy(entropy: &[u32]) -> Self {
        let w = seed_sequence(entropy, 8);
        let u64s: Vec<u64> = w.chunks_exact(2).map(|p| u64::from(p[0]) | (u64::from(p[1]) << 32)).collect();
        let initstate = (u128::from(u64s[0]) << 64) | u128::from(u64s[1]);
        let initseq = (u128::from(u64s[2]) << 64) | u128::from(u64s[3]);
        let mut g = Self { state: 0, inc: (initseq << 1) | 1 };
        g.step();
        g.state = g.state.wrapping_add(initstate);
        g.step();
        g
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        ((s >> 64) as u64 ^ s as u64).rotate_right((s >> 122) as u32)
    }

    /// `Generator.random()`: a double in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Partial Fisher–Yates: afterwards the first `min(k, len)` entries of `v` are a uniform
    /// sample without replacement (in draw order). Returns that prefix length.
    pub fn shuffle_prefix<T>(&mut self, v: &mut [T], k: usize) -> usize {
        let k = k.min(v.len());
        for i in 0..k {
            let j = i + self.below((v.len() - i) as u64) as usize;
            v.swap(i, j);
        }
        k
    }

    /// A uniform integer in `0..n` (Lemire's multiply-shift with rejection; `n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }
}

//! A radix sort for the per-cell kernels: ranking and binning sort about a thousand 128-bit
//! keys per cell by their high halves (float bits). At most four 8-bit LSD passes over the top 32
//! varying bits of the high halves — passes whose digit is the same for every key are skipped,
//! as the exponent bytes of similar floats and the zero mantissa bytes of integer counts — and a
//! stable finishing sort of the rare runs that agree in those 32 bits. Two to three times faster
//! than a comparison sort at these sizes.

/// Below this many items a comparison sort is cheaper.
const SMALL: usize = 64;

/// Reusable buffers of [`sort_by_high_stable`].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    items: Vec<u128>,
    counts: Vec<u32>,
}

fn high(k: u128) -> u64 {
    (k >> 64) as u64
}

/// Sorts `keys` ascending by their high 64 bits, **stably** (keys with equal high halves keep
/// their order); equal to `keys.sort_by_key(|k| k >> 64)`.
pub(crate) fn sort_by_high_stable(keys: &mut Vec<u128>, scratch: &mut Scratch) {
    let n = keys.len();
    if n < SMALL {
        keys.sort_by_key(|&k| high(k));
        return;
    }
    let (lo, hi) = keys.iter().fold((u64::MAX, 0), |(lo, hi), &k| (lo.min(high(k)), hi.max(high(k))));
    let span_bits = 64 - (hi - lo).leading_zeros();
    if span_bits == 0 {
        return;
    }
    // The top (at most) 32 varying bits, as offsets from the smallest key.
    let low = span_bits.saturating_sub(32);
    let prefix = |k: u128| ((high(k) - lo) >> low) as u32;
    let Scratch { items, counts } = scratch;
    counts.clear();
    counts.resize(4 * 256, 0);
    for &k in keys.iter() {
        let p = prefix(k);
        for d in 0..4 {
            counts[d * 256 + ((p >> (8 * d)) & 0xff) as usize] += 1;
        }
    }
    items.clear();
    items.resize(n, 0);
    for d in 0..4 {
        let c = &mut counts[d * 256..(d + 1) * 256];
        let digit = |k: u128| ((prefix(k) >> (8 * d)) & 0xff) as usize;
        if c[digit(keys[0])] as usize == n {
            continue;
        }
        let mut sum = 0;
        for x in c.iter_mut() {
            (*x, sum) = (sum, sum + *x);
        }
        for &k in keys.iter() {
            let slot = &mut c[digit(k)];
            items[*slot as usize] = k;
            *slot += 1;
        }
        std::mem::swap(keys, items);
    }
    if low > 0 {
        // Keys that agree in the top 32 bits but not below (rare: runs of one or two).
        let mut i = 0;
        while i < n {
            let p = prefix(keys[i]);
            let mut j = i + 1;
            while j < n && prefix(keys[j]) == p {
                j += 1;
            }
            if j - i > 1 {
                keys[i..j].sort_by_key(|&k| high(k));
            }
            i = j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::NumpyPcg64;

    #[test]
    fn equals_a_stable_sort_by_the_high_half() {
        let mut rng = NumpyPcg64::new(3);
        let mut scratch = Scratch::default();
        for n in [0, 1, 5, 63, 64, 65, 1000, 5000] {
            for spread in [1u64, 16, 1 << 20, 1 << 40, u64::MAX] {
                for skewed in [false, true] {
                    let keys: Vec<u128> = (0..n)
                        .map(|i| {
                            let h = rng.next_u64() % spread;
                            let h = if skewed && i % 10 != 0 { h >> 40 } else { h };
                            (u128::from(h) << 64) | (rng.next_u64() % 7) as u128
                        })
                        .collect();
                    let mut expected = keys.clone();
                    expected.sort_by_key(|&k| k >> 64);
                    let mut got = keys;
                    sort_by_high_stable(&mut got, &mut scratch);
                    assert_eq!(got, expected, "n = {n}, spread = {spread}, skewed = {skewed}");
                }
            }
        }
    }
}

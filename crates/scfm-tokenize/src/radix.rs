//! A radix argsort for the per-cell kernels: ranking and binning order about a thousand
//! 64-bit keys per cell (float bits, or order-preserving integers).
//!
//! Each position is packed into one `u64` below as many of its key's varying bits as fit
//! (offsets from the smallest key, without the low bits every key shares). Two 10-bit LSD
//! passes sort the top 20 of those bits; a pass whose digit is the same for every key is
//! skipped. Each pass counts and scatters the two halves of the items with their own bucket
//! offsets, side by side, so that two independent chains of counter updates run where one would
//! wait on each store. Runs that agree in the sorted bits (short, with about a thousand float
//! keys) are finished by the kept bits, and, where bits were cut off below those, by the full
//! keys. Integer-valued keys (scGPT's counts) vary in few bits and need no finishing.
//!
//! On Geneformer's keys this is about 1.7× faster than the previous version (four 8-bit passes
//! over 128-bit items) and several times faster than a comparison sort.

/// Below this many items a comparison sort is cheaper.
const SMALL: usize = 64;

/// Digit width: two passes of 2^10 buckets (the counts stay in L1 next to the items).
const DIGIT: u32 = 10;

/// Reusable buffers of [`argsort_stable`].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    items: Vec<u64>,
    spare: Vec<u64>,
    counts: Vec<u32>,
}

/// The positions of `keys` in ascending key order, **stably** (equal keys keep their positions'
/// order): equal to sorting `0..keys.len()` with `sort_by_key(|&i| keys[i])`.
pub(crate) fn argsort_stable<'s>(keys: &[u64], scratch: &'s mut Scratch) -> Sorted<'s> {
    let n = keys.len();
    let Scratch { items, spare, counts } = scratch;
    items.clear();
    if !(SMALL..=1 << 24).contains(&n) {
        items.extend(0..n as u64);
        items.sort_by_key(|&i| keys[i as usize]);
        return Sorted { items, mask: u64::MAX };
    }
    let pos_bits = 64 - (n as u64 - 1).leading_zeros();
    let mask = (1u64 << pos_bits) - 1;
    let k0 = keys[0];
    let (lo, hi, differ) =
        keys.iter().fold((u64::MAX, 0, 0), |(lo, hi, differ), &k| (lo.min(k), hi.max(k), differ | (k ^ k0)));
    if differ == 0 {
        items.extend(0..n as u64);
        return Sorted { items, mask };
    }
    // Offsets from `lo` vary in bits [tz, top): the low `tz` bits are the same in every key.
    // Items keep as many of the varying bits as fit above the position; the radix passes sort
    // by the top 20 of them.
    let tz = differ.trailing_zeros();
    let top = 64 - (hi - lo).leading_zeros();
    let cut = top.saturating_sub(64 - pos_bits).max(tz);
    let width = top - cut;
    items.extend(keys.iter().enumerate().map(|(i, &k)| ((k - lo) >> cut) << pos_bits | i as u64));
    let sorted_bits = width.min(2 * DIGIT);
    let low = pos_bits + width - sorted_bits;
    if spare.len() < n {
        spare.resize(n, 0);
    }
    let buckets = 1usize << DIGIT;
    let digit_mask = buckets as u64 - 1;
    let passes = sorted_bits.div_ceil(DIGIT) as usize;
    // Each pass counts and scatters the two halves of the items with their own bucket offsets
    // (the first half's before the second's in every bucket, so the pass stays stable), side by
    // side: two independent chains of counter updates where one would stall on the last.
    let half = n / 2;
    counts.clear();
    counts.resize(2 * buckets, 0);
    for d in 0..passes {
        let shift = low + DIGIT * d as u32;
        let digit = |it: u64| ((it >> shift) & digit_mask) as usize;
        let (first, second) = counts.split_at_mut(buckets);
        first.fill(0);
        second.fill(0);
        let (a, b) = items.split_at(half);
        for (&x, &y) in a.iter().zip(b) {
            first[digit(x)] += 1;
            second[digit(y)] += 1;
        }
        // An odd item out is the last one: it goes last into its bucket.
        let odd = (n % 2 == 1).then(|| items[n - 1]);
        if let Some(it) = odd {
            second[digit(it)] += 1;
        }
        let d0 = digit(items[0]);
        if (first[d0] + second[d0]) as usize == n {
            continue;
        }
        let mut sum = 0;
        for (x, y) in first.iter_mut().zip(second.iter_mut()) {
            (*x, *y, sum) = (sum, sum + *x, sum + *x + *y);
        }
        let out = &mut spare[..n];
        for (&x, &y) in a.iter().zip(b) {
            let slot = &mut first[digit(x)];
            out[*slot as usize] = x;
            *slot += 1;
            let slot = &mut second[digit(y)];
            out[*slot as usize] = y;
            *slot += 1;
        }
        if let Some(it) = odd {
            out[second[digit(it)] as usize] = it;
        }
        std::mem::swap(items, spare);
        items.truncate(n);
    }
    // When every kept bit was sorted, the kept bits are all the varying ones (`cut == tz`: at
    // most 20 bits vary, which always fit): nothing is left to finish.
    debug_assert!(low > pos_bits || cut == tz);
    if low > pos_bits {
        // Runs that agree in the sorted bits (short with about a thousand keys) are in position
        // order; sort them by the kept key bits, then position (items are distinct). Where bits
        // below the kept ones differ too (`cut > tz`), items equal in all kept bits (rarer
        // still) are finished by their full keys, stably.
        for_each_run(items, low, |run| {
            run.sort_unstable();
            if cut > tz {
                for_each_run(run, pos_bits, |tied| tied.sort_by_key(|&it| keys[(it & mask) as usize]));
            }
        });
    }
    Sorted { items, mask }
}

/// Calls `f` on each run of two or more consecutive `items` that agree above bit `shift`.
fn for_each_run(items: &mut [u64], shift: u32, mut f: impl FnMut(&mut [u64])) {
    let n = items.len();
    let mut i = 0;
    while i + 1 < n {
        if (items[i] ^ items[i + 1]) >> shift != 0 {
            i += 1;
            continue;
        }
        let run = items[i] >> shift;
        let mut j = i + 2;
        while j < n && items[j] >> shift == run {
            j += 1;
        }
        f(&mut items[i..j]);
        i = j;
    }
}

/// The result of [`argsort_stable`]: positions in ascending key order.
pub(crate) struct Sorted<'s> {
    items: &'s [u64],
    mask: u64,
}

impl Sorted<'_> {
    /// The positions, in ascending key order.
    pub(crate) fn positions(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.items.iter().map(|&it| (it & self.mask) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::NumpyPcg64;

    #[test]
    fn equals_a_stable_sort_by_key() {
        let mut rng = NumpyPcg64::new(3);
        let mut scratch = Scratch::default();
        for n in [0, 1, 5, 63, 64, 65, 1000, 5000, 70_000] {
            for spread in [1u64, 16, 1 << 20, 1 << 40, 1 << 60, u64::MAX] {
                for skewed in [false, true] {
                    let keys: Vec<u64> = (0..n)
                        .map(|i| {
                            let h = rng.next_u64() % spread;
                            if skewed && i % 10 != 0 { h >> 40 } else { h }
                        })
                        .collect();
                    // The same keys with common low bits (as integer counts' float bits have).
                    let shifted: Vec<u64> = keys.iter().map(|k| k << 7 | 0x55).collect();
                    for keys in [keys, shifted] {
                        let mut expected: Vec<usize> = (0..n).collect();
                        expected.sort_by_key(|&i| keys[i]);
                        let got: Vec<usize> = argsort_stable(&keys, &mut scratch).positions().collect();
                        assert_eq!(got, expected, "n = {n}, spread = {spread}, skewed = {skewed}");
                    }
                }
            }
        }
    }
}

use scfm_core::SplitMix64;

/// A seed derived from a base seed, a stream (what it is for) and a counter (epoch, step),
/// independent of call order.
pub fn derive_seed(seed: u64, stream: u64, counter: u64) -> u64 {
    let mut r = SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.skip(counter);
    r.next_u64()
}

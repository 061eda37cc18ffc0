//! The masking schemes of the four pretraining objectives, each deterministic under a seed.
//!
//! Every call takes a `cell` key: the random stream is `default_rng([seed, cell_lo, cell_hi])`
//! (see [`NumpyPcg64::from_entropy`]), so a cell is masked the same way whatever batch, chunk or
//! thread it lands in.

use crate::rng::NumpyPcg64;

fn stream(seed: u32, cell: u64) -> NumpyPcg64 {
    NumpyPcg64::from_entropy(&[seed, cell as u32, (cell >> 32) as u32])
}

/// Label value of positions that do not count in the loss (PyTorch's `ignore_index` default).
pub const IGNORE: i64 = -100;

/// Geneformer's masked-LM corruption (Hugging Face `DataCollatorForLanguageModeling`, MODELS.md
/// §2.8): every token that is not special is selected with probability `probability`; selected
/// tokens become `<mask>` (80 %), a uniformly random token id of the whole vocabulary (10 %), or
/// stay (10 %). Labels hold the original id at selected positions and [`IGNORE`] elsewhere.
#[derive(Debug, Clone)]
pub struct GeneformerMlm {
    /// Selection probability (upstream 0.15).
    pub probability: f64,
    /// The `<mask>` id.
    pub mask_id: u32,
    /// Ids never selected (upstream registers only `<pad>` and `<mask>`).
    pub special: Vec<u32>,
    /// Random replacements are drawn from `0..vocab_size`.
    pub vocab_size: u32,
    /// Seed.
    pub seed: u32,
}

impl GeneformerMlm {
    /// Upstream's settings for a vocabulary with `<pad>` = 0 and `<mask>` = 1.
    pub fn new(vocab_size: u32, seed: u32) -> Self {
        Self { probability: 0.15, mask_id: 1, special: vec![0, 1], vocab_size, seed }
    }

    /// `(corrupted input_ids, labels)` for one cell.
    pub fn mask(&self, input_ids: &[u32], cell: u64) -> (Vec<u32>, Vec<i64>) {
        let mut rng = stream(self.seed, cell);
        let mut ids = input_ids.to_vec();
        let mut labels = vec![IGNORE; ids.len()];
        for (id, label) in ids.iter_mut().zip(labels.iter_mut()) {
            let selected = rng.next_f64() < self.probability;
            if !selected || self.special.contains(id) {
                continue;
            }
            *label = i64::from(*id);
            let r = rng.next_f64();
            if r < 0.8 {
                *id = self.mask_id;
            } else if r < 0.9 {
                *id = rng.below(u64::from(self.vocab_size)) as u32;
            }
        }
        (ids, labels)
    }
}

/// scBERT's `data_mask` (MODELS.md §1.7): among tokens not in `excluded` ({0, 6}: zero and low
/// bins, the trailing slot, `[MASK]`), exactly `ceil(ratio · #candidates)` positions are chosen
/// uniformly; each becomes `[MASK]` with probability `replace_probability`, else stays. Labels are
/// the original token at chosen positions and `[MASK]` (the ignore index) elsewhere.
#[derive(Debug, Clone)]
pub struct ScBertMask {
    /// Fraction of candidates chosen (upstream 0.15).
    pub ratio: f64,
    /// Probability that a chosen token is replaced (upstream 0.9).
    pub replace_probability: f64,
    /// `[MASK]` and ignore label (upstream 6).
    pub mask_token: u8,
    /// Tokens that are never chosen.
    pub excluded: Vec<u8>,
    /// Seed.
    pub seed: u32,
}

impl ScBertMask {
    /// Upstream's settings.
    pub fn new(seed: u32) -> Self {
        Self { ratio: 0.15, replace_probability: 0.9, mask_token: 6, excluded: vec![0, 6], seed }
    }

    /// `(corrupted tokens, labels)` for one cell.
    pub fn mask(&self, tokens: &[u8], cell: u64) -> (Vec<u8>, Vec<u8>) {
        let mut rng = stream(self.seed, cell);
        let mut candidates: Vec<usize> = (0..tokens.len()).filter(|&i| !self.excluded.contains(&tokens[i])).collect();
        let want = (self.ratio * candidates.len() as f64).ceil() as usize;
        let k = rng.shuffle_prefix(&mut candidates, want);
        let mut out = tokens.to_vec();
        let mut labels = vec![self.mask_token; tokens.len()];
        for &p in &candidates[..k] {
            labels[p] = tokens[p];
            if rng.next_f64() < self.replace_probability {
                out[p] = self.mask_token;
            }
        }
        (out, labels)
    }
}

/// scGPT's value masking for MLM (`random_mask_value`, MODELS.md §3.5): exactly
/// `floor(n · ratio)` of the positions whose value is not `pad_value` (the `<cls>` slot
/// included, as upstream) get `mask_value`.
#[derive(Debug, Clone)]
pub struct ScGptValueMask {
    /// Fraction masked (upstream tutorials: 0.4).
    pub ratio: f64,
    /// Value written at masked positions (upstream −1).
    pub mask_value: f32,
    /// Padding value, never masked (upstream −2).
    pub pad_value: f32,
    /// Seed.
    pub seed: u32,
}

impl ScGptValueMask {
    /// Upstream's tutorial settings with `ratio`.
    pub fn new(ratio: f64, seed: u32) -> Self {
        Self { ratio, mask_value: -1.0, pad_value: -2.0, seed }
    }

    /// The masked values and the masked positions (ascending) of one cell.
    pub fn mask(&self, values: &[f32], cell: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = stream(self.seed, cell);
        let mut pool: Vec<usize> = (0..values.len()).filter(|&i| values[i] != self.pad_value).collect();
        let want = (pool.len() as f64 * self.ratio) as usize;
        let k = rng.shuffle_prefix(&mut pool, want);
        let mut chosen = pool[..k].to_vec();
        chosen.sort_unstable();
        let mut out = values.to_vec();
        for &p in &chosen {
            out[p] = self.mask_value;
        }
        (out, chosen)
    }

    /// scGPT's generative split (MODELS.md §3.9): of the positions after `<cls>` (index 0),
    /// `round(gen_prob · n)` become generated genes, the rest (and `<cls>`) the gene prompt.
    /// Returns `(prompt positions, generated positions)`, both ascending.
    pub fn generative_split(&self, n_positions: usize, gen_prob: f64, cell: u64) -> (Vec<usize>, Vec<usize>) {
        let mut rng = stream(self.seed ^ 0x9e37_79b9, cell);
        let mut genes: Vec<usize> = (1..n_positions).collect();
        let want = (gen_prob * genes.len() as f64).round() as usize;
        let k = rng.shuffle_prefix(&mut genes, want);
        let mut generated = genes[..k].to_vec();
        generated.sort_unstable();
        let mut prompt: Vec<usize> =
            std::iter::once(0).filter(|_| n_positions > 0).chain(genes[k..].iter().copied()).collect();
        prompt.sort_unstable();
        (prompt, generated)
    }
}

/// xTrimoGene's value masking (MODELS.md §4.10, from the released config): non-zero genes are
/// selected with probability 0.3, zero genes with 0.03; a selected value becomes the mask value
/// (80 %), the value of a uniformly chosen expressed gene of the same cell (10 %; the released
/// code does not say how "random" is drawn, this is scfm's documented choice), or stays (10 %).
#[derive(Debug, Clone)]
pub struct XTrimoGeneMask {
    /// Selection probability of expressed genes.
    pub nonzero_probability: f64,
    /// Selection probability of unexpressed genes.
    pub zero_probability: f64,
    /// The mask value (upstream's mask token id 102, used as a value).
    pub mask_value: f64,
    /// Seed.
    pub seed: u32,
}

impl XTrimoGeneMask {
    /// The released configuration.
    pub fn new(seed: u32) -> Self {
        Self { nonzero_probability: 0.3, zero_probability: 0.03, mask_value: 102.0, seed }
    }

    /// The corrupted dense gene values of one cell and the selected positions (ascending).
    pub fn mask(&self, values: &[f64], cell: u64) -> (Vec<f64>, Vec<usize>) {
        let mut rng = stream(self.seed, cell);
        let expressed: Vec<f64> = values.iter().copied().filter(|&v| v != 0.0).collect();
        let mut out = values.to_vec();
        let mut selected = vec![];
        for (i, v) in out.iter_mut().enumerate() {
            let p = if *v != 0.0 { self.nonzero_probability } else { self.zero_probability };
            if rng.next_f64() >= p {
                continue;
            }
            selected.push(i);
            let r = rng.next_f64();
            if r < 0.8 {
                *v = self.mask_value;
            } else if r < 0.9 && !expressed.is_empty() {
                *v = expressed[rng.below(expressed.len() as u64) as usize];
            }
        }
        (out, selected)
    }
}

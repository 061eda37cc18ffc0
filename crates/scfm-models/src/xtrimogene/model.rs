use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::activation::{leaky_relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::XTrimoGeneConfig;
use crate::layers::{EncoderLayer, PerformerLayer, as_dtype, full_bias, key_padding_bias};
use crate::{Pooling, UnsupportedPooling};

/// `AutoDiscretizationEmbedding2`: each value `v` becomes `softmax(α·h + mlp2(h)) · E` with
/// `h = LeakyReLU₀.₁(mlp(v))` and `E` the `bin_num` bin embeddings; values exactly equal to the
/// mask (102) or pad (103) id take the `emb_mask` / `emb_pad` vector instead.
#[derive(Module, Debug)]
pub struct AutoDiscretization<B: Backend> {
    pub mlp: Linear<B>,
    pub mlp2: Linear<B>,
    /// The bin embeddings `[bin_num, dim]`.
    pub emb: Embedding<B>,
    pub emb_mask: Embedding<B>,
    pub emb_pad: Embedding<B>,
    pub bin_alpha: f32,
    pub mask_value: f32,
    pub pad_value: f32,
}

impl<B: Backend> AutoDiscretization<B> {
    /// # Shapes
    /// - `values`: `[batch, len]`
    /// - output: `[batch, len, dim]`
    pub fn forward(&self, values: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, n] = values.dims();
        let d = self.emb.weight.dims()[1];
        let x = as_dtype(values.clone(), self.mlp.weight.val().dtype());
        let h = leaky_relu(self.mlp.forward(x.unsqueeze_dim::<3>(2)), 0.1);
        let z = h.clone().mul_scalar(self.bin_alpha) + self.mlp2.forward(h);
        let e = softmax(z, 2).matmul(self.emb.weight.val().unsqueeze::<3>());
        let special = |value: f32, table: &Embedding<B>, e: Tensor<B, 3>| {
            let hit = values.clone().equal_elem(value).unsqueeze_dim::<3>(2).expand([b, n, d]);
            e.mask_where(hit, table.weight.val().reshape([1, 1, d]).expand([b, n, d]))
        };
        let e = special(self.mask_value, &self.emb_mask, e);
        special(self.pad_value, &self.emb_pad, e)
    }
}

/// The encoder's input for a batch of cells (upstream `gatherData` / `getEncoerDecoderData`):
/// per cell the positions whose value is > 0, in ascending order (T and S included when > 0),
/// right-padded to the longest cell with the pad value and position `seq_len`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderInput {
    /// Cells.
    pub batch: usize,
    /// All positions per cell (`seq_len`).
    pub seq_len: usize,
    /// Selected positions of the longest cell.
    pub width: usize,
    /// `[batch, width]` selected values, padding = the pad value.
    pub values: Vec<f32>,
    /// `[batch, width]` their positions, padding = `seq_len`.
    pub positions: Vec<i64>,
    /// Selected positions per cell.
    pub lengths: Vec<usize>,
    /// `[batch, seq_len]` every value (the decoder's input).
    pub full: Vec<f32>,
}

impl EncoderInput {
    /// Gathers the expressed positions of each cell (`seq_len` values each: genes, T, S).
    ///
    /// # Panics
    /// When a cell does not have `seq_len` values.
    pub fn gather(cells: &[&[f32]], seq_len: usize, pad_value: f32) -> Self {
        let selected: Vec<(Vec<u32>, Vec<f32>)> = cells
            .iter()
            .map(|c| {
                assert_eq!(c.len(), seq_len, "a cell needs seq_len values");
                (0..seq_len).filter(|&p| c[p] > 0.0).map(|p| (p as u32, c[p])).unzip()
            })
            .collect();
        let refs: Vec<(&[u32], &[f32])> = selected.iter().map(|(p, v)| (p.as_slice(), v.as_slice())).collect();
        let mut input = Self::from_selected(&refs, seq_len, pad_value);
        input.full = cells.concat();
        input
    }

    /// The input of cells given by their selected positions (ascending) and values, as
    /// `scfm_tokenize::xtrimogene` produces them; every other position's value is 0.
    ///
    /// # Panics
    /// When a cell's positions and values differ in length or a position is ≥ `seq_len`.
    pub fn from_selected(cells: &[(&[u32], &[f32])], seq_len: usize, pad_value: f32) -> Self {
        let width = cells.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
        let b = cells.len();
        let (mut values, mut positions) = (vec![pad_value; b * width], vec![seq_len as i64; b * width]);
        let mut full = vec![0f32; b * seq_len];
        for (r, (pos, val)) in cells.iter().enumerate() {
            assert_eq!(pos.len(), val.len(), "positions and values of a cell");
            for (j, (&p, &v)) in pos.iter().zip(val.iter()).enumerate() {
                assert!((p as usize) < seq_len, "position {p} outside 0..{seq_len}");
                values[r * width + j] = v;
                positions[r * width + j] = i64::from(p);
                full[r * seq_len + p as usize] = v;
            }
        }
        Self {
            batch: b,
            seq_len,
            width,
            values,
            positions,
            lengths: cells.iter().map(|(p, _)| p.len()).collect(),
            full,
        }
    }

    /// The padding mask `[batch, width]` (true = padding).
    pub fn padded(&self) -> Vec<bool> {
        self.lengths.iter().flat_map(|&l| (0..self.width).map(move |j| j >= l)).collect()
    }

    /// `(values, positions, padded)` as tensors for [`XTrimoGene::encode`].
    pub fn tensors<B: Backend>(&self, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
        let shape = [self.batch, self.width];
        (
            Tensor::from_data(TensorData::new(self.values.clone(), shape), device),
            Tensor::from_data(TensorData::new(self.positions.clone(), shape), device),
            Tensor::from_data(TensorData::new(self.padded(), shape), device),
        )
    }
}

/// scFoundation's `MaeAutobin` (inference path).
#[derive(Module, Debug)]
pub struct XTrimoGene<B: Backend> {
    pub token_emb: AutoDiscretization<B>,
    /// `[max_len + 1, d_model]`; the last row is the padding position.
    pub pos_emb: Embedding<B>,
    pub encoder: Vec<EncoderLayer<B>>,
    pub encoder_norm: LayerNorm<B>,
    pub decoder_embed: Linear<B>,
    pub decoder: Vec<PerformerLayer<B>>,
    pub decoder_norm: LayerNorm<B>,
    pub norm: LayerNorm<B>,
    pub to_final: Linear<B>,
    #[module(skip)]
    pub config: XTrimoGeneConfig,
}

impl<B: Backend> XTrimoGene<B> {
    /// The encoder over the selected positions, final LayerNorm included.
    ///
    /// # Shapes
    /// - `values`, `positions`, `padded`: `[batch, width]` ([`EncoderInput::tensors`])
    /// - output: `[batch, width, d_model]`
    pub fn encode(
        &self,
        values: Tensor<B, 2>,
        positions: Tensor<B, 2, Int>,
        padded: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        let x = self.token_emb.forward(values) + self.pos_emb.forward(positions);
        let bias = full_bias(key_padding_bias(padded, x.dtype()));
        let x = self.encoder.iter().fold(x, |x, layer| layer.forward(x, Some(bias.clone()), false).0);
        self.encoder_norm.forward(x)
    }

    /// The decoder over every position: the encoder outputs scattered back into the selected
    /// positions, the value embeddings elsewhere, plus positions → `decoder_embed` → Performer
    /// → `decoder.norm` → `norm`. These are the gene embeddings of `output_type=gene`.
    ///
    /// # Shapes
    /// - `encoded`: `[batch, width, d_model]` ([`Self::encode`] of `input`)
    /// - output: `[batch, seq_len, decoder_dim]`
    pub fn decode(&self, encoded: Tensor<B, 3>, input: &EncoderInput) -> Tensor<B, 3> {
        let [b, k, d] = encoded.dims();
        let n = input.seq_len;
        let device = encoded.device();
        let full = Tensor::<B, 2>::from_data(TensorData::new(input.full.clone(), [b, n]), &device);
        let embedded = self.token_emb.forward(full);
        // Row i of [encoded; embedded] (flattened) feeds position i: the j-th selected position
        // of cell r takes encoded row r·k + j, every other position its own value embedding.
        let mut index: Vec<i64> = (0..b * n).map(|i| (b * k + i) as i64).collect();
        for r in 0..b {
            for j in 0..input.lengths[r] {
                let p = input.positions[r * input.width + j] as usize;
                index[r * n + p] = (r * k + j) as i64;
            }
        }
        let rows = Tensor::cat(vec![encoded.reshape([b * k, d]), embedded.reshape([b * n, d])], 0);
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [b * n]), &device);
        let x = rows.select(0, index).reshape([b, n, d]);
        let x = x + self.pos_emb.weight.val().narrow(0, 0, n).unsqueeze::<3>();
        let x = self.decoder_embed.forward(x);
        let x = self.decoder.iter().fold(x, |x, layer| layer.forward(x));
        self.norm.forward(self.decoder_norm.forward(x))
    }

    /// Predicted expression of every position (`output_type=gene_expression`).
    ///
    /// # Shapes
    /// - `decoded`: `[batch, seq_len, decoder_dim]`
    /// - output: `[batch, seq_len]`
    pub fn expression(&self, decoded: Tensor<B, 3>) -> Tensor<B, 2> {
        self.to_final.forward(decoded).squeeze_dim(2)
    }

    /// Cell embeddings from the encoder output, as `get_embedding.py` pools one cell
    /// (`pool_type`: [`Pooling::All`] or [`Pooling::Max`]), with the padding of a batch left
    /// out. A cell with fewer than three selected positions (no expressed gene besides T and S)
    /// gets a NaN row under [`Pooling::All`].
    ///
    /// # Shapes
    /// - `encoded`: `[batch, width, d_model]`
    /// - `lengths`: selected positions per cell ([`EncoderInput::lengths`])
    /// - output: `[batch, 4 · d_model]` ([`Pooling::All`]) or `[batch, d_model]`
    ///
    /// # Errors
    /// [`UnsupportedPooling`] for the other poolings.
    pub fn cell_embeddings(
        encoded: Tensor<B, 3>,
        lengths: &[usize],
        pooling: Pooling,
    ) -> Result<Tensor<B, 2>, UnsupportedPooling> {
        UnsupportedPooling::check(<Self as crate::CellModel<B>>::NAME, pooling, Self::POOLINGS)?;
        let [_, _, d] = encoded.dims();
        let device = encoded.device();
        let rows = lengths
            .iter()
            .enumerate()
            .map(|(r, &len)| {
                let h = encoded.clone().slice([r..r + 1, 0..len.max(1)]).reshape([len.max(1), d]);
                if pooling == Pooling::Max {
                    h.max_dim(0)
                } else if len < 3 {
                    Tensor::full([1, 4 * d], f32::NAN, (&device, encoded.dtype()))
                } else {
                    let genes = h.clone().narrow(0, 0, len - 2);
                    let s = h.clone().narrow(0, len - 1, 1);
                    let t = h.narrow(0, len - 2, 1);
                    Tensor::cat(vec![s, t, genes.clone().max_dim(0), genes.mean_dim(0)], 1)
                }
            })
            .collect();
        Ok(Tensor::cat(rows, 0))
    }

    /// The poolings of [`Self::cell_embeddings`].
    pub const POOLINGS: &'static [Pooling] = &[Pooling::All, Pooling::Max];
}

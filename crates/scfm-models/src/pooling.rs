//! [`Pooling`]: how a model's per-token states become one vector per cell, the same enum for
//! every family's embeddings and classification heads.

use serde::{Deserialize, Serialize};

/// How a cell's token states are pooled into one vector. Each model supports some of them
/// (its `POOLINGS`); asking another one is an [`UnsupportedPooling`] error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over the cell's real (non-padding) tokens: Geneformer's `emb_mode="cell"`
    /// (without `<cls>`/`<eos>` in V2), the mean-pooled classification head.
    Mean,
    /// The first position, `<cls>`: scGPT's `cell_emb_style="cls"`, Geneformer V2's
    /// `emb_mode="cls"`, the head of `BertForSequenceClassification` (which reports of
    /// 2026-12-07 and before call `first`).
    #[serde(alias = "first")]
    #[cfg_attr(feature = "clap", value(alias = "first"))]
    Cls,
    /// xTrimoGene's `pool_type="all"`: S and T token states, max and mean over the expressed
    /// genes, concatenated (4 × width).
    All,
    /// xTrimoGene's `pool_type="max"`: the element-wise max over every encoder position.
    Max,
}

/// A pooling the model does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{model} does not pool by {pooling:?}; it pools by {supported:?}")]
pub struct UnsupportedPooling {
    /// The model (`Geneformer`, …).
    pub model: &'static str,
    /// What was asked for.
    pub pooling: Pooling,
    /// What it supports.
    pub supported: &'static [Pooling],
}

impl UnsupportedPooling {
    /// `Ok` when `supported` holds `pooling`.
    pub(crate) fn check(model: &'static str, pooling: Pooling, supported: &'static [Pooling]) -> Result<(), Self> {
        if supported.contains(&pooling) { Ok(()) } else { Err(Self { model, pooling, supported }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_reports_first_reads_as_cls() {
        let p: Pooling = serde_json::from_str("\"first\"").unwrap();
        assert_eq!(p, Pooling::Cls);
        assert_eq!(serde_json::to_string(&Pooling::Cls).unwrap(), "\"cls\"");
        let err = UnsupportedPooling::check("Geneformer", Pooling::All, &[Pooling::Mean, Pooling::Cls]).unwrap_err();
        assert!(err.to_string().contains("Geneformer") && err.to_string().contains("All"), "{err}");
    }
}

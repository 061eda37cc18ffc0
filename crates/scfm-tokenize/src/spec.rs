//! [`TokenizerSpec`]: which tokenizer made a dataset, with its files and settings, saved next
//! to every dataset (`scfm_tokenizer.json`, key `spec`) and compared as a value, not as JSON
//! text.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How scGPT breaks ties between equal quantile edges (see [`crate::scgpt::TieBreak`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum ScGptTies {
    /// Upstream's NumPy legacy stream after `np.random.seed(seed)`, cells in file order.
    NumpyLegacy,
    /// helical's `default_rng(42)` per cell.
    Helical,
    /// The highest candidate bin (no randomness).
    Deterministic,
}

/// The files Geneformer's tokenizer reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneformerDictionaryFiles {
    /// `token_dictionary_gc*.pkl`.
    pub token_dictionary: PathBuf,
    /// `gene_median_dictionary_gc*.pkl`.
    pub gene_medians: PathBuf,
    /// `ensembl_mapping_dict_gc*.pkl`.
    pub ensembl_mapping: PathBuf,
    /// `gene_name_id_dict_gc*.pkl`, for V1 on symbol inputs.
    pub gene_name_id: Option<PathBuf>,
}

/// A tokenizer and its settings: one variant per scheme, tagged by the scheme's name
/// (`{"scheme": "geneformer-v2", …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme")]
#[non_exhaustive]
pub enum TokenizerSpec {
    /// Geneformer V1 rank values (gc30M dictionaries).
    #[serde(rename = "geneformer-v1")]
    GeneformerV1 {
        /// The dictionaries.
        dictionaries: GeneformerDictionaryFiles,
        /// Tokens per cell.
        model_input_size: usize,
    },
    /// Geneformer V2 rank values (gc104M dictionaries, `<cls>` … `<eos>`).
    #[serde(rename = "geneformer-v2")]
    GeneformerV2 {
        /// The dictionaries.
        dictionaries: GeneformerDictionaryFiles,
        /// Tokens per cell.
        model_input_size: usize,
    },
    /// scGPT gene ids and binned values.
    #[serde(rename = "scgpt")]
    ScGpt {
        /// The `vocab.json`.
        vocab: PathBuf,
        /// Longest sequence, `<cls>` included.
        max_len: usize,
        /// Value of the `<cls>` position.
        cls_value: f32,
        /// Number of value bins.
        n_bins: usize,
        /// Unexpressed vocabulary genes included.
        include_zero_genes: bool,
        /// Seed of the sub-sampling (and of the legacy ties).
        seed: u32,
        /// How ties are broken.
        ties: ScGptTies,
    },
    /// scBERT's expression bins over its gene panel.
    #[serde(rename = "scbert")]
    ScBert {
        /// The ordered gene list.
        genes: PathBuf,
        /// Cells with fewer expressed panel genes are left out.
        min_genes: usize,
        /// Highest expression bin.
        bin_num: u8,
    },
    /// xTrimoGene / scFoundation encoder input.
    #[serde(rename = "xtrimogene")]
    XTrimoGene {
        /// The gene index TSV.
        genes: PathBuf,
        /// The target read depth (`t4`, `f1`, `a5`, …), as `--target` writes it.
        target: String,
    },
}

impl TokenizerSpec {
    /// The scheme's name (`geneformer-v2`, `scgpt`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::GeneformerV1 { .. } => "geneformer-v1",
            Self::GeneformerV2 { .. } => "geneformer-v2",
            Self::ScGpt { .. } => "scgpt",
            Self::ScBert { .. } => "scbert",
            Self::XTrimoGene { .. } => "xtrimogene",
        }
    }

    /// The file that fixes the model's vocabulary or gene panel: Geneformer's token
    /// dictionary, scGPT's `vocab.json`, scBERT's and xTrimoGene's gene lists.
    pub fn vocabulary(&self) -> &Path {
        match self {
            Self::GeneformerV1 { dictionaries, .. } | Self::GeneformerV2 { dictionaries, .. } => {
                &dictionaries.token_dictionary
            }
            Self::ScGpt { vocab, .. } => vocab,
            Self::ScBert { genes, .. } | Self::XTrimoGene { genes, .. } => genes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_json_tagged_by_scheme() {
        let files = GeneformerDictionaryFiles {
            token_dictionary: "t.pkl".into(),
            gene_medians: "m.pkl".into(),
            ensembl_mapping: "e.pkl".into(),
            gene_name_id: None,
        };
        let specs = [
            TokenizerSpec::GeneformerV1 { dictionaries: files.clone(), model_input_size: 2048 },
            TokenizerSpec::GeneformerV2 { dictionaries: files, model_input_size: 4096 },
            TokenizerSpec::ScGpt {
                vocab: "vocab.json".into(),
                max_len: 1200,
                cls_value: -2.0,
                n_bins: 51,
                include_zero_genes: false,
                seed: 0,
                ties: ScGptTies::NumpyLegacy,
            },
            TokenizerSpec::ScBert { genes: "g.txt".into(), min_genes: 200, bin_num: 5 },
            TokenizerSpec::XTrimoGene { genes: "g.tsv".into(), target: "t4".into() },
        ];
        for spec in specs {
            let json = serde_json::to_value(&spec).unwrap();
            assert_eq!(json["scheme"], spec.name());
            let back: TokenizerSpec = serde_json::from_value(json).unwrap();
            assert_eq!(back, spec);
        }
        assert_eq!(
            TokenizerSpec::ScBert { genes: "g.txt".into(), min_genes: 200, bin_num: 5 }.vocabulary(),
            Path::new("g.txt")
        );
        let unknown = serde_json::json!({"scheme": "geneformer-v3"});
        assert!(serde_json::from_value::<TokenizerSpec>(unknown).is_err());
    }
}

//! [`TokenizerSpec`]: which tokenizer made a dataset, with its files and settings, saved next
//! to every dataset (`scfm_tokenizer.json`, key `spec`) and compared as a value, not as JSON
//! text.
//!
//! Each scheme is a [`SchemeSpec`] in its family's own file ([`GeneformerSpec`],
//! [`ScGptSpec`], [`ScBertSpec`], [`XTrimoGeneSpec`]); one registry here names each once and
//! makes [`TokenizerSpec`], [`SchemeKind`] and their dispatch from it.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TokenizeError;
pub use crate::geneformer::{GeneformerDictionaryFiles, GeneformerSpec};
pub use crate::scbert::ScBertSpec;
use crate::scgpt::ScGptSequence;
pub use crate::scgpt::{ScGptSpec, ScGptTies};
use crate::tokenizer::{PreparedTokenizer, TokenizerInput};
use crate::xtrimogene::DepthTarget;
pub use crate::xtrimogene::XTrimoGeneSpec;

/// One tokenization scheme: its name, how it is found from the upstream files, and how it
/// makes its tokenizer ready for a dataset. Implemented in each family's own file.
pub trait SchemeSpec: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug {
    /// The scheme over the upstream files at `vocab`: the file, or a folder holding it under
    /// its upstream name (Geneformer: the dictionaries' folder); settings from `options`.
    ///
    /// # Errors
    /// A folder without the scheme's files; a malformed setting.
    fn from_files(vocab: &Path, options: &SchemeOptions) -> Result<Self, TokenizeError>;

    /// The file that fixes the model's vocabulary or gene panel.
    fn vocabulary(&self) -> &Path;

    /// The tokenizer, read from its files and planned for `input`'s genes.
    ///
    /// # Errors
    /// Unreadable or malformed vocabulary files.
    fn prepare(&self, input: &TokenizerInput<'_>) -> Result<PreparedTokenizer, TokenizeError>;
}

/// The settings of [`TokenizerSpec::named`] that only some schemes read.
#[derive(Debug, Clone)]
pub struct SchemeOptions {
    /// scGPT: the sequence (`max_len`, `<cls>` value, zero genes, seed; `cls_id` comes from
    /// the vocabulary).
    pub sequence: ScGptSequence,
    /// scGPT: how binning ties are broken.
    pub ties: ScGptTies,
    /// xTrimoGene: the target read depth.
    pub target: DepthTarget,
}

impl Default for SchemeOptions {
    /// scGPT's zero-shot sequence with helical's ties; xTrimoGene's `t4`.
    fn default() -> Self {
        Self { sequence: ScGptSequence::zero_shot(0), ties: ScGptTies::Helical, target: DepthTarget::Fixed(4.0) }
    }
}

/// The registry: every scheme, once, as `Variant => SpecType, "name" | "alias"…;`. The macro
/// below makes [`TokenizerSpec`] and [`SchemeKind`] from it.
macro_rules! schemes {
    ($callback:ident) => {
        $callback! {
            GeneformerV1 => GeneformerSpec<1>, "geneformer-v1";
            GeneformerV2 => GeneformerSpec<2>, "geneformer-v2" | "geneformer";
            ScGpt => ScGptSpec, "scgpt";
            ScBert => ScBertSpec, "scbert";
            XTrimoGene => XTrimoGeneSpec, "xtrimogene" | "scfoundation";
        }
    };
}

macro_rules! define_schemes {
    ($($variant:ident => $ty:ty, $name:literal $(| $alias:literal)*;)*) => {
        /// A tokenizer and its settings: one variant per scheme, tagged by the scheme's name
        /// (`{"scheme": "geneformer-v2", …}`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "scheme")]
        #[non_exhaustive]
        pub enum TokenizerSpec {
            $(
                #[doc = concat!("[`", stringify!($ty), "`].")]
                #[serde(rename = $name)]
                $variant($ty),
            )*
        }

        /// A scheme's name: what the command line's `--scheme` takes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum SchemeKind {
            $(
                #[doc = concat!("[`", stringify!($ty), "`].")]
                $variant,
            )*
        }

        impl SchemeKind {
            /// Every scheme, in registry order.
            pub const ALL: &[SchemeKind] = &[$(Self::$variant),*];

            /// The scheme's name (`geneformer-v2`, `scgpt`, …).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The other names the command line takes (`geneformer`, `scfoundation`).
            pub fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($alias),*],)*
                }
            }
        }

        impl TokenizerSpec {
            /// The scheme `kind` over the upstream files at `vocab` (see
            /// [`SchemeSpec::from_files`]).
            ///
            /// # Errors
            /// A folder without the scheme's files; a malformed setting.
            pub fn named(kind: SchemeKind, vocab: &Path, options: &SchemeOptions) -> Result<Self, TokenizeError> {
                Ok(match kind {
                    $(SchemeKind::$variant => Self::$variant(<$ty as SchemeSpec>::from_files(vocab, options)?),)*
                })
            }

            /// Which scheme.
            pub fn kind(&self) -> SchemeKind {
                match self {
                    $(Self::$variant(_) => SchemeKind::$variant,)*
                }
            }

            /// The file that fixes the model's vocabulary or gene panel: Geneformer's token
            /// dictionary, scGPT's `vocab.json`, scBERT's and xTrimoGene's gene lists.
            pub fn vocabulary(&self) -> &Path {
                match self {
                    $(Self::$variant(s) => s.vocabulary(),)*
                }
            }

            /// The tokenizer, read from its files and planned for `input`'s genes.
            ///
            /// # Errors
            /// Unreadable or malformed vocabulary files.
            pub fn prepare(&self, input: &TokenizerInput<'_>) -> Result<PreparedTokenizer, TokenizeError> {
                match self {
                    $(Self::$variant(s) => s.prepare(input),)*
                }
            }
        }

        $(
            impl From<$ty> for TokenizerSpec {
                fn from(spec: $ty) -> Self {
                    Self::$variant(spec)
                }
            }
        )*
    };
}

schemes!(define_schemes);

impl TokenizerSpec {
    /// The scheme's name (`geneformer-v2`, `scgpt`, …).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

impl std::fmt::Display for SchemeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SchemeKind {
    type Err = TokenizeError;

    fn from_str(s: &str) -> Result<Self, TokenizeError> {
        Self::ALL.iter().copied().find(|k| k.name() == s || k.aliases().contains(&s)).ok_or_else(|| {
            TokenizeError::BadSetting {
                what: "tokenization scheme",
                value: s.to_owned(),
                expected: Self::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for SchemeKind {
    fn value_variants<'a>() -> &'a [Self] {
        Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).aliases(self.aliases().iter().copied()))
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
        let specs: [TokenizerSpec; 5] = [
            GeneformerSpec::<1> { dictionaries: files.clone(), model_input_size: 2048 }.into(),
            GeneformerSpec::<2> { dictionaries: files, model_input_size: 4096 }.into(),
            ScGptSpec {
                vocab: "vocab.json".into(),
                max_len: 1200,
                cls_value: -2.0,
                n_bins: 51,
                include_zero_genes: false,
                seed: 0,
                ties: ScGptTies::NumpyLegacy,
            }
            .into(),
            ScBertSpec { genes: "g.txt".into(), min_genes: 200, bin_num: 5 }.into(),
            XTrimoGeneSpec { genes: "g.tsv".into(), target: "t4".into() }.into(),
        ];
        for spec in specs {
            let json = serde_json::to_value(&spec).unwrap();
            assert_eq!(json["scheme"], spec.name());
            // The settings sit beside the tag, as the struct variants of 2026-12-07 wrote them.
            assert!(json.as_object().unwrap().len() > 2, "{json}");
            let back: TokenizerSpec = serde_json::from_value(json).unwrap();
            assert_eq!(back, spec);
            assert_eq!(spec.name().parse::<SchemeKind>().unwrap(), spec.kind());
        }
        assert_eq!(TokenizerSpec::from(ScBertSpec::new("g.txt".into())).vocabulary(), Path::new("g.txt"));
        let unknown = serde_json::json!({"scheme": "geneformer-v3"});
        assert!(serde_json::from_value::<TokenizerSpec>(unknown).is_err());
    }

    #[test]
    fn scheme_names_and_aliases_parse_and_unknown_ones_list_the_registry() {
        assert_eq!("geneformer".parse::<SchemeKind>().unwrap(), SchemeKind::GeneformerV2);
        assert_eq!("scfoundation".parse::<SchemeKind>().unwrap(), SchemeKind::XTrimoGene);
        let err = "geneformer-v3".parse::<SchemeKind>().unwrap_err().to_string();
        for kind in SchemeKind::ALL {
            assert!(err.contains(kind.name()), "{err}");
        }
    }

    #[test]
    fn a_folder_without_the_scheme_files_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let options = SchemeOptions::default();
        for &kind in SchemeKind::ALL {
            let err = TokenizerSpec::named(kind, dir.path(), &options).unwrap_err();
            assert!(matches!(err, TokenizeError::MissingFile { .. }), "{kind}: {err}");
        }
    }
}

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::CoreError;

/// What kind of identifiers a gene table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneIdKind {
    /// Ensembl gene ids (`ENSG…`, `ENSMUSG…`, optionally versioned).
    Ensembl,
    /// Gene symbols (`CD3E`, `MS4A1`, …).
    Symbol,
    /// A mixture: mostly neither kind dominates (≥ 95 % decides).
    Mixed,
}

/// The ordered genes (columns) of an expression matrix.
///
/// `ids` are the matrix's var index and are unique; `symbols` optionally carries human-readable
/// names (10x `features.tsv` column 2, CELLxGENE `feature_name`), which may repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneTable {
    ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    symbols: Option<Vec<String>>,
}

impl GeneTable {
    /// A table of unique gene identifiers.
    ///
    /// # Errors
    /// [`CoreError::EmptyGeneTable`] for no genes, [`CoreError::DuplicateGene`] for a repeat.
    pub fn new(ids: Vec<String>) -> Result<Self, CoreError> {
        if ids.is_empty() {
            return Err(CoreError::EmptyGeneTable);
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if let Some(&first) = seen.get(id.as_str()) {
                return Err(CoreError::DuplicateGene { id: id.clone(), first, second: i });
            }
            seen.insert(id, i);
        }
        Ok(Self { ids, symbols: None })
    }

    /// Attaches gene symbols, one per identifier.
    ///
    /// # Errors
    /// [`CoreError::SymbolCount`] when the lengths differ.
    pub fn with_symbols(mut self, symbols: Vec<String>) -> Result<Self, CoreError> {
        if symbols.len() != self.ids.len() {
            return Err(CoreError::SymbolCount { ids: self.ids.len(), symbols: symbols.len() });
        }
        self.symbols = Some(symbols);
        Ok(self)
    }

    /// Number of genes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Always false: a gene table has at least one gene.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The gene identifiers in matrix column order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Gene symbols, when the source provides them separately from the ids.
    pub fn symbols(&self) -> Option<&[String]> {
        self.symbols.as_deref()
    }

    /// Position of a gene identifier, by linear search (build a map for repeated lookups).
    pub fn position(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|g| g == id)
    }

    /// Classifies the identifiers: Ensembl when ≥ 95 % look like Ensembl gene ids,
    /// symbols when ≤ 5 % do, otherwise mixed.
    pub fn id_kind(&self) -> GeneIdKind {
        let ensembl = self.ids.iter().filter(|id| looks_like_ensembl(id)).count();
        let share = ensembl as f64 / self.ids.len().max(1) as f64;
        if share >= 0.95 {
            GeneIdKind::Ensembl
        } else if share <= 0.05 {
            GeneIdKind::Symbol
        } else {
            GeneIdKind::Mixed
        }
    }

    /// SHA-256 (hex) over the ids and symbols, each terminated by a NUL byte: two corpora with
    /// the same hash index their genes identically.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for id in &self.ids {
            h.update(id.as_bytes());
            h.update([0u8]);
        }
        if let Some(symbols) = &self.symbols {
            h.update([1u8]);
            for s in symbols {
                h.update(s.as_bytes());
                h.update([0u8]);
            }
        }
        hex(&h.finalize())
    }
}

/// `ENS` + optional species letters + `G` + 11 digits (+ optional `.version`).
fn looks_like_ensembl(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("ENS") else { return false };
    let rest = rest.split('.').next().unwrap_or(rest);
    let digits_at = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
    let (letters, digits) = rest.split_at(digits_at);
    letters.ends_with('G')
        && letters.chars().all(|c| c.is_ascii_uppercase())
        && digits.len() >= 6
        && digits.chars().all(|c| c.is_ascii_digit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ids: &[&str]) -> GeneTable {
        GeneTable::new(ids.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn detects_id_kinds() {
        assert_eq!(table(&["ENSG00000000003", "ENSMUSG00000000001.4"]).id_kind(), GeneIdKind::Ensembl);
        assert_eq!(table(&["CD3E", "ENSEMBL"]).id_kind(), GeneIdKind::Symbol);
        assert_eq!(table(&["CD3E", "ENSG00000000003"]).id_kind(), GeneIdKind::Mixed);
    }

    #[test]
    fn rejects_duplicates_and_empty() {
        let err = GeneTable::new(vec!["A".into(), "B".into(), "A".into()]).unwrap_err();
        assert!(matches!(err, CoreError::DuplicateGene { first: 0, second: 2, .. }));
        assert!(matches!(GeneTable::new(vec![]), Err(CoreError::EmptyGeneTable)));
    }

    #[test]
    fn hash_depends_on_order_and_symbols() {
        let a = table(&["A", "B"]);
        let b = table(&["B", "A"]);
        assert_ne!(a.content_hash(), b.content_hash());
        let s = a.clone().with_symbols(vec!["x".into(), "y".into()]).unwrap();
        assert_ne!(a.content_hash(), s.content_hash());
        assert_eq!(a.content_hash(), table(&["A", "B"]).content_hash());
    }
}

use thiserror::Error;

/// Errors raised by the core domain types when their invariants are violated.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A gene table holds the same identifier twice.
    #[error("duplicate gene identifier {id:?} at positions {first} and {second}")]
    DuplicateGene {
        /// The repeated identifier.
        id: String,
        /// Position of its first occurrence.
        first: usize,
        /// Position of the repeat.
        second: usize,
    },
    /// A gene table has no genes at all.
    #[error("the gene table is empty")]
    EmptyGeneTable,
    /// Symbols were given for a gene table but their number differs from the number of ids.
    #[error("{symbols} gene symbols given for {ids} gene identifiers")]
    SymbolCount {
        /// Number of identifiers.
        ids: usize,
        /// Number of symbols.
        symbols: usize,
    },
    /// A vocabulary holds a token twice, or gives two tokens the same id.
    #[error("vocabulary: {token:?} appears twice (ids {first} and {second})")]
    DuplicateToken {
        /// The token (or both tokens sharing an id).
        token: String,
        /// First id.
        first: u32,
        /// Second id.
        second: u32,
    },
    /// A vocabulary gives a token an id at or above [`crate::GeneVocab::MAX_ID`] (no released
    /// vocabulary comes near; such a file is corrupt, and its id would size an embedding table).
    #[error("vocabulary: {token:?} has id {id}, above the largest supported id {max}")]
    IdTooLarge {
        /// The token.
        token: String,
        /// Its id.
        id: u32,
        /// The largest id accepted.
        max: u32,
    },
    /// A chunk's CSR arrays or obs batch are inconsistent.
    #[error("invalid cell chunk: {0}")]
    InvalidChunk(String),
    /// An obs column that the chunk does not have.
    #[error("no obs column {column:?}; the columns are {have:?}")]
    MissingColumn {
        /// The column asked for.
        column: String,
        /// The columns there are.
        have: Vec<String>,
    },
    /// An Arrow kernel failed while slicing or filtering a chunk.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

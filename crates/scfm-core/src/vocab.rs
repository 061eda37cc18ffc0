use std::collections::HashMap;

use crate::CoreError;

/// A model's vocabulary: tokens (genes and special tokens) and their integer ids.
///
/// Ids need not be contiguous (some upstream vocabularies have gaps); [`GeneVocab::id_bound`]
/// is the size an embedding table needs.
///
/// ```
/// use scfm_core::GeneVocab;
/// let v = GeneVocab::from_pairs([("<pad>".to_string(), 0), ("ENSG00000000003".to_string(), 4)])?;
/// assert_eq!(v.id("ENSG00000000003"), Some(4));
/// assert_eq!(v.token(0), Some("<pad>"));
/// assert_eq!((v.len(), v.id_bound()), (2, 5));
/// # Ok::<(), scfm_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GeneVocab {
    ids: HashMap<String, u32>,
    tokens: Vec<Option<String>>,
}

impl GeneVocab {
    /// The largest id a vocabulary may use: 2^24 − 1, a thousand times the size of the released
    /// vocabularies (20,000–60,000 tokens). Ids size the token table and embedding tables, so an
    /// id from a corrupt file must not be able to ask for gigabytes.
    pub const MAX_ID: u32 = (1 << 24) - 1;

    /// Builds a vocabulary from `(token, id)` pairs.
    ///
    /// # Errors
    /// [`CoreError::DuplicateToken`] when a token or an id appears twice,
    /// [`CoreError::IdTooLarge`] for an id above [`GeneVocab::MAX_ID`].
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, u32)>) -> Result<Self, CoreError> {
        let mut v = Self::default();
        for (token, id) in pairs {
            v.insert(token, id)?;
        }
        Ok(v)
    }

    /// Adds one token.
    ///
    /// # Errors
    /// [`CoreError::DuplicateToken`] when the token or the id is already taken,
    /// [`CoreError::IdTooLarge`] for an id above [`GeneVocab::MAX_ID`].
    pub fn insert(&mut self, token: String, id: u32) -> Result<(), CoreError> {
        if id > Self::MAX_ID {
            return Err(CoreError::IdTooLarge { token, id, max: Self::MAX_ID });
        }
        if let Some(&other) = self.ids.get(&token) {
            return Err(CoreError::DuplicateToken { token, first: other, second: id });
        }
        let slot = id as usize;
        if self.tokens.len() <= slot {
            self.tokens.resize(slot + 1, None);
        }
        if let Some(existing) = &self.tokens[slot] {
            return Err(CoreError::DuplicateToken { token: format!("{existing} / {token}"), first: id, second: id });
        }
        self.tokens[slot] = Some(token.clone());
        self.ids.insert(token, id);
        Ok(())
    }

    /// The id of a token.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The token with this id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).and_then(|t| t.as_deref())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True for an empty vocabulary.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// One more than the largest id: the number of rows an embedding table needs.
    pub fn id_bound(&self) -> usize {
        self.tokens.len()
    }

    /// `(token, id)` in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.tokens.iter().enumerate().filter_map(|(i, t)| t.as_deref().map(|t| (t, i as u32)))
    }
}

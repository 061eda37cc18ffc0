use crate::{CoreError, StrMap};

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
#[derive(Debug, Clone, Default)]
pub struct GeneVocab {
    /// Token → id, the tokens' text in one buffer.
    ids: StrMap<u32>,
    /// Id → the index of its token in `ids` ([`Self::NO_TOKEN`] for unused ids): 4 bytes per id,
    /// so the largest id a file may name costs at most 64 MB.
    by_id: Vec<u32>,
}

impl PartialEq for GeneVocab {
    fn eq(&self, other: &Self) -> bool {
        self.id_bound() == other.id_bound() && self.iter().eq(other.iter())
    }
}

impl Eq for GeneVocab {}

impl GeneVocab {
    /// The largest id a vocabulary may use: 2^24 − 1, a thousand times the size of the released
    /// vocabularies (20,000–60,000 tokens). Ids size the token table and embedding tables, so an
    /// id from a corrupt file must not be able to ask for gigabytes.
    pub const MAX_ID: u32 = (1 << 24) - 1;

    const NO_TOKEN: u32 = u32::MAX;

    /// Builds a vocabulary from `(token, id)` pairs.
    ///
    /// # Errors
    /// [`CoreError::DuplicateToken`] when a token or an id appears twice,
    /// [`CoreError::IdTooLarge`] for an id above [`GeneVocab::MAX_ID`].
    pub fn from_pairs<T: AsRef<str>>(pairs: impl IntoIterator<Item = (T, u32)>) -> Result<Self, CoreError> {
        let mut v = Self::default();
        for (token, id) in pairs {
            v.insert(token.as_ref(), id)?;
        }
        Ok(v)
    }

    /// Adds one token.
    ///
    /// # Errors
    /// [`CoreError::DuplicateToken`] when the token or the id is already taken,
    /// [`CoreError::IdTooLarge`] for an id above [`GeneVocab::MAX_ID`].
    pub fn insert(&mut self, token: &str, id: u32) -> Result<(), CoreError> {
        if id > Self::MAX_ID {
            return Err(CoreError::IdTooLarge { token: token.to_owned(), id, max: Self::MAX_ID });
        }
        if let Some(&other) = self.ids.get(token) {
            return Err(CoreError::DuplicateToken { token: token.to_owned(), first: other, second: id });
        }
        let slot = id as usize;
        if self.by_id.len() <= slot {
            self.by_id.resize(slot + 1, Self::NO_TOKEN);
        }
        if let Some(existing) = self.token(id) {
            return Err(CoreError::DuplicateToken { token: format!("{existing} / {token}"), first: id, second: id });
        }
        self.by_id[slot] = self.ids.len() as u32;
        self.ids.insert(token, id);
        Ok(())
    }

    /// The id of a token.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The token with this id.
    pub fn token(&self, id: u32) -> Option<&str> {
        let &entry = self.by_id.get(id as usize)?;
        self.ids.entry(entry as usize).map(|(token, _)| token)
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
        self.by_id.len()
    }

    /// `(token, id)` in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.by_id.iter().filter_map(|&entry| self.ids.entry(entry as usize).map(|(token, &id)| (token, id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_ids_both_ways_with_gaps_and_duplicates_refused() {
        let v = GeneVocab::from_pairs([("b", 3), ("<pad>", 0), ("a", 7)]).unwrap();
        assert_eq!((v.len(), v.id_bound()), (3, 8));
        assert_eq!(v.iter().collect::<Vec<_>>(), [("<pad>", 0), ("b", 3), ("a", 7)]);
        assert_eq!((v.id("a"), v.id("c"), v.token(3), v.token(4), v.token(99)), (Some(7), None, Some("b"), None, None));
        // Equal vocabularies whatever the insertion order.
        assert_eq!(v, GeneVocab::from_pairs([("a", 7), ("b", 3), ("<pad>", 0)]).unwrap());
        assert_ne!(v, GeneVocab::from_pairs([("a", 7), ("b", 2), ("<pad>", 0)]).unwrap());
        let e = GeneVocab::from_pairs([("a", 1), ("a", 2)]).unwrap_err();
        assert!(matches!(e, CoreError::DuplicateToken { first: 1, second: 2, .. }), "{e}");
        let e = GeneVocab::from_pairs([("a", 1), ("b", 1)]).unwrap_err();
        assert!(matches!(&e, CoreError::DuplicateToken { token, .. } if token == "a / b"), "{e}");
        // The largest id is allowed (a 64 MB table at most); the next is not.
        let mut v = GeneVocab::default();
        v.insert("last", GeneVocab::MAX_ID).unwrap();
        assert_eq!((v.id_bound(), v.token(GeneVocab::MAX_ID)), (1 << 24, Some("last")));
        assert!(matches!(v.insert("over", GeneVocab::MAX_ID + 1), Err(CoreError::IdTooLarge { .. })));
    }
}

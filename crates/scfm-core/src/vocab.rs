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

    /// Builds a vocabulary from a token → id map (its tokens are distinct already), keeping the
    /// map as it is: no token is hashed or copied again.
    ///
    /// # Errors
    /// [`CoreError::DuplicateToken`] when an id appears twice, [`CoreError::IdTooLarge`] for an
    /// id above [`GeneVocab::MAX_ID`]; the first in the map's order.
    pub fn from_ids(ids: StrMap<u32>) -> Result<Self, CoreError> {
        let mut by_id = vec![];
        for (entry, (token, &id)) in ids.iter().enumerate() {
            Self::claim(&mut by_id, &ids, token, id, entry)?;
        }
        Ok(Self { ids, by_id })
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
        Self::claim(&mut self.by_id, &self.ids, token, id, self.ids.len())?;
        self.ids.insert(token, id);
        Ok(())
    }

    /// Points `id` at entry `entry` of `ids` (the one holding `token`) in `by_id`, unless the id
    /// is too large or already taken.
    fn claim(by_id: &mut Vec<u32>, ids: &StrMap<u32>, token: &str, id: u32, entry: usize) -> Result<(), CoreError> {
        if id > Self::MAX_ID {
            return Err(CoreError::IdTooLarge { token: token.to_owned(), id, max: Self::MAX_ID });
        }
        let slot = id as usize;
        if by_id.len() <= slot {
            by_id.resize(slot + 1, Self::NO_TOKEN);
        }
        if let Some((existing, _)) = ids.entry(by_id[slot] as usize) {
            return Err(CoreError::DuplicateToken { token: format!("{existing} / {token}"), first: id, second: id });
        }
        by_id[slot] = entry as u32;
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

    #[test]
    fn a_token_map_becomes_the_vocabulary_its_pairs_make() {
        let pairs = [("b", 3), ("<pad>", 0), ("a", 7)];
        let v = GeneVocab::from_ids(pairs.into_iter().collect()).unwrap();
        assert_eq!(v, GeneVocab::from_pairs(pairs).unwrap());
        assert_eq!((v.id("a"), v.token(3), v.token(4), v.id_bound()), (Some(7), Some("b"), None, 8));
        // More tokens after it, as scGPT's specials are appended.
        let mut v = v;
        v.insert("<cls>", 8).unwrap();
        assert_eq!((v.token(8), v.id("<cls>"), v.token(7)), (Some("<cls>"), Some(8), Some("a")));
        let e = GeneVocab::from_ids([("a", 1), ("b", 1)].into_iter().collect()).unwrap_err();
        assert!(matches!(&e, CoreError::DuplicateToken { token, .. } if token == "a / b"), "{e}");
        let e = GeneVocab::from_ids([("a", 1), ("b", GeneVocab::MAX_ID + 1)].into_iter().collect()).unwrap_err();
        assert!(matches!(e, CoreError::IdTooLarge { id, .. } if id == GeneVocab::MAX_ID + 1), "{e}");
    }
}

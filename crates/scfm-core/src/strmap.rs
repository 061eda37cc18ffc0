//! Read-mostly maps keyed by gene ids and symbols, built in a few allocations.
//!
//! The upstream vocabulary files are dictionaries of up to 170,000 strings (Geneformer's
//! Ensembl mapping). As `HashMap<String, String>` every key and value is an allocation of its
//! own: building and dropping the three Geneformer dictionaries was about a third of
//! `scfm tokenize`'s fixed cost. [`StrMap`] keeps all keys in one text buffer and hashes
//! entry indices; [`StringMap`] keeps the values in that buffer too.

use std::fmt;

use hashbrown::HashTable;

/// Where a string lies in a map's text buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// A map from strings to `V` with the keys in one buffer. Iteration follows insertion order;
/// inserting a key again replaces its value in place, as in a Python dict.
#[derive(Clone)]
pub struct StrMap<V> {
    text: String,
    entries: Vec<(Span, V)>,
    /// Indices into `entries`, hashed by their keys.
    table: HashTable<usize>,
    /// Randomly seeded per map: crafted keys cannot make lookups quadratic.
    hasher: ahash::RandomState,
}

impl<V> Default for StrMap<V> {
    fn default() -> Self {
        Self::with_capacity(0, 0)
    }
}

impl<V> StrMap<V> {
    /// An empty map with room for `entries` keys of `text_bytes` bytes in all.
    pub fn with_capacity(entries: usize, text_bytes: usize) -> Self {
        Self {
            text: String::with_capacity(text_bytes),
            entries: Vec::with_capacity(entries),
            table: HashTable::with_capacity(entries),
            hasher: ahash::RandomState::new(),
        }
    }

    fn key(&self, i: usize) -> &str {
        let Span { start, end } = self.entries[i].0;
        &self.text[start..end]
    }

    /// The key and value of the `i`-th entry in insertion order.
    pub(crate) fn entry(&self, i: usize) -> Option<(&str, &V)> {
        let (Span { start, end }, v) = self.entries.get(i)?;
        Some((&self.text[*start..*end], v))
    }

    fn index(&self, key: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.table.find(hash, |&i| self.key(i) == key).copied()
    }

    /// Inserts `key → value`; returns the value it replaces.
    pub fn insert(&mut self, key: &str, value: V) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let Self { text, entries, table, hasher } = self;
        let at = |i: usize| &text[entries[i].0.start..entries[i].0.end];
        match table.find(hash, |&i| at(i) == key) {
            Some(&i) => Some(std::mem::replace(&mut entries[i].1, value)),
            None => {
                let start = text.len();
                text.push_str(key);
                entries.push((Span { start, end: text.len() }, value));
                let rehash = |&i: &usize| hasher.hash_one(&text[entries[i].0.start..entries[i].0.end]);
                table.insert_unique(hash, entries.len() - 1, rehash);
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.index(key).map(|i| &self.entries[i].1)
    }

    /// Whether `key` is in the map.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index(key).is_some()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(key, value)` in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &V)> + '_ {
        self.entries.iter().map(|(Span { start, end }, v)| (&self.text[*start..*end], v))
    }

    /// The same keys, in the same order, with `f(key, value)` as values: the key text and the
    /// hash table are kept, nothing is hashed again. The first error in insertion order stops it.
    ///
    /// # Errors
    /// The first error `f` returns.
    pub fn try_map_values<W, E>(self, mut f: impl FnMut(&str, V) -> Result<W, E>) -> Result<StrMap<W>, E> {
        let Self { text, entries, table, hasher } = self;
        let entries = entries
            .into_iter()
            .map(|(span, v)| Ok((span, f(&text[span.start..span.end], v)?)))
            .collect::<Result<_, E>>()?;
        Ok(StrMap { text, entries, table, hasher })
    }
}

impl<K: AsRef<str>, V> FromIterator<(K, V)> for StrMap<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut map = Self::with_capacity(iter.size_hint().0, 0);
        for (k, v) in iter {
            map.insert(k.as_ref(), v);
        }
        map
    }
}

impl<V: fmt::Debug> fmt::Debug for StrMap<V> {
    /// The size and the first entries (vocabularies are long).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first: Vec<_> = self.iter().take(3).collect();
        f.debug_struct("StrMap").field("len", &self.len()).field("first", &first).finish()
    }
}

/// A map from strings to strings (gene symbol → Ensembl id and the like), keys and values in
/// one buffer. Same semantics as [`StrMap`].
#[derive(Clone, Default)]
pub struct StringMap {
    map: StrMap<Span>,
    values: String,
}

impl StringMap {
    /// An empty map with room for `entries` pairs of `text_bytes` bytes in all.
    pub fn with_capacity(entries: usize, text_bytes: usize) -> Self {
        Self { map: StrMap::with_capacity(entries, text_bytes / 2), values: String::with_capacity(text_bytes / 2) }
    }

    /// Inserts `key → value`; a key inserted again gets the new value.
    pub fn insert(&mut self, key: &str, value: &str) {
        let start = self.values.len();
        self.values.push_str(value);
        self.map.insert(key, Span { start, end: self.values.len() });
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(|s| &self.values[s.start..s.end])
    }

    /// Whether `key` is in the map.
    pub fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `(key, value)` in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.map.iter().map(|(k, s)| (k, &self.values[s.start..s.end]))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for StringMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut map = Self::with_capacity(iter.size_hint().0, 0);
        for (k, v) in iter {
            map.insert(k.as_ref(), v.as_ref());
        }
        map
    }
}

impl fmt::Debug for StringMap {
    /// The size and the first entries (vocabularies are long).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first: Vec<_> = self.iter().take(3).collect();
        f.debug_struct("StringMap").field("len", &self.len()).field("first", &first).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn behaves_like_a_python_dict() {
        let pairs = [("ENSG1", "A"), ("ENSG2", "B"), ("", "empty"), ("ENSG1", "C"), ("ensg1", "D")];
        let map: StringMap = pairs.iter().copied().collect();
        let dict: HashMap<&str, &str> = pairs.iter().copied().collect();
        assert_eq!(map.len(), dict.len());
        for (k, v) in &dict {
            assert_eq!(map.get(k), Some(*v), "{k}");
        }
        assert_eq!(map.get("ENSG3"), None);
        assert!(!map.contains_key("ENSG"));
        // Insertion order of first appearance, with the last value.
        let order: Vec<_> = map.iter().collect();
        assert_eq!(order, [("ENSG1", "C"), ("ENSG2", "B"), ("", "empty"), ("ensg1", "D")]);
    }

    #[test]
    fn many_keys_survive_the_table_growing() {
        let mut map = StrMap::default();
        for i in 0..20_000u32 {
            assert_eq!(map.insert(&format!("gene{i}"), i), None);
        }
        assert_eq!(map.insert("gene7", 70), Some(7));
        assert_eq!(map.len(), 20_000);
        assert!((0..20_000u32).all(|i| map.get(&format!("gene{i}")) == Some(&if i == 7 { 70 } else { i })));
        assert_eq!(map.iter().nth(19_999), Some(("gene19999", &19_999)));
    }

    #[test]
    fn mapped_values_keep_the_keys_and_the_first_error_stops() {
        let map: StrMap<i64> = [("a", 1), ("b", -2), ("c", 3), ("d", -4)].into_iter().collect();
        let doubled = map.clone().try_map_values(|_, v| Ok::<_, ()>(2 * v)).unwrap();
        assert_eq!(doubled.iter().collect::<Vec<_>>(), [("a", &2), ("b", &-4), ("c", &6), ("d", &-8)]);
        assert_eq!((doubled.get("c"), doubled.get("e")), (Some(&6), None));
        let negative = |k: &str, v: i64| if v < 0 { Err(k.to_owned()) } else { Ok(v as u32) };
        assert_eq!(map.try_map_values(negative).unwrap_err(), "b");
    }
}

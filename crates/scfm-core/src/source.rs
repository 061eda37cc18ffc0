use std::ops::Range;

use arrow_schema::SchemaRef;

use crate::{CellChunk, GeneTable};

/// A read-only, chunked source of cells: an h5ad file, a 10x matrix, a corpus of Arrow shards.
///
/// Implementations read only the rows asked for, so memory is bounded by the chunk size, not
/// by the size of the file.
pub trait CellSource: Send {
    /// The error type of this source's reads.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The genes (matrix columns) that chunk indices refer to.
    fn genes(&self) -> &GeneTable;

    /// Total number of cells.
    fn n_cells(&self) -> usize;

    /// Schema of the obs columns every chunk carries.
    fn obs_schema(&self) -> SchemaRef;

    /// Reads cells `rows.start..rows.end` (clamped to `n_cells()`).
    ///
    /// # Errors
    /// Whatever the underlying storage reports, with the file and element named.
    fn read_rows(&self, rows: Range<usize>) -> Result<CellChunk, Self::Error>;

    /// Iterates over consecutive chunks of at most `size` cells (a `size` of 0 is taken as 1).
    fn chunks(&self, size: usize) -> Chunks<'_, Self>
    where
        Self: Sized,
    {
        Chunks { source: self, next: 0, size: size.max(1) }
    }
}

/// Iterator over the chunks of a [`CellSource`]; see [`CellSource::chunks`].
#[derive(Debug)]
pub struct Chunks<'a, S> {
    source: &'a S,
    next: usize,
    size: usize,
}

impl<S: CellSource> Iterator for Chunks<'_, S> {
    type Item = Result<CellChunk, S::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.source.n_cells();
        if self.next >= n {
            return None;
        }
        let end = (self.next + self.size).min(n);
        let rows = self.next..end;
        self.next = end;
        let out = self.source.read_rows(rows);
        if out.is_err() {
            // Stop after the first error: a broken file does not get better further on.
            self.next = n;
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.source.n_cells().saturating_sub(self.next).div_ceil(self.size);
        (left, Some(left))
    }
}

//! P1's `F` matrices (`F = W - B`, its masked view of each of P0's weights).
//!
//! P1 needs `F` only offline, to turn each owned-weight triple `(A, C)` into
//! `(A, A F + C)` while drawing a pass; the online phase never reads it. So after setup the
//! matrices move to an unnamed file (nobody else can open it, and it disappears with the
//! process) and the preparer reads one matrix at a time into a reused buffer. For BERT-base
//! that keeps about 830 MiB out of P1's resident memory at the price of reading them from
//! the page cache once per pass (a fraction of a second, offline).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

/// P1's `F` matrices in setup order ([`super::weights::weight_list`]), in memory or in
/// an unnamed file.
#[derive(Debug, Default)]
pub struct FMatrices {
    store: Store,
}

#[derive(Debug)]
enum Store {
    Memory(Vec<Vec<u64>>),
    File {
        file: File,
        /// Word offset and length of each matrix.
        spans: Vec<(u64, usize)>,
    },
}

impl Default for Store {
    fn default() -> Self {
        Store::Memory(Vec::new())
    }
}

impl FMatrices {
    /// Matrices held in memory.
    pub fn memory(m: Vec<Vec<u64>>) -> Self {
        FMatrices {
            store: Store::Memory(m),
        }
    }

    /// How many matrices.
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Memory(m) => m.len(),
            Store::File { spans, .. } => spans.len(),
        }
    }

    /// Whether there is none (P0's setup, plan recording).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the matrices live in a file.
    pub fn in_file(&self) -> bool {
        matches!(self.store, Store::File { .. })
    }

    /// Moves the matrices to an unnamed file in `dir` (created if needed), freeing their
    /// memory. On failure they stay in memory.
    pub fn spill(&mut self, dir: &Path) -> Result<()> {
        let Store::Memory(mats) = &self.store else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = tempfile::tempfile_in(dir)
            .with_context(|| format!("creating a file for P1's F matrices in {}", dir.display()))?;
        let mut w = BufWriter::with_capacity(1 << 22, &file);
        let mut spans = Vec::with_capacity(mats.len());
        let mut at = 0u64;
        for m in mats {
            w.write_all(bytemuck::cast_slice(m))
                .context("writing P1's F matrices")?;
            spans.push((at, m.len()));
            at += m.len() as u64;
        }
        w.flush().context("writing P1's F matrices")?;
        drop(w);
        self.store = Store::File { file, spans };
        Ok(())
    }

    /// Matrix `i`, read into `buf` when it lives in a file.
    pub fn get<'b>(&'b self, i: usize, buf: &'b mut Vec<u64>) -> Result<&'b [u64]> {
        match &self.store {
            Store::Memory(m) => m
                .get(i)
                .map(|v| v.as_slice())
                .with_context(|| format!("no F matrix {i}")),
            Store::File { file, spans } => {
                let &(at, len) = spans.get(i).with_context(|| format!("no F matrix {i}"))?;
                buf.resize(len, 0);
                file.read_exact_at(bytemuck::cast_slice_mut(&mut buf[..]), at * 8)
                    .context("reading P1's F matrices back")?;
                Ok(&buf[..])
            }
        }
    }
}

/// The matrices by weight id, for the preparer (one matrix in memory at a time).
pub struct FSource<'a> {
    mats: &'a FMatrices,
    ids: Vec<u32>,
    buf: Vec<u64>,
}

impl<'a> FSource<'a> {
    /// The matrices of a setup of `shape`.
    pub fn new(mats: &'a FMatrices, shape: &super::ModelShape) -> Self {
        let ids = super::weights::weight_list(shape)
            .into_iter()
            .map(|w| w.0)
            .collect();
        FSource {
            mats,
            ids,
            buf: Vec::new(),
        }
    }

    /// The `F` matrix of weight `id`.
    pub fn get(&mut self, id: u32) -> Result<&[u64]> {
        let i = self
            .ids
            .iter()
            .position(|w| *w == id)
            .with_context(|| format!("no weight {id} in this session"))?;
        self.mats.get(i, &mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_matrices_read_back_equal() {
        let mats = vec![vec![1u64, 2, 3], vec![], vec![u64::MAX; 1000]];
        let dir = tempfile::tempdir().unwrap();
        let mut f = FMatrices::memory(mats.clone());
        f.spill(dir.path()).unwrap();
        assert!(f.in_file());
        assert_eq!(f.len(), 3);
        let mut buf = Vec::new();
        for (i, m) in mats.iter().enumerate() {
            assert_eq!(f.get(i, &mut buf).unwrap(), &m[..]);
        }
        assert!(f.get(3, &mut buf).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "unnamed");
    }
}

//! Caller-provided scratch space. Protocols never allocate: they carve the word buffers
//! they need out of an [`Arena`] over a slice the caller owns (a static array on a
//! device, a `Vec` on a host). Each protocol documents how many words it needs.

use crate::error::{Error, Result};

/// A bump allocator over a borrowed word slice. Borrows handed out are disjoint and live
/// as long as the underlying slice; they are released together when the arena is dropped.
pub struct Arena<'a> {
    buf: &'a mut [u64],
}

impl<'a> Arena<'a> {
    /// An arena over `buf`.
    pub fn new(buf: &'a mut [u64]) -> Self {
        Arena { buf }
    }

    /// Words still available.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes `n` words (their content is unspecified: callers overwrite them).
    pub fn take(&mut self, n: usize) -> Result<&'a mut [u64]> {
        let buf = core::mem::take(&mut self.buf);
        if n > buf.len() {
            let available = buf.len();
            self.buf = buf;
            return Err(Error::Scratch {
                needed: n,
                available,
            });
        }
        let (head, tail) = buf.split_at_mut(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes `n` words set to zero.
    pub fn take_zeroed(&mut self, n: usize) -> Result<&'a mut [u64]> {
        let s = self.take(n)?;
        s.fill(0);
        Ok(s)
    }

    /// A temporary arena over what is left: its borrows end when it is dropped, and the
    /// space is then available again here.
    pub fn sub(&mut self) -> Arena<'_> {
        Arena {
            buf: &mut *self.buf,
        }
    }

    /// Everything left, as a slice (the arena is empty afterwards).
    pub fn rest(&mut self) -> &'a mut [u64] {
        core::mem::take(&mut self.buf)
    }
}

/// Checks that scratch of `len` words covers `needed`.
pub fn check_scratch(needed: usize, len: usize) -> Result<()> {
    if len < needed {
        Err(Error::Scratch {
            needed,
            available: len,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_is_disjoint_and_errors_without_losing_space() {
        let mut buf = [0u64; 10];
        let mut a = Arena::new(&mut buf);
        let x = a.take(4).unwrap();
        assert!(matches!(
            a.take(7),
            Err(Error::Scratch {
                needed: 7,
                available: 6
            })
        ));
        let y = a.take(6).unwrap();
        x[0] = 1;
        y[0] = 2;
        assert_eq!(a.remaining(), 0);
    }
}

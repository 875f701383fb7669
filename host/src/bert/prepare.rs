//! Drawing one party's material of a whole pass before the input exists.
//!
//! Every pass `(preprocessing id, index)` has its own PRG streams
//! ([`secformer_core::prg::pass_stream`]), so a pass is drawn independently of any other:
//!
//! * **P0** draws its whole share from its own seed and talks to nobody (its share of an
//!   owned-weight triple is `C_0` alone, already in its prepared form).
//! * **P1** draws the random half from its seed, reads D's corrections of the same pass in
//!   plan order, and turns each owned-weight triple's `(A, C)` into `(A, A F + C)`: the
//!   offline matmuls of the weight products happen here, not online.
//!
//! The result goes to a [`PassWriter`] (a buffer in memory or a file).

use anyhow::{Context, Result};
use secformer_core::dealer::draw::draw;
use secformer_core::dealer::material::PassWriter;
use secformer_core::dealer::{layout, recv_correction, Item, Source};
use secformer_core::kernel::MatMul;
use secformer_core::party::PartyId;
use secformer_core::prg::{pass_stream, Prg, Seed};
use secformer_core::protocols::{lookup, weight};
use secformer_core::transport::Transport;

use super::fmat::FSource;
use super::plan::Plan;

/// Slot buffers reused from item to item and pass to pass (fresh multi-megabyte buffers
/// would cost page faults on every pass).
#[derive(Default)]
pub struct SlotBuffers {
    bufs: Vec<Vec<u64>>,
}

impl SlotBuffers {
    fn fit(&mut self, item: &Item, party: PartyId) -> Vec<&mut [u64]> {
        let slots = layout(item);
        if self.bufs.len() < slots.len() {
            self.bufs.resize_with(slots.len(), Vec::new);
        }
        slots
            .iter()
            .zip(self.bufs.iter_mut())
            .map(|(s, b)| {
                let len = if s.source(party) == Source::Zero {
                    0
                } else {
                    s.len
                };
                if b.len() < len {
                    b.resize(len, 0);
                }
                &mut b[..len]
            })
            .collect()
    }
}

/// Where P1's corrections come from and the `F` matrices its weight products need.
pub struct P1Inputs<'a, 'f, L> {
    /// P1's link to D (D streams the pass's corrections in plan order).
    pub dealer: &'a mut L,
    /// P1's `F` matrices by weight id.
    pub f: &'a mut FSource<'f>,
}

/// Draws `party`'s share of pass `index` of preprocessing `prep` for `plan` into `out`
/// (between [`PassWriter::begin`] and [`PassWriter::end`], both done here). `p1` is
/// required at P1 and ignored at P0.
pub fn draw_pass<W, L, K>(
    plan: &Plan,
    (prep, index): (u64, u32),
    party: PartyId,
    seed: &Seed,
    mut p1: Option<P1Inputs<'_, '_, L>>,
    kernel: &K,
    out: &mut PassWriter<W>,
    bufs: &mut SlotBuffers,
) -> Result<()>
where
    W: embedded_io::Write,
    L: Transport,
    K: MatMul,
{
    let mut prg = Prg::new(seed, pass_stream(prep, index));
    out.begin(index)?;
    for req in &plan.requests {
        out.request(req)?;
        for item in req.items.iter() {
            let mut slots = bufs.fit(item, party);
            match (party, p1.as_mut()) {
                (PartyId::P0, _) => draw(party, seed, &mut prg, item, &mut slots, |_, _| {
                    Err(secformer_core::Error::Param("P0 receives no corrections"))
                })?,
                (PartyId::P1, Some(inp)) => {
                    let link = &mut *inp.dealer;
                    draw(party, seed, &mut prg, item, &mut slots, |buf, w| {
                        recv_correction(link, buf, w)
                    })
                    .context("receiving the dealer's corrections")?;
                    prepare_item(item, &mut *inp.f, kernel, &mut slots)?;
                }
                (PartyId::P1, None) => anyhow::bail!("P1 needs its dealer link to draw a pass"),
            }
            let views: Vec<&[u64]> = slots.iter().map(|s| &**s).collect();
            out.item(item, party, &views)?;
        }
    }
    out.end()?;
    Ok(())
}

/// P1's offline step of an owned-weight item: `C -> A F + C` for a product, the sums
/// over `F` for a lookup ([`lookup::prepare`]).
fn prepare_item<K: MatMul>(
    item: &Item,
    f: &mut FSource<'_>,
    kernel: &K,
    slots: &mut [&mut [u64]],
) -> Result<()> {
    match *item {
        Item::OwnedTriple { id, m, k, n, .. } => {
            let fm = f.get(id)?;
            let (a, c) = slots.split_at_mut(1);
            weight::prepare_owned(kernel, (m as usize, k as usize, n as usize), a[0], fm, c[0])?;
        }
        Item::OwnedLookup { id, m, k, n } => {
            let fm = f.get(id)?;
            let dims = (m as usize, k as usize, n as usize);
            let mut scratch = vec![0u64; lookup::prepare_scratch_words(dims.0, dims.1, dims.2)];
            lookup::prepare(kernel, dims, fm, slots, &mut scratch)?;
        }
        _ => {}
    }
    Ok(())
}

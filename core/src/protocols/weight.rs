//! The weight product `X W` for a shared weight `W` used by many inferences.
//!
//! * **Setup, once per model load** ([`setup`]): D assigns the weight a fixed mask `B`
//!   (each party draws `B_i` from the weight's own PRG stream; no dealer traffic) and the
//!   parties open `F = W - B` (uniformly masked by `B`). P0 keeps `W'_0 = F + B_0`, P1
//!   keeps `W'_1 = B_1`; both keep `F`. Cost: 1 round, `8kn` bytes per party.
//! * **Prepare, per inference, before the input exists** ([`prepare`]): D draws a fresh
//!   `A (m x k)` and sends P1 the correction of `C = A B`; each party computes
//!   `P_i = A_i F + C_i` (one local matmul) and takes its truncation material. D sends P1
//!   `8mn + mn ceil(f/8)` bytes; no party-to-party traffic.
//! * **Online** ([`apply`]): the parties open only `E = X - A` (uniform: `A` is fresh)
//!   and each computes `Z_i = E W'_i + P_i` (one matmul), since
//!   `E (F + B) + A F + A B = (E + A) W`. Then faithful truncation. Cost: 2 rounds,
//!   `8mk + ceil(mn/8)` payload bytes per party, no dealer traffic.
//!
//! A [`Prepared`] mask is consumed by [`apply`] (it is moved), so a mask `A` can never
//! be used twice.
//!
//! # Weights owned by P0 ([`setup_owned`], [`apply_owned`])
//!
//! When P0 holds `W` in the clear (the model owner), the mask `B` is P0's alone (drawn
//! from P0's stream of the weight; P1 holds none of it) and P0 sends `F = W - B` to P1
//! once (uniform to P1, since `B` is P0's and D's only). P0 keeps `W`, P1 keeps `F`.
//! Per product D draws a mask `A (m x k)` that **P1 alone** holds (P0's share is zero) and
//! shares `C = A B` ([`Item::OwnedTriple`]); P1 prepares `P_1 = A F + C_1` before the
//! input exists. Online P1 sends `E_1 = X_1 - A` and keeps `Z_1 = P_1`; P0 computes
//! `E = X_0 + E_1 = X - A` and `Z_0 = E W + C_0`, since
//! `(X - A) W + A F + A B = X W - A W + A (W - B) + A B = X W`.
//! P0 sees only `E = X - A`, uniform because `A` is P1's and D's; P1 sees only `F`.
//! So P1 does no matmul online, P0 does one and prepares nothing, and only P1's half of
//! `E` crosses the line. Online cost: P1 sends `8mk` bytes (0 rounds), P0 receives them
//! (1 round), then the truncation (1 round, `ceil(mn/8)` bytes each). Setup: P0 sends `8kn`
//! bytes. When the input rows are P1's own one-hot plaintext (the token matrix),
//! [`apply_owned_onehot`] uses them directly as `X_1` (`X_0 = 0`) and opens them in 4 bytes
//! per entry: no input sharing, no truncation. When the product's outputs are small
//! ([`apply_owned_in`]), `E_1` goes modulo `2^m` (`m / 8` bytes per entry: 6 for BERT's
//! Q/K/V, output and FFN-out products, 7 for the FFN-in product) and the truncation lifts
//! the product, known modulo `2^m`, to full shares ([`super::trunc::run_in`]).
//!
//! Weight ids are unique per session: the dealer and the dealer client refuse a second
//! registration of an id, since one mask `B` serving two weights would give P1
//! `F_1 - F_2 = W_1 - W_2`.
//!
//! Valid input range: every output sum `|sum_k x_ik w_kj| < 2^30` at `f = 16` (below `2^62`
//! ring units before the truncation, see [`super::trunc`]); the model loader bounds the
//! weights by 4096, which keeps that for input rows with `sum_k |x_ik| < 2^18`.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::trunc::{self, TruncMode};
use super::Width;

/// A party's view of a shared weight after [`setup`].
pub struct SharedWeight<'a> {
    id: u32,
    k: usize,
    n: usize,
    wprime: &'a [u64],
    f: &'a [u64],
}

impl SharedWeight<'_> {
    /// The weight id (unique per session).
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Rows (input features).
    pub fn rows(&self) -> usize {
        self.k
    }
    /// Columns (output features).
    pub fn cols(&self) -> usize {
        self.n
    }
}

/// Scratch words for [`setup`] of a `k x n` weight.
pub fn setup_scratch_words(k: usize, n: usize) -> usize {
    k * n
}

/// Sets up weight `id` (`k x n`, row-major shares `w`), storing this party's online
/// matrix in `wprime` and the opened `F` in `f` (both `k x n`).
pub fn setup<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    id: u32,
    k: usize,
    n: usize,
    w: &[AShare],
    wprime: &'a mut [u64],
    f: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<SharedWeight<'a>> {
    check_len("weight shares", k * n, w.len())?;
    check_len("weight storage", k * n, wprime.len())?;
    check_len("weight storage", k * n, f.len())?;
    let item = Item::WeightMask {
        id,
        k: k as u32,
        n: n as u32,
    };
    s.dealer.request(&[item])?;
    s.dealer.take(item, &mut [&mut *wprime])?; // B_i
    crate::ring::sub_into(f, AShare::raw_slice(w), wprime);
    let mut ar = Arena::new(scratch);
    let theirs = ar.take(k * n)?;
    s.peer.exchange_u64(f, theirs)?;
    crate::ring::add_assign(f, theirs);
    if s.party.is_p0() {
        crate::ring::add_assign(wprime, f);
    }
    Ok(SharedWeight {
        id,
        k,
        n,
        wprime,
        f,
    })
}

/// The per-inference mask material of one weight product (single use).
pub struct Prepared<'a> {
    m: usize,
    truncate: bool,
    a: &'a mut [u64],
    pre: &'a mut [u64],
    trunc_r: &'a mut [u64],
    trunc_s: &'a mut [u64],
}

/// Storage words [`prepare`] needs for `m` rows of a `k x n` weight.
pub fn prepare_words(m: usize, k: usize, n: usize) -> usize {
    m * k + m * n + words_for_bits(m * n) + m * n
}

/// Prepares one product of `m` input rows with `w` (offline: before the input exists).
pub fn prepare<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &SharedWeight<'_>,
    m: usize,
    storage: &'a mut [u64],
) -> Result<Prepared<'a>> {
    prepare_with(s, w, m, true, storage)
}

/// [`prepare`] for a product whose result is not truncated (an integer input such as a
/// one-hot matrix times a fixed-point weight): no truncation material, and [`apply`]
/// then returns the ring product.
pub fn prepare_ring<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &SharedWeight<'_>,
    m: usize,
    storage: &'a mut [u64],
) -> Result<Prepared<'a>> {
    prepare_with(s, w, m, false, storage)
}

fn prepare_with<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &SharedWeight<'_>,
    m: usize,
    truncate: bool,
    storage: &'a mut [u64],
) -> Result<Prepared<'a>> {
    let (k, n) = (w.k, w.n);
    let mut ar = Arena::new(storage);
    let a = ar.take(m * k)?;
    let pre = ar.take(m * n)?;
    let trunc_r = ar.take(words_for_bits(m * n))?;
    let trunc_s = ar.take(m * n)?;
    let item = Item::WeightTriple {
        id: w.id,
        m: m as u32,
        k: k as u32,
        n: n as u32,
    };
    let faithful = truncate && s.trunc_mode == TruncMode::Faithful;
    if faithful {
        s.dealer
            .request(&[item, trunc::item(m * n, s.enc.frac_bits())])?;
    } else {
        s.dealer.request(&[item])?;
    }
    s.dealer.take(item, &mut [&mut *a, &mut *pre])?; // A_i, C_i
    s.kernel.gemm(m, k, n, a, w.f, pre, true);
    if faithful {
        trunc::take_material(&mut s.dealer, m * n, s.enc.frac_bits(), trunc_r, trunc_s)?;
    }
    Ok(Prepared {
        m,
        truncate,
        a,
        pre,
        trunc_r,
        trunc_s,
    })
}

/// Scratch words for [`apply`].
pub fn apply_scratch_words(m: usize, k: usize, n: usize) -> usize {
    2 * m * k + trunc::apply_scratch_words(m * n)
}

/// Online product `out = x w` (`x` is `m x k`), consuming the prepared mask.
pub fn apply<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &SharedWeight<'_>,
    prep: Prepared<'_>,
    x: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (m, k, n) = (prep.m, w.k, w.n);
    check_len("weight product input", m * k, x.len())?;
    check_len("weight product output", m * n, out.len())?;
    let mut ar = Arena::new(scratch);
    let mine = ar.take(m * k)?;
    let theirs = ar.take(m * k)?;
    crate::ring::sub_into(mine, AShare::raw_slice(x), prep.a);
    let o = AShare::raw_slice_mut(out);
    o.copy_from_slice(prep.pre);
    s.peer.exchange_u64(mine, theirs)?;
    crate::ring::add_assign(mine, theirs); // E
    s.kernel.gemm(m, k, n, mine, w.wprime, o, true);
    if !prep.truncate {
        return Ok(());
    }
    match s.trunc_mode {
        TruncMode::Faithful => trunc::apply(s, out, prep.trunc_r, prep.trunc_s, ar.rest()),
        TruncMode::LocalSecureMl => {
            trunc::local(s.party, o, s.enc.frac_bits());
            Ok(())
        }
    }
}

/// Online cost of [`apply`] for `m` rows of a secret-shared `k x n` weight (both parties
/// open `E`, then the truncation).
pub fn apply_cost(m: usize, k: usize, n: usize) -> super::Cost {
    super::Cost::new(1, 8 * (m * k) as u64) + super::trunc::cost(m * n)
}

/// A weight P0 owns in the clear, after [`setup_owned`]: P0 keeps `W`, P1 keeps
/// `F = W - B` (both `k x n`, row-major).
#[derive(Clone, Copy)]
pub struct OwnedWeight<'a> {
    id: u32,
    k: usize,
    n: usize,
    mat: &'a [u64],
    /// P0's `W` kept as sign-extended 32-bit values ([`OwnedWeight::view_i32`]).
    narrow: &'a [i32],
}

impl OwnedWeight<'_> {
    /// A weight known only by its shape, for recording a program's plan or cost with
    /// [`crate::kernel::NullKernel`] (it multiplies nothing).
    pub fn shape_only(id: u32, k: usize, n: usize) -> OwnedWeight<'static> {
        OwnedWeight {
            id,
            k,
            n,
            mat: &[],
            narrow: &[],
        }
    }
    /// A view of a weight set up earlier with [`setup_owned`] whose matrix (`W` at P0, `F`
    /// at P1) the caller kept.
    pub fn view(id: u32, k: usize, n: usize, mat: &[u64]) -> Result<OwnedWeight<'_>> {
        check_len("owned weight matrix", k * n, mat.len())?;
        Ok(OwnedWeight {
            id,
            k,
            n,
            mat,
            narrow: &[],
        })
    }
    /// P0's view of a weight whose `W` it keeps as 32-bit values, each the ring element it
    /// sign-extends to (half the memory; see [`MatMul::gemm_i32`]).
    pub fn view_i32(id: u32, k: usize, n: usize, w: &[i32]) -> Result<OwnedWeight<'_>> {
        check_len("owned weight matrix", k * n, w.len())?;
        Ok(OwnedWeight {
            id,
            k,
            n,
            mat: &[],
            narrow: w,
        })
    }
    /// The weight id.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Rows (input features).
    pub fn rows(&self) -> usize {
        self.k
    }
    /// Columns (output features).
    pub fn cols(&self) -> usize {
        self.n
    }
    /// This party's matrix: `W` at P0, `F` at P1.
    pub fn matrix(&self) -> &[u64] {
        self.mat
    }
    /// P0's `W` as 32-bit values when kept that way ([`OwnedWeight::view_i32`]; empty
    /// otherwise).
    pub fn narrow_matrix(&self) -> &[i32] {
        self.narrow
    }
}

/// Scratch words [`setup_owned`] needs at P0 (the mask of the weight; 0 at P1).
pub fn setup_owned_scratch_words(party: PartyId, k: usize, n: usize) -> usize {
    if party.is_p0() {
        k * n
    } else {
        0
    }
}

/// Sets up weight `id` that P0 owns in the clear (see the module docs): `w` is `W`
/// (`k x n` ring elements) at P0, `None` at P1; `f` receives `F` at P1 (empty at P0).
pub fn setup_owned<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    id: u32,
    k: usize,
    n: usize,
    w: Option<&'a [u64]>,
    f: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<OwnedWeight<'a>> {
    let item = Item::WeightMaskOwned {
        id,
        k: k as u32,
        n: n as u32,
    };
    s.dealer.request(&[item])?;
    if s.party.is_p0() {
        let w = w.ok_or(crate::Error::Param("P0 must provide the weight it owns"))?;
        check_len("owned weight", k * n, w.len())?;
        let b = Arena::new(scratch).take(k * n)?;
        s.dealer.take(item, &mut [&mut *b])?; // B
        for (x, wv) in b.iter_mut().zip(w) {
            *x = wv.wrapping_sub(*x); // F = W - B
        }
        s.peer.send_u64(b)?;
        Ok(OwnedWeight {
            id,
            k,
            n,
            mat: w,
            narrow: &[],
        })
    } else {
        check_len("owned weight storage", k * n, f.len())?;
        s.dealer.take(item, &mut [&mut []])?; // P1 holds nothing of B
        s.peer.recv_u64(f)?;
        Ok(OwnedWeight {
            id,
            k,
            n,
            mat: f,
            narrow: &[],
        })
    }
}

/// The item of one product of `m` rows with an owned weight (`onehot`: for
/// [`apply_owned_onehot`]).
pub fn owned_item(w: &OwnedWeight<'_>, m: usize, onehot: bool) -> Item {
    Item::OwnedTriple {
        id: w.id,
        m: m as u32,
        k: w.k as u32,
        n: w.n as u32,
        onehot,
    }
}

/// Turns P1's live share `(A, C)` of an owned triple into the prepared `P = A F + C`, in
/// place in `c` (`f` is P1's `F`, `k x n`). Done before the online phase.
pub fn prepare_owned<K: MatMul>(
    kernel: &K,
    (m, k, n): (usize, usize, usize),
    a: &[u64],
    f: &[u64],
    c: &mut [u64],
) -> Result<()> {
    check_len("owned triple A", m * k, a.len())?;
    check_len("owned weight F", k * n, f.len())?;
    check_len("owned triple C", m * n, c.len())?;
    kernel.gemm(m, k, n, a, f, c, true);
    Ok(())
}

/// Scratch words [`apply_owned`] and [`apply_owned_onehot`] need for `m` rows.
pub fn owned_scratch_words(m: usize, k: usize, n: usize) -> usize {
    m * k + trunc::scratch_words(m * n)
}

/// Takes an owned triple's material: `out` receives `C_0` (P0) or `P_1` (P1, prepared
/// here if the dealer stream is live), `a` receives P1's `A` (unused at P0).
fn take_owned<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    m: usize,
    a: &mut [u64],
    onehot: bool,
    out: &mut [u64],
) -> Result<()> {
    let item = owned_item(w, m, onehot);
    if s.party.is_p0() {
        s.dealer.take(item, &mut [&mut [], out])
    } else {
        s.dealer.take(item, &mut [&mut *a, &mut *out])?;
        if !s.dealer.prepared_weights() {
            prepare_owned(&s.kernel, (m, w.k, w.n), a, w.mat, out)?;
        }
        Ok(())
    }
}

/// The owned product's opening: P1 sends `E_1 = x1 - A` (mod `2^m`, `m / 8` bytes
/// per entry); P0 receives it, forms `E = x0 + E_1` and adds `E W` to `out` (correct
/// modulo `2^m`). `x` is this party's share (or P1's plaintext).
fn open_owned<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    m: usize,
    x: Option<&[u64]>,
    ring: Width,
    e: &mut [u64],
    out: &mut [u64],
) -> Result<()> {
    if s.party.is_p0() {
        s.peer.recv_narrow(e, ring.entry_bytes())?;
        if let Some(x0) = x {
            crate::ring::add_assign(e, x0);
        }
        if w.narrow.is_empty() {
            s.kernel.gemm(m, w.k, w.n, e, w.mat, out, true);
        } else {
            s.kernel.gemm_i32(m, w.k, w.n, e, w.narrow, out, true);
        }
    } else {
        let x1 = x.ok_or(crate::Error::Param("P1 must provide its input rows"))?;
        for (d, xv) in e.iter_mut().zip(x1) {
            *d = xv.wrapping_sub(*d); // E_1 = X_1 - A (A was taken into e)
        }
        s.peer.send_narrow(e, ring.entry_bytes())?;
    }
    Ok(())
}

/// Online product `out = x w` with a weight P0 owns (`x` is `m x k` shares), taking its
/// prepared material from the session's dealer; then the truncation.
pub fn apply_owned<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    x: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    apply_owned_in(s, w, x, Width::FULL, out, scratch)
}

/// [`apply_owned`] in the ring of `ring`'s `m` bits: P1 opens `m / 8` bytes per entry
/// and the truncation lifts the product, known modulo `2^m`, to full shares. Valid while
/// every output sum `|sum_k x_ik w_kj| < 2^(m - 2 - 2f)` (`2^14` at 48 bits, `f = 16`).
/// Online cost: [`owned_cost_in`].
pub fn apply_owned_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    x: &[AShare],
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let m = owned_rows(w, x, out)?;
    let f = s.enc.frac_bits();
    match s.trunc_mode {
        TruncMode::Faithful => {
            s.dealer
                .request(&[owned_item(w, m, false), trunc::item_in(m * w.n, f, ring)])?;
            owned_product(s, w, m, x, ring, out, scratch)?;
            trunc::run_in(s, out, f, ring, scratch)
        }
        TruncMode::LocalSecureMl => {
            s.dealer.request(&[owned_item(w, m, false)])?;
            owned_product(s, w, m, x, Width::FULL, out, scratch)?;
            trunc::local(s.party, AShare::raw_slice_mut(out), f);
            Ok(())
        }
    }
}

/// [`apply_owned`] without the truncation: `out = x w` at `2f` fractional bits (for a
/// consumer that reads the extra bits, such as [`super::gelu::gelu_wide`]), correct
/// modulo `2^m` for `m` = `ring`'s bits (the consumer must read it in that ring).
/// Online cost: [`owned_wide_cost_in`].
pub fn apply_owned_wide<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    x: &[AShare],
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let m = owned_rows(w, x, out)?;
    s.dealer.request(&[owned_item(w, m, false)])?;
    owned_product(s, w, m, x, ring, out, scratch)
}

/// The rows `m` of an owned product's input `x` (`m x k`), checking `x` and `out`.
fn owned_rows(w: &OwnedWeight<'_>, x: &[AShare], out: &[AShare]) -> Result<usize> {
    let m = x.len().checked_div(w.k).unwrap_or(0);
    check_len("owned product input", m * w.k, x.len())?;
    check_len("owned product output", m * w.n, out.len())?;
    Ok(m)
}

/// The untruncated owned product on requested material (scratch: `m k` words).
fn owned_product<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    m: usize,
    x: &[AShare],
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let e = Arena::new(scratch).take(m * w.k)?;
    let o = AShare::raw_slice_mut(out);
    take_owned(s, w, m, e, false, o)?;
    open_owned(s, w, m, Some(AShare::raw_slice(x)), ring, e, o)
}

/// Bits of the opening of [`apply_owned_onehot`]: the mask's failure probability per row
/// is `2^-ONEHOT_BITS`.
pub const ONEHOT_BITS: u32 = 32;

/// Online product `out = X w` where `X` (`m x k`, entries 0 or 1, at most one 1 per row:
/// the one-hot token matrix) is P1's own plaintext (`Some` at P1, `None` at P0).
///
/// P1 opens `E = X - A mod 2^32` in 4 bytes per entry, not 8: its mask `A` is drawn as a
/// uniform `a` of Z_{2^32} and used (in the triple `C = A B` and in `A F`) as the integer
/// `Abar = a - 2^32` for `a != 0`, `Abar = 0` for `a = 0` ([`crate::dealer::Fill::OnehotMask`]).
/// P0 reads `E` as an integer in `[0, 2^32)` and computes `E W + C_0` in the 64-bit ring
/// as usual. Then `E + Abar = X` over the integers entry by entry: for `x = 0`,
/// `E = 2^32 - a` (or 0 when `a = 0`); for `x = 1`, `E = 2^32 + 1 - a` for `a >= 2` and
/// `E = 1` for `a = 0`. The one exception is `x = 1, a = 1` (`E = 0`, `E + Abar = 1 - 2^32`):
/// P1, who knows `X` and `a`, refuses to run the product then ([`Error::Param`]). To keep
/// that refusal independent of the tokens, P1 checks one entry per row whatever the
/// row holds: the column of its 1, or column 0 for a row of zeros. So it happens with
/// probability `2^-32` per row (`2^-25` for 128 rows) for every input, and says nothing
/// about `X` but that it happened; running the text again draws a fresh mask.
/// `E` is uniform on Z_{2^32} for every `X`, so P0 learns nothing else.
/// No truncation: the product keeps `W`'s scale.
///
/// Online cost ([`owned_onehot_cost`]): P1 sends `4 m k` bytes (no round); P0 waits for
/// them (one round).
pub fn apply_owned_onehot<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    m: usize,
    x: Option<&[u64]>,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (k, n) = (w.k, w.n);
    check_len("owned product output", m * n, out.len())?;
    s.dealer.request(&[owned_item(w, m, true)])?;
    let e = Arena::new(scratch).take(m * k)?;
    let o = AShare::raw_slice_mut(out);
    take_owned(s, w, m, e, true, o)?;
    let width = (ONEHOT_BITS / 8) as u8;
    if s.party.is_p0() {
        s.peer.recv_narrow(e, width)?;
        if w.narrow.is_empty() {
            s.kernel.gemm(m, k, n, e, w.mat, o, true);
        } else {
            s.kernel.gemm_i32(m, k, n, e, w.narrow, o, true);
        }
    } else {
        let x = x.ok_or(crate::Error::Param("P1 must provide its one-hot rows"))?;
        check_len("one-hot rows", m * k, x.len())?;
        onehot_open(x, k, e)?;
        s.peer.send_narrow(e, width)?;
    }
    Ok(())
}

/// P1's opening of [`apply_owned_onehot`]: `e` holds the masks `Abar` and receives
/// `E = X - Abar mod 2^32`. Refuses a row that is not 0/1 with at most one 1, and the
/// mask value `a = 1` at the row's checked entry (see [`apply_owned_onehot`]).
pub fn onehot_open(x: &[u64], k: usize, e: &mut [u64]) -> Result<()> {
    check_len("one-hot masks", x.len(), e.len())?;
    let bad = 1u64.wrapping_sub(1 << ONEHOT_BITS); // Abar of a = 1
    let low = crate::ring::low_mask(ONEHOT_BITS);
    for (xr, er) in x.chunks(k.max(1)).zip(e.chunks_mut(k.max(1))) {
        let mut checked = 0;
        let mut ones = 0;
        for (j, xv) in xr.iter().enumerate() {
            match *xv {
                0 => {}
                1 => {
                    ones += 1;
                    checked = j;
                }
                _ => return Err(crate::Error::Param("one-hot rows must hold only 0 and 1")),
            }
        }
        if ones > 1 {
            return Err(crate::Error::Param("a one-hot row holds more than one 1"));
        }
        if er.get(checked) == Some(&bad) {
            return Err(crate::Error::Param(
                "the one-hot mask drew its one bad value (probability 2^-32 per token); \
                 run the text again",
            ));
        }
        for (ev, xv) in er.iter_mut().zip(xr) {
            *ev = xv.wrapping_sub(*ev) & low;
        }
    }
    Ok(())
}

/// Online cost of [`apply_owned`] for `m` rows of a `k x n` owned weight, for P0 (`p0`) or
/// P1: P1 sends its half of `E` (no round), P0 waits for it (one round); then the
/// truncation.
pub fn owned_cost(m: usize, k: usize, n: usize, p0: bool) -> super::Cost {
    owned_cost_in(m, k, n, Width::FULL, p0)
}

/// Online cost of [`apply_owned_in`]: P1 sends `m / 8` bytes per input entry.
pub fn owned_cost_in(m: usize, k: usize, n: usize, ring: Width, p0: bool) -> super::Cost {
    owned_open_cost(m, k, ring.entry_bytes() as u64, p0) + super::trunc::cost(m * n)
}

/// Online cost of [`apply_owned_wide`]: [`owned_cost_in`] without the truncation.
pub fn owned_wide_cost_in(m: usize, k: usize, ring: Width, p0: bool) -> super::Cost {
    owned_open_cost(m, k, ring.entry_bytes() as u64, p0)
}

/// Online cost of P1's opening of `m x k` entries of `bytes_per_entry` bytes to P0: P1
/// sends without waiting (no round), P0 waits for it (one round).
fn owned_open_cost(m: usize, k: usize, bytes_per_entry: u64, p0: bool) -> super::Cost {
    if p0 {
        super::Cost::new(1, 0)
    } else {
        super::Cost::new(0, bytes_per_entry * (m * k) as u64)
    }
}

/// Online cost of [`apply_owned_onehot`] for `m` one-hot rows of `k` entries.
pub fn owned_onehot_cost(m: usize, k: usize, p0: bool) -> super::Cost {
    owned_open_cost(m, k, (ONEHOT_BITS / 8) as u64, p0)
}

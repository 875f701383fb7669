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
//! # Weights owned by P0 ([`setup_owned`])
//!
//! When P0 holds `W` in the clear (the model owner), D gives the whole mask `B` to P0
//! (drawn from P0's weight stream; P1 holds none of it) and P0 sends `F = W - B` to P1
//! (uniform to P1, since `B` is P0's and D's only). The preparation is unchanged
//! (`P_i = A_i F + C_i`). Online P1 sends only `E_1 = X_1 - A_1` and keeps `Z_1 = P_1`;
//! P0 computes `E = X_0 - A_0 + E_1` and `Z_0 = E W + P_0` (`E W + A F + A B = X W`).
//! So P1 does no matmul online, P0 does one, and only P1's half of `E` crosses the line:
//! online cost: P1 sends `8mk` bytes (0 rounds), P0 receives them (1 round), then the
//! truncation (1 round, `ceil(mn/8)` bytes each). Setup: P0 sends `8kn` bytes. P0 learns
//! `B`, which tells it nothing: every value P0 receives is masked by P1's `A_1`.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::trunc::{self, TruncMode};

/// A party's view of a shared weight after [`setup`].
pub struct SharedWeight<'a> {
    id: u32,
    k: usize,
    n: usize,
    wprime: &'a [u64],
    f: &'a [u64],
    owned: bool,
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
        owned: false,
    })
}

/// Sets up weight `id` that P0 owns in the clear: `w` (`k x n`, ring elements) at P0,
/// `None` at P1 (see the module docs). P0 keeps `W` in `wprime`; both keep `F` in `f`.
pub fn setup_owned<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    id: u32,
    k: usize,
    n: usize,
    w: Option<&[u64]>,
    wprime: &'a mut [u64],
    f: &'a mut [u64],
) -> Result<SharedWeight<'a>> {
    check_len("weight storage", k * n, wprime.len())?;
    check_len("weight storage", k * n, f.len())?;
    let item = Item::WeightMaskOwned {
        id,
        k: k as u32,
        n: n as u32,
    };
    s.dealer.request(&[item])?;
    s.dealer.take(item, &mut [&mut *wprime])?; // B at P0, zeros at P1
    if s.party.is_p0() {
        let w = w.ok_or(crate::Error::Param("P0 must provide the weight it owns"))?;
        check_len("owned weight", k * n, w.len())?;
        crate::ring::sub_into(f, w, wprime);
        s.peer.send_u64(f)?;
        wprime.copy_from_slice(w);
    } else {
        s.peer.recv_u64(f)?;
    }
    Ok(SharedWeight {
        id,
        k,
        n,
        wprime,
        f,
        owned: true,
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
    if w.owned {
        // Only P1's half of E travels; only P0 multiplies.
        if s.party.is_p0() {
            s.peer.recv_u64(theirs)?;
            crate::ring::add_assign(mine, theirs); // E
            s.kernel.gemm(m, k, n, mine, w.wprime, o, true);
        } else {
            s.peer.send_u64(mine)?;
        }
    } else {
        s.peer.exchange_u64(mine, theirs)?;
        crate::ring::add_assign(mine, theirs); // E
        s.kernel.gemm(m, k, n, mine, w.wprime, o, true);
    }
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

/// Online cost of [`apply`] for `m` rows of a `k x n` weight, for party P0 (`p0`) or P1:
/// shared weights open `E` both ways; owned weights send P1's half to P0 only.
pub fn apply_cost(m: usize, k: usize, n: usize, owned: bool, p0: bool) -> super::Cost {
    let e = match (owned, p0) {
        (false, _) => super::Cost::new(1, 8 * (m * k) as u64),
        (true, true) => super::Cost::new(1, 0),
        (true, false) => super::Cost::new(0, 8 * (m * k) as u64),
    };
    e + super::trunc::cost(m * n)
}

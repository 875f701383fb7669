//! Every foundation protocol, two parties + dealer, over in-memory links and over TCP,
//! compared with a plaintext f64 reference with the error bound asserted.

use secformer_core::dealer::Dealer as _;
use secformer_core::party::PartyId;
use secformer_core::protocols::{
    input, linear, lookup, matmul, mul, open_rounded, reveal, rounded_entry_bytes, rowmul, sqscale,
    square, trunc, trunc_square, weight, Width,
};
use secformer_core::share::AShare;
use secformer_tests::*;

fn share(s: &mut TestSession, owner: PartyId, vals: &[f64]) -> secformer_core::Result<Vec<AShare>> {
    let mut out = vec![AShare::default(); vals.len()];
    let mine = (s.party() == owner).then_some(vals);
    input::share_input_f64(s, owner, mine, &mut out)?;
    Ok(out)
}

fn open(s: &mut TestSession, x: &[AShare]) -> secformer_core::Result<Vec<f64>> {
    let mut out = vec![0u64; x.len()];
    reveal::reveal(s, x, &mut out)?;
    Ok(dec(&out))
}

/// Rounds values to the fixed-point grid (what the parties actually share).
fn grid(xs: &[f64]) -> Vec<f64> {
    dec(&enc(xs))
}

/// A rounded opening (`open_rounded`): both parties get the same value, within `2^d` of
/// the shared one modulo the ring (the two shares' roundings), the ring's ends included;
/// one round and `rounded_entry_bytes` per entry from each party.
#[test]
fn a_rounded_opening_is_within_its_precision() {
    let mut vals: Vec<u64> = vec![0, 1, u64::MAX, 1 << 47, (1 << 47) - 1, 1 << 63];
    let mut st = 0x9e37_79b9_7f4a_7c15u64;
    while vals.len() < 333 {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        vals.push(st);
    }
    for (ring, d) in [
        (Width::FULL, 0),
        (Width::FULL, 16),
        (Width::bytes(6), 16),
        (Width::bytes(7), 20),
    ] {
        for net in NETS {
            let (p0, p1) = run(net, |s| {
                let mut xs = vec![AShare::default(); vals.len()];
                let own = (s.party() == PartyId::P0).then_some(&vals[..]);
                input::share_input(s, PartyId::P0, own, &mut xs)?;
                let mut mine = AShare::raw_slice(&xs).to_vec();
                let mut theirs = vec![0u64; vals.len()];
                let before = s.peer_stats();
                open_rounded(s.peer_mut(), &mut mine, &mut theirs, ring, d)?;
                let st = s.peer_stats().since(&before);
                let bytes = rounded_entry_bytes(ring, d) as u64 * vals.len() as u64;
                assert_eq!((st.rounds, st.payload_sent), (1, bytes));
                Ok(mine)
            })
            .unwrap();
            let m = ring.bits();
            let low = if m == 64 { u64::MAX } else { (1u64 << m) - 1 };
            for (i, v) in vals.iter().enumerate() {
                assert_eq!(
                    p0[i] & low,
                    p1[i] & low,
                    "both parties hold the same opening"
                );
                // The difference as a signed number modulo 2^m.
                let diff = (p0[i].wrapping_sub(*v) & low) << (64 - m);
                let diff = (diff as i64) >> (64 - m);
                assert!(
                    diff.unsigned_abs() <= 1 << d,
                    "ring {m}, d {d}: {v:#x} off by {diff}"
                );
                if d == 0 {
                    assert_eq!(diff, 0);
                }
            }
        }
    }
}

#[test]
fn input_sharing_and_reveal() {
    let x = reals(1, 100, -1000.0, 1000.0);
    for net in NETS {
        let (a, b) = run(net, |s| {
            let sh = share(s, PartyId::P1, &x)?;
            open(s, &sh)
        })
        .unwrap();
        assert_eq!(a, grid(&x));
        assert_eq!(b, grid(&x));
    }
}

#[test]
fn input_sharing_costs_nothing_and_shares_look_random() {
    let x = vec![3.0; 64];
    let (a, b) = run(Net::Mem, |s| {
        let before = s.peer_stats();
        let sh = share(s, PartyId::P0, &x)?;
        let st = s.peer_stats().since(&before);
        assert_eq!((st.payload_sent, st.rounds), (0, 0));
        Ok(sh.iter().map(|v| v.raw()).collect::<Vec<u64>>())
    })
    .unwrap();
    // Neither share alone equals the encoding, and shares differ per element.
    let e = enc(&x)[0];
    assert!(a.iter().chain(&b).all(|v| *v != e));
    assert!(b.windows(2).all(|w| w[0] != w[1]));
}

#[test]
fn reveal_to_one_party() {
    let x = reals(2, 10, -5.0, 5.0);
    for net in NETS {
        let (a, b) = run(net, |s| {
            let sh = share(s, PartyId::P0, &x)?;
            if s.party() == PartyId::P1 {
                let mut out = vec![0u64; x.len()];
                reveal::reveal_to(s, PartyId::P1, &sh, Some(&mut out))?;
                Ok(Some(dec(&out)))
            } else {
                reveal::reveal_to(s, PartyId::P1, &sh, None)?;
                Ok(None)
            }
        })
        .unwrap();
        assert_eq!(a, None);
        assert_eq!(b, Some(grid(&x)));
    }
}

#[test]
fn local_linear_ops() {
    let x = reals(3, 50, -100.0, 100.0);
    let y = reals(4, 50, -100.0, 100.0);
    let c = reals(5, 50, -10.0, 10.0);
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P0, &x)?;
            let ys = share(s, PartyId::P1, &y)?;
            let mut sum = vec![AShare::default(); x.len()];
            let mut diff = sum.clone();
            linear::add(&xs, &ys, &mut sum)?;
            linear::sub(&xs, &ys, &mut diff)?;
            let mut pc = xs.clone();
            linear::add_public(s.party(), &mut pc, &enc(&c))?;
            let mut sc = xs.clone();
            linear::mul_public_ring(&mut sc, 3);
            let mut fx = xs.clone();
            let mut scratch = vec![0u64; trunc::scratch_words(x.len())];
            linear::mul_public_fixed(s, &mut fx, -0.3, &mut scratch)?;
            Ok([
                open(s, &sum)?,
                open(s, &diff)?,
                open(s, &pc)?,
                open(s, &sc)?,
                open(s, &fx)?,
            ])
        })
        .unwrap();
        let (gx, gy, gc) = (grid(&x), grid(&y), grid(&c));
        for i in 0..x.len() {
            assert_eq!(r[0][i], gx[i] + gy[i]);
            assert_eq!(r[1][i], gx[i] - gy[i]);
            assert_eq!(r[2][i], gx[i] + gc[i]);
            assert_eq!(r[3][i], 3.0 * gx[i]);
            let m03 = dec(&enc(&[-0.3]))[0];
            assert!(
                (r[4][i] - gx[i] * m03).abs() < LSB,
                "{} vs {}",
                r[4][i],
                gx[i] * m03
            );
        }
    }
}

#[test]
fn beaver_product_within_one_lsb() {
    let mut x = reals(6, 1000, -100.0, 100.0);
    let mut y = reals(7, 1000, -100.0, 100.0);
    // Edges: zero, one LSB, signs, large magnitudes (|xy| near 2^30 is the faithful limit).
    x.extend([0.0, LSB, -LSB, 1.0, -1.0, 30000.0, -30000.0]);
    y.extend([5.0, 1.0, 1.0, -1.0, -1.0, 30000.0, 30000.0]);
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P0, &x)?;
            let ys = share(s, PartyId::P1, &y)?;
            let mut z = vec![AShare::default(); x.len()];
            let mut scratch = vec![0u64; mul::scratch_words(x.len())];
            mul::mul(s, &xs, &ys, &mut z, &mut scratch)?;
            open(s, &z)
        })
        .unwrap();
        let (gx, gy) = (grid(&x), grid(&y));
        for i in 0..x.len() {
            let want = gx[i] * gy[i];
            assert!(
                (r[i] - want).abs() < LSB,
                "{} * {}: {} vs {}",
                gx[i],
                gy[i],
                r[i],
                want
            );
        }
    }
}

#[test]
fn ring_product_is_exact() {
    let x: Vec<u64> = (0..200u64)
        .map(|i| i.wrapping_mul(0x9e3779b97f4a7c15))
        .collect();
    let y: Vec<u64> = (0..200u64).map(|i| i ^ 0xdeadbeef).collect();
    for net in NETS {
        let (r, _) = run(net, |s| {
            let mut xs = vec![AShare::default(); x.len()];
            let mut ys = xs.clone();
            let own0 = (s.party() == PartyId::P0).then_some(&x[..]);
            let own1 = (s.party() == PartyId::P1).then_some(&y[..]);
            input::share_input(s, PartyId::P0, own0, &mut xs)?;
            input::share_input(s, PartyId::P1, own1, &mut ys)?;
            let mut z = vec![AShare::default(); x.len()];
            let mut scratch = vec![0u64; mul::scratch_words(x.len())];
            mul::mul_ring(s, &xs, &ys, &mut z, &mut scratch)?;
            let mut out = vec![0u64; x.len()];
            reveal::reveal(s, &z, &mut out)?;
            Ok(out)
        })
        .unwrap();
        for i in 0..x.len() {
            assert_eq!(r[i], x[i].wrapping_mul(y[i]));
        }
    }
}

#[test]
fn square_within_one_lsb() {
    let mut x = reals(8, 500, -300.0, 300.0);
    x.extend([0.0, LSB, -LSB, 32000.0, -32000.0]);
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let mut z = vec![AShare::default(); x.len()];
            let mut scratch = vec![0u64; square::scratch_words(x.len())];
            square::square(s, &xs, &mut z, &mut scratch)?;
            open(s, &z)
        })
        .unwrap();
        let g = grid(&x);
        for i in 0..x.len() {
            assert!((r[i] - g[i] * g[i]).abs() < LSB, "{}^2: {}", g[i], r[i]);
        }
    }
}

/// Square and column-scaled copy from one opening: both products exact in the ring (at
/// 2f fractional bits, before any truncation), with the documented rounds and bytes.
#[test]
fn square_scale_is_exact_with_one_opening() {
    let (rows, cols) = (5, 37);
    let mut x = reals(31, rows * cols, -300.0, 300.0);
    x[0] = 32000.0;
    x[1] = -32000.0;
    x[2] = 0.0;
    let g = reals(32, cols, -30.0, 30.0);
    let (ex, eg) = (enc(&x), enc(&g));
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let gs = share(s, PartyId::P0, &g)?;
            let mut sq = vec![AShare::default(); x.len()];
            let mut gx = vec![AShare::default(); x.len()];
            let mut scratch = vec![0u64; sqscale::scratch_words(rows, cols)];
            let before = s.peer_stats();
            sqscale::square_scale(s, rows, cols, &xs, &gs, &mut sq, &mut gx, &mut scratch)?;
            let st = s.peer_stats().since(&before);
            let c = sqscale::cost(rows, cols);
            assert_eq!((st.rounds, st.payload_sent), (c.rounds, c.bytes(s.party())));
            let mut out = vec![0u64; 2 * x.len()];
            reveal::reveal(s, &sq, &mut out[..x.len()])?;
            reveal::reveal(s, &gx, &mut out[x.len()..])?;
            Ok(out)
        })
        .unwrap();
        for i in 0..rows * cols {
            assert_eq!(r[i], ex[i].wrapping_mul(ex[i]), "square of {}", x[i]);
            let want = ex[i].wrapping_mul(eg[i % cols]);
            assert_eq!(r[rows * cols + i], want, "{} x {}", x[i], g[i % cols]);
        }
    }
}

/// The row product whose row factor is still to be truncated (`rowmul::run_pending`): the
/// factor `v / 2^g` (faithful: within one unit) times each row, truncated by `shift`,
/// against the same product on the opened truncated factor, within one LSB of the output
/// plus the factor's unit times the row's value; at the factor's range ends (`|v|` near
/// `2^62`), for shifts below and above 32, in the full ring and in 7 bytes; one round plus
/// the output's truncation, with `rowmul::cost_pending`'s bytes.
#[test]
fn row_product_truncates_its_factor_in_its_round() {
    let (rows, cols) = (67, 9);
    let mut x = reals(33, rows * cols, -300.0, 300.0);
    // Rows 3 and 4 carry the factor's range ends: their entries are one unit, so that the
    // product stays in range and shows the factor's truncation itself.
    for v in &mut x[3 * cols..5 * cols] {
        *v = LSB;
    }
    for g in [8u32, 20, 36] {
        let lim = (1i64 << 62) - (1i64 << g) - 1;
        let mut v: Vec<i64> = vec![0, 1, -1, lim, -lim, 1 << g, -(1 << g)];
        let mut st = 0x2545_f491_4f6c_dd1du64;
        while v.len() < rows {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            // Row factors up to 2^(g+20) units: |r| < 2^20 units at 16 bits (16 reals).
            v.push((st % (1u64 << (g + 21))) as i64 - (1i64 << (g + 20)));
        }
        let vals: Vec<u64> = v.iter().map(|x| *x as u64).collect();
        // In the 7-byte ring the products must stay below 2^54 units: the range-end
        // factors of g = 8 (2^54 units) are out of it.
        let rings = if g < 20 {
            vec![Width::FULL]
        } else {
            vec![Width::FULL, Width::bytes(7)]
        };
        for (net, ring) in NETS
            .into_iter()
            .flat_map(|n| rings.iter().map(move |w| (n, *w)))
        {
            let (r, _) = run(net, |s| {
                let xs = share(s, PartyId::P1, &x)?;
                let mut vs = vec![AShare::default(); rows];
                let own = (s.party() == PartyId::P0).then_some(&vals[..]);
                input::share_input(s, PartyId::P0, own, &mut vs)?;
                let mut out = vec![AShare::default(); rows * cols];
                let mut scratch = vec![0u64; rowmul::pending_scratch_words(rows, cols)];
                let before = s.peer_stats();
                rowmul::run_pending(s, rows, cols, &xs, &vs, g, 16, ring, &mut out, &mut scratch)?;
                let st = s.peer_stats().since(&before);
                let c = rowmul::cost_pending(rows, cols, ring);
                assert_eq!((st.rounds, st.payload_sent), (c.rounds, c.bytes(s.party())));
                let mut o = vec![0u64; rows * cols];
                reveal::reveal(s, &out, &mut o)?;
                Ok(o)
            })
            .unwrap();
            let ex = enc(&x);
            for i in 0..rows {
                let factor = v[i] as f64 / (1u64 << g) as f64; // in units of 2^-16
                for j in 0..cols {
                    let idx = i * cols + j;
                    let xi = ex[idx] as i64 as f64;
                    let want = xi * factor / 65536.0;
                    let got = r[idx] as i64 as f64;
                    let tol = 1.0 + xi.abs() / 65536.0 + 1e-6;
                    assert!((got - want).abs() <= tol, "g {g}: row {i}: {got} vs {want}");
                }
            }
        }
    }
}

fn plain_matmul(m: usize, k: usize, n: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

#[test]
fn shared_matmul_within_one_lsb() {
    let (m, k, n) = (7, 33, 5);
    let x = reals(9, m * k, -4.0, 4.0);
    let y = reals(10, k * n, -4.0, 4.0);
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P0, &x)?;
            let ys = share(s, PartyId::P1, &y)?;
            let mut z = vec![AShare::default(); m * n];
            let mut scratch = vec![0u64; matmul::scratch_words(m, k, n)];
            matmul::matmul(s, m, k, n, &xs, &ys, &mut z, &mut scratch)?;
            open(s, &z)
        })
        .unwrap();
        let want = plain_matmul(m, k, n, &grid(&x), &grid(&y));
        assert!(
            max_abs_diff(&r, &want) < LSB,
            "max diff {}",
            max_abs_diff(&r, &want)
        );
    }
}

/// Batched products (attention's heads) in the full ring and in the 6-byte ring (outputs
/// below 2^14 at f = 16): within one LSB of the f64 product, with `batch_cost_in`'s
/// rounds and bytes.
#[test]
fn batched_matmul_in_a_narrow_ring_within_one_lsb() {
    let (b, m, k, n) = (3, 4, 9, 5);
    let x = reals(13, b * m * k, -6.0, 6.0);
    let y = reals(14, b * k * n, -6.0, 6.0);
    for net in NETS {
        for ring in [Width::FULL, Width::bytes(6)] {
            let (r, _) = run(net, |s| {
                let xs = share(s, PartyId::P0, &x)?;
                let ys = share(s, PartyId::P1, &y)?;
                let mut z = vec![AShare::default(); b * m * n];
                let mut scratch = vec![0u64; matmul::batch_scratch_words(b, m, k, n)];
                let before = s.peer_stats();
                matmul::matmul_batch_in(s, (b, m, k, n), &xs, &ys, ring, &mut z, &mut scratch)?;
                let st = s.peer_stats().since(&before);
                let want = matmul::batch_cost_in(b, m, k, n, ring);
                assert_eq!(
                    (st.rounds, st.payload_sent),
                    (want.rounds, want.bytes(s.party()))
                );
                open(s, &z)
            })
            .unwrap();
            for i in 0..b {
                let want = plain_matmul(
                    m,
                    k,
                    n,
                    &grid(&x[i * m * k..(i + 1) * m * k]),
                    &grid(&y[i * k * n..(i + 1) * k * n]),
                );
                let got = &r[i * m * n..(i + 1) * m * n];
                assert!(max_abs_diff(got, &want) < LSB, "{ring:?} block {i}");
            }
        }
    }
}

/// Under the local (SecureML) truncation, which cannot lift a value known modulo `2^m`,
/// a product asked for a narrow ring uses the full one (`trunc::usable`), and a narrow
/// truncation is refused rather than computed wrong.
#[test]
fn local_truncation_keeps_the_full_ring() {
    let (b, m, k, n) = (2, 3, 8, 4);
    let x = reals(19, b * m * k, -3.0, 3.0);
    let y = reals(20, b * k * n, -3.0, 3.0);
    let ring = Width::bytes(6);
    assert_eq!(
        trunc::usable(trunc::TruncMode::LocalSecureMl, ring),
        Width::FULL
    );
    assert_eq!(trunc::usable(trunc::TruncMode::Faithful, ring), ring);
    let (r, _) = run(Net::Mem, |s| {
        s.set_trunc_mode(trunc::TruncMode::LocalSecureMl);
        let xs = share(s, PartyId::P0, &x)?;
        let ys = share(s, PartyId::P1, &y)?;
        let mut z = vec![AShare::default(); b * m * n];
        let mut scratch = vec![0u64; matmul::batch_scratch_words(b, m, k, n)];
        let before = s.peer_stats();
        matmul::matmul_batch_in(s, (b, m, k, n), &xs, &ys, ring, &mut z, &mut scratch)?;
        let sent = s.peer_stats().since(&before).payload_sent;
        assert_eq!(sent, 8 * (b * (m * k + k * n)) as u64, "full-ring openings");
        let mut w = xs.clone();
        assert!(trunc::run_in(s, &mut w, 16, ring, &mut scratch).is_err());
        open(s, &z)
    })
    .unwrap();
    for i in 0..b {
        let want = plain_matmul(
            m,
            k,
            n,
            &grid(&x[i * m * k..(i + 1) * m * k]),
            &grid(&y[i * k * n..(i + 1) * k * n]),
        );
        assert!(max_abs_diff(&r[i * m * n..(i + 1) * m * n], &want) < 2.0 * LSB);
    }
}

#[test]
fn public_matmul_within_one_lsb() {
    let (m, k, n) = (4, 9, 6);
    let x = reals(11, m * k, -10.0, 10.0);
    let p = reals(12, k * n, -1.0, 1.0);
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let mut z = vec![AShare::default(); m * n];
            let mut scratch = vec![0u64; trunc::scratch_words(m * n)];
            linear::matmul_public_fixed(s, m, k, n, &xs, &enc(&p), &mut z, &mut scratch)?;
            open(s, &z)
        })
        .unwrap();
        let want = plain_matmul(m, k, n, &grid(&x), &grid(&p));
        assert!(max_abs_diff(&r, &want) < LSB);
    }
}

#[test]
fn weight_product_across_inferences() {
    let (m, k, n) = (6, 40, 9);
    let w = reals(13, k * n, -1.0, 1.0);
    let inputs = [reals(14, m * k, -8.0, 8.0), reals(15, m * k, -8.0, 8.0)];
    for net in NETS {
        let (r, _) = run(net, |s| {
            let ws = share(s, PartyId::P0, &w)?;
            let mut wprime = vec![0u64; k * n];
            let mut f = vec![0u64; k * n];
            let mut scratch = vec![
                0u64;
                weight::setup_scratch_words(k, n)
                    .max(weight::apply_scratch_words(m, k, n))
            ];
            let sw = weight::setup(s, 3, k, n, &ws, &mut wprime, &mut f, &mut scratch)?;
            let mut outs = Vec::new();
            for x in &inputs {
                let mut storage = vec![0u64; weight::prepare_words(m, k, n)];
                let prep = weight::prepare(s, &sw, m, &mut storage)?;
                let xs = share(s, PartyId::P1, x)?;
                let mut z = vec![AShare::default(); m * n];
                weight::apply(s, &sw, prep, &xs, &mut z, &mut scratch)?;
                outs.push(open(s, &z)?);
            }
            Ok(outs)
        })
        .unwrap();
        for (x, got) in inputs.iter().zip(&r) {
            let want = plain_matmul(m, k, n, &grid(x), &grid(&w));
            assert!(
                max_abs_diff(got, &want) < LSB,
                "max diff {}",
                max_abs_diff(got, &want)
            );
        }
    }
}

/// Shares raw ring values at 2f fractional bits and truncates them.
fn truncate_values(net: Net, vals: &[u64], mode: trunc::TruncMode) -> Vec<u64> {
    let (r, _) = run(net, |s| {
        s.set_trunc_mode(mode);
        let mut xs = vec![AShare::default(); vals.len()];
        let own = (s.party() == PartyId::P0).then_some(vals);
        input::share_input(s, PartyId::P0, own, &mut xs)?;
        let mut scratch = vec![0u64; trunc::scratch_words(vals.len())];
        trunc::trunc(s, &mut xs, &mut scratch)?;
        let mut out = vec![0u64; vals.len()];
        reveal::reveal(s, &xs, &mut out)?;
        Ok(out)
    })
    .unwrap();
    r
}

/// Shares raw ring values from P0; in a ring narrower than 64 bits each party's share then
/// carries garbage above bit `m` (as after a product computed on `m`-bit openings).
fn share_mod(
    s: &mut TestSession,
    vals: &[u64],
    ring: Width,
) -> secformer_core::Result<Vec<AShare>> {
    let mut xs = vec![AShare::default(); vals.len()];
    let own = (s.party() == PartyId::P0).then_some(vals);
    input::share_input(s, PartyId::P0, own, &mut xs)?;
    let m = ring.bits();
    if m < 64 {
        let junk: u64 = if s.party().is_p0() { 0x5bd1 } else { 0xe995 };
        for (i, x) in AShare::raw_slice_mut(&mut xs).iter_mut().enumerate() {
            *x = x.wrapping_add(((i as u64 + 3) * junk) << m);
        }
    }
    Ok(xs)
}

/// Runs the fused truncation and square on `vals` in `ring` (checking its rounds and bytes
/// against `cost_in`) and opens `(y, y^2)`.
fn trunc_square_run(net: Net, vals: &[u64], f: u32, ring: Width) -> (Vec<u64>, Vec<u64>) {
    let (r, _) = run(net, |s| {
        let mut xs = share_mod(s, vals, ring)?;
        let mut sq = vec![AShare::default(); vals.len()];
        let mut scratch = vec![0u64; trunc_square::scratch_words(vals.len())];
        let before = s.peer_stats();
        trunc_square::trunc_square_in(s, &mut xs, f, ring, &mut sq, &mut scratch)?;
        let st = s.peer_stats().since(&before);
        let want = trunc_square::cost_in(vals.len(), ring);
        assert_eq!(
            (st.rounds, st.payload_sent),
            (want.rounds, want.bytes(s.party()))
        );
        let mut y = vec![0u64; vals.len()];
        reveal::reveal(s, &xs, &mut y)?;
        let mut q = vec![0u64; vals.len()];
        reveal::reveal(s, &sq, &mut q)?;
        Ok((y, q))
    })
    .unwrap();
    r
}

/// The fused truncation and square: `y` within one unit of `v / 2^f` (as the faithful
/// truncation), `y^2` exactly the square of the opened `y` (modulo 2^64), for several
/// shifts (below and above 32 bits, where `c^2 = 2^(128 - 2f)` is not zero), at the range's
/// ends and on random values; one round and `trunc_square::cost`'s bytes.
#[test]
fn trunc_square_truncates_and_squares_in_one_round() {
    for f in [1u32, 16, 28, 29, 40, 48] {
        // |v| < 2^62 - 2^f, and |y|^2 kept below 2^63 so that the check reads it as i64.
        let lim = ((1i128 << 62) - (1i128 << f) - 1) as i64;
        let ymax = (1i64 << 31) - 1;
        let vmax = lim.min(((ymax as i128) << f).min(i64::MAX as i128) as i64);
        let mut v: Vec<i64> = vec![0, 1, -1, vmax, -vmax, 1 << f, -(1 << f), (1 << f) - 1];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push((x % (2 * vmax as u64)) as i64 - vmax);
        }
        let vals: Vec<u64> = v.iter().map(|x| *x as u64).collect();
        for net in NETS {
            let (y, q) = trunc_square_run(net, &vals, f, Width::FULL);
            for i in 0..v.len() {
                let exact = v[i] as f64 / (1u64 << f) as f64;
                let got = y[i] as i64;
                assert!(
                    (got as f64 - exact).abs() <= 1.0 + 1e-9,
                    "f {f}: trunc({}) = {got}",
                    v[i]
                );
                assert_eq!(q[i], y[i].wrapping_mul(y[i]), "f {f}: square of {got}");
            }
        }
    }
}

/// The fused truncation and square in the 6-byte ring (the exact softmax's exponential):
/// shares with garbage above bit 48, `y` within one unit of `v / 2^f` and `y^2` its exact
/// square modulo 2^48; `cost_in`'s bytes.
#[test]
fn trunc_square_in_a_narrow_ring() {
    let ring = Width::bytes(6);
    let m = ring.bits();
    let low = |x: u64| x & ((1u64 << m) - 1);
    for f in [1u32, 16, 22, 23, 40] {
        let lim = (1i64 << (m - 2)) - (1i64 << f) - 1;
        let mut v: Vec<i64> = vec![0, 1, -1, lim, -lim, 1 << f, -(1 << f)];
        let mut prg = secformer_core::prg::Prg::new(
            &secformer_core::prg::Seed::from_u64_for_tests(91),
            f as u64,
        );
        for _ in 0..300 {
            v.push((prg.next_u64() % (2 * lim as u64)) as i64 - lim);
        }
        let vals: Vec<u64> = v.iter().map(|x| *x as u64).collect();
        for net in NETS {
            let (y, q) = trunc_square_run(net, &vals, f, ring);
            for i in 0..v.len() {
                // y modulo 2^m, read as a signed m-bit value.
                let got = ((y[i] << (64 - m)) as i64) >> (64 - m);
                let floor = v[i] >> f;
                assert!(
                    got == floor || got == floor + 1,
                    "f {f}: trunc({}) = {got} (floor {floor})",
                    v[i]
                );
                assert_eq!(low(q[i]), low(y[i].wrapping_mul(y[i])), "f {f}: square");
            }
        }
    }
}

#[test]
fn faithful_truncation_edges_and_range() {
    // Values at 32 fractional bits (products), up to the documented bound |v| < 2^62 - 2^16.
    let lim = (1i64 << 62) - (1 << 16) - 1;
    let mut v: Vec<i64> = vec![
        0,
        1,
        -1,
        65535,
        65536,
        -65536,
        65537,
        lim,
        -lim,
        1 << 40,
        -(1 << 40),
    ];
    let mut prg =
        secformer_core::prg::Prg::new(&secformer_core::prg::Seed::from_u64_for_tests(77), 0);
    for _ in 0..5000 {
        v.push((prg.next_u64() as i64) >> 2); // |v| < 2^61
    }
    let vals: Vec<u64> = v.iter().map(|x| *x as u64).collect();
    for net in NETS {
        let got = truncate_values(net, &vals, trunc::TruncMode::Faithful);
        for (x, g) in v.iter().zip(&got) {
            let exact = *x as f64 / 65536.0;
            let err = (*g as i64) as f64 - exact;
            assert!(
                err.abs() < 1.0,
                "trunc({x}) = {} (exact {exact})",
                *g as i64
            );
        }
    }
}

/// Truncates (or with `f = 0` lifts) `vals`, shared modulo `2^m` with garbage above bit
/// `m`, by `f` bits from `ring` over `net` (checking its rounds and bytes against
/// `trunc::cost`) and opens the full-ring result.
fn trunc_in_run(net: Net, vals: &[u64], f: u32, ring: Width) -> Vec<u64> {
    let (got, _) = run(net, |s| {
        let mut xs = share_mod(s, vals, ring)?;
        let mut scratch = vec![0u64; trunc::scratch_words(vals.len())];
        s.dealer_mut()
            .request(&[trunc::item_in(vals.len(), f, ring)])?;
        let before = s.peer_stats();
        if f == 0 {
            trunc::lift_in(s, &mut xs, ring, &mut scratch)?;
        } else {
            trunc::run_in(s, &mut xs, f, ring, &mut scratch)?;
        }
        let st = s.peer_stats().since(&before);
        let want = trunc::cost(vals.len());
        assert_eq!(
            (st.rounds, st.payload_sent),
            (want.rounds, want.bytes(s.party()))
        );
        let mut out = vec![0u64; vals.len()];
        reveal::reveal(s, &xs, &mut out)?;
        Ok(out)
    })
    .unwrap();
    got
}

/// Truncation from a ring of `m` bits: each party's share carries garbage above bit `m`
/// (a product computed on `m`-bit openings), the output is a full 64-bit share within one
/// unit of `v / 2^f`, up to the documented bound `|v| < 2^(m-2) - 2^f`; one round and one
/// bit per element, as in the full ring. Shift 0 (below the full ring) lifts: the output
/// is `v` exactly for `v` in `[-2^(m-2), 2^(m-2))`, both ends included.
#[test]
fn truncation_from_a_narrow_ring_lifts_to_the_full_ring() {
    for bytes in [4u8, 6, 7, 8] {
        let ring = Width::bytes(bytes);
        let m = ring.bits();
        let lift = (m < 64).then_some(0);
        for f in lift.into_iter().chain([1u32, 16, m - 2 - 1]) {
            let mut prg = secformer_core::prg::Prg::new(
                &secformer_core::prg::Seed::from_u64_for_tests(78 + bytes as u64),
                f as u64,
            );
            if f == 0 {
                let half = 1i64 << (m - 2);
                let mut v: Vec<i64> = vec![0, 1, -1, -half, half - 1, -half + 1, half - 2];
                for _ in 0..500 {
                    v.push((prg.next_u64() % (2 * half as u64)) as i64 - half);
                }
                let vals: Vec<u64> = v.iter().map(|x| *x as u64).collect();
                for net in NETS {
                    let got = trunc_in_run(net, &vals, 0, ring);
                    assert_eq!(got, vals, "m {m}: lift");
                }
                continue;
            }
            let lim = ((1i128 << (m - 2)) - (1i128 << f) - 1) as i64;
            let mut v: Vec<i64> = vec![0, 1, -1, lim, -lim, 1 << f, -(1 << f), (1 << f) - 1];
            for _ in 0..500 {
                v.push((prg.next_u64() % (2 * lim as u64)) as i64 - lim);
            }
            let vals: Vec<u64> = v.iter().map(|x| *x as u64).collect();
            for net in NETS {
                let got = trunc_in_run(net, &vals, f, ring);
                for (x, g) in v.iter().zip(&got) {
                    // floor(v / 2^f) or one more (integers: f64 would round at 2^53).
                    let floor = x >> f;
                    let g = *g as i64;
                    assert!(
                        g == floor || g == floor + 1,
                        "m {m} f {f}: trunc({x}) = {g} (floor {floor})"
                    );
                }
            }
        }
    }
    // The full ring has nothing to lift.
    let (r, _) = run(Net::Mem, |s| {
        let mut xs = vec![AShare::default(); 3];
        let mut scratch = vec![0u64; trunc::scratch_words(3)];
        s.dealer_mut().request(&[trunc::item(3, 0)])?;
        Ok(trunc::run_in(s, &mut xs, 0, Width::FULL, &mut scratch).is_err())
    })
    .unwrap();
    assert!(r, "shift 0 in the full ring is refused");
}

#[test]
fn local_truncation_opt_in_is_within_one_lsb_for_small_values() {
    let v: Vec<i64> = (0..2000).map(|i| (i - 1000) * 123_456_789).collect(); // |v| < 2^37
    let vals: Vec<u64> = v.iter().map(|x| *x as u64).collect();
    let got = truncate_values(Net::Mem, &vals, trunc::TruncMode::LocalSecureMl);
    for (x, g) in v.iter().zip(&got) {
        let err = (*g as i64) as f64 - *x as f64 / 65536.0;
        assert!(err.abs() <= 1.0 + 1e-9, "local trunc({x}) = {}", *g as i64);
    }
}

/// The one-hot product (the token embedding): rows with one 1 (ids anywhere, id 0 too)
/// and a row of zeros (a missing text of a batch), opened in 4 bytes per entry; the result
/// is the table's rows exactly, and the traffic is `owned_onehot_cost`.
#[test]
fn owned_onehot_product_is_exact() {
    let (k, n) = (40, 5);
    let ids: [Option<usize>; 6] = [Some(3), Some(0), Some(39), None, Some(3), Some(17)];
    let m = ids.len();
    let w = reals(19, k * n, -2.0, 2.0);
    let mut x = vec![0u64; m * k];
    for (r, id) in ids.iter().enumerate() {
        if let Some(j) = id {
            x[r * k + j] = 1;
        }
    }
    for net in NETS {
        let (r, _) = run(net, |s| {
            let (plain, f) = owned_setup(s, 10, k, n, &w)?;
            let sw = owned_view(s, 10, k, n, &plain, &f)?;
            let mut scratch = vec![0u64; weight::owned_scratch_words(m, k, n)];
            let mut outs = Vec::new();
            for _ in 0..3 {
                let mine = (!s.party().is_p0()).then_some(&x[..]);
                let mut z = vec![AShare::default(); m * n];
                let before = s.peer_stats();
                weight::apply_owned_onehot(s, &sw, m, mine, &mut z, &mut scratch)?;
                let st = s.peer_stats().since(&before);
                let want = weight::owned_onehot_cost(m, k, s.party().is_p0());
                assert_eq!(
                    (st.rounds, st.payload_sent),
                    (want.rounds, want.bytes(s.party()))
                );
                outs.push(open(s, &z)?);
            }
            Ok(outs)
        })
        .unwrap();
        let table = grid(&w);
        for got in &r {
            for (row, id) in ids.iter().enumerate() {
                let want: Vec<f64> = match id {
                    Some(j) => table[j * n..(j + 1) * n].to_vec(),
                    None => vec![0.0; n],
                };
                assert_eq!(&got[row * n..(row + 1) * n], &want[..], "row {row}");
            }
        }
    }
}

/// Sets up weight `id` (`k x n`, values `w`) as P0's own: returns P0's plaintext encoding
/// (also computed at P1, unused there) and P1's `F` (empty at P0).
fn owned_setup(
    s: &mut TestSession,
    id: u32,
    k: usize,
    n: usize,
    w: &[f64],
) -> secformer_core::Result<(Vec<u64>, Vec<u64>)> {
    let plain = enc(w);
    let own = s.party().is_p0().then_some(&plain[..]);
    let mut f = vec![0u64; if s.party().is_p0() { 0 } else { k * n }];
    let mut setup = vec![0u64; weight::setup_owned_scratch_words(s.party(), k, n)];
    weight::setup_owned(s, id, k, n, own, &mut f, &mut setup)?;
    Ok((plain, f))
}

/// This party's view of a weight set up by [`owned_setup`]: `W` at P0, `F` at P1.
fn owned_view<'a>(
    s: &TestSession,
    id: u32,
    k: usize,
    n: usize,
    plain: &'a [u64],
    f: &'a [u64],
) -> secformer_core::Result<weight::OwnedWeight<'a>> {
    weight::OwnedWeight::view(id, k, n, if s.party().is_p0() { plain } else { f })
}

/// The factored lookup (the token embedding): ids anywhere in a table whose rows are not
/// a square (the last block is partial), rows with no id, more rows than one chunk, both
/// ends of the lift's range (`[-2^30, 2^30)` units), P0's table as 64-bit and as 32-bit
/// values; the result is the table's rows exactly, and the traffic is `lookup::cost`
/// (one round at P0 for all chunks, `8 ceil(sqrt V)` bytes per row from P1, then the
/// lift from the 32-bit ring: one round and `n / 8` bytes per row each).
#[test]
fn owned_lookup_is_exact() {
    for (k, n) in [(40, 5), (1, 3), (49, 2)] {
        let m = 2 * lookup::CHUNK + 7;
        let ids: Vec<u32> = (0..m)
            .map(|r| match r % 9 {
                0 => lookup::NONE,
                1 => 0,
                2 => k as u32 - 1,
                _ => ((r * 7919) % k) as u32,
            })
            .collect();
        let mut w = reals(23, k * n, -2.0, 2.0);
        // The ends of the lift's range, 2^30 - 1 and -2^30 ring units at f = 16.
        w[0] = 16384.0 - 1.0 / 65536.0;
        w[1] = -16384.0;
        for net in NETS {
            let (r, _) = run(net, |s| {
                let (plain, f) = owned_setup(s, 11, k, n, &w)?;
                let narrow: Vec<i32> = plain.iter().map(|&x| x as i64 as i32).collect();
                let mut scratch = vec![0u64; lookup::scratch_words(m, k, n)];
                let mut outs = Vec::new();
                for round in 0..2 {
                    // P0 keeps the table as 64-bit values, then as 32-bit ones.
                    let sw = if round == 1 && s.party().is_p0() {
                        weight::OwnedWeight::view_i32(11, k, n, &narrow)?
                    } else {
                        owned_view(s, 11, k, n, &plain, &f)?
                    };
                    let mine = (!s.party().is_p0()).then_some(&ids[..]);
                    let mut z = vec![AShare::default(); m * n];
                    let before = s.peer_stats();
                    lookup::lookup(s, &sw, m, mine, &mut z, &mut scratch)?;
                    let st = s.peer_stats().since(&before);
                    let want = lookup::cost(m, k, n, s.party().is_p0());
                    assert_eq!(
                        (st.rounds, st.payload_sent),
                        (want.rounds, want.bytes(s.party()))
                    );
                    outs.push(open(s, &z)?);
                }
                Ok(outs)
            })
            .unwrap();
            let table = grid(&w);
            for got in &r {
                for (row, &id) in ids.iter().enumerate() {
                    let want: Vec<f64> = match id {
                        lookup::NONE => vec![0.0; n],
                        j => table[j as usize * n..(j as usize + 1) * n].to_vec(),
                    };
                    assert_eq!(&got[row * n..(row + 1) * n], &want[..], "V {k}, row {row}");
                }
            }
        }
    }
}

/// The lookup's square: the smallest `S` with `S^2 >= V`.
#[test]
fn lookup_side_is_the_ceiling_square_root() {
    for v in 1..5000usize {
        let s = lookup::side(v);
        assert!(s * s >= v && (s - 1) * (s - 1) < v, "V {v}: S {s}");
    }
    assert_eq!(lookup::side(30522), 175);
    // The opening (1,400 bytes per token) and the lift from the 32-bit ring (n / 8).
    assert_eq!(
        lookup::cost(128, 30522, 768, false).bytes(PartyId::P1),
        128 * (1400 + 96)
    );
    let p0 = lookup::cost(128, 30522, 768, true);
    assert_eq!((p0.rounds, p0.bytes(PartyId::P0)), (2, 128 * 96));
    assert_eq!(lookup::cost(128, 30522, 768, false).rounds, 1);
}

/// P1's 4-byte opening of a 0/1 entry: `E + Abar = x` over the integers for every mask
/// but the one bad value (`a = 1` under a 1), which is refused, and checked at column 0
/// for a row of zeros so that the refusal does not depend on the row; rows that are not
/// one-hot are refused.
#[test]
fn onehot_opening_reconstructs_or_refuses() {
    let abar = |a: u64| if a == 0 { 0 } else { a.wrapping_sub(1 << 32) };
    let lift = |e: u64, a: u64| e.wrapping_add(abar(a));
    for a in [
        0u64,
        2,
        3,
        0xffff_fffe,
        0xffff_ffff,
        0x8000_0000,
        0x1234_5678,
    ] {
        for xv in [0u64, 1] {
            let mut e = [abar(a), abar(7)];
            let x = [xv, 0];
            weight::onehot_open(&x, 2, &mut e).unwrap();
            assert!(e[0] < 1 << 32);
            assert_eq!(lift(e[0], a), xv, "a = {a:#x}, x = {xv}");
            assert_eq!(lift(e[1], 7), 0);
        }
    }
    // a = 1 under a 1 would reconstruct 1 - 2^32: refused.
    let mut e = [abar(5), abar(1)];
    assert!(weight::onehot_open(&[0, 1], 2, &mut e).is_err());
    // a = 1 under a 0 that is not checked reconstructs 0: accepted.
    let mut e = [abar(5), abar(1)];
    weight::onehot_open(&[1, 0], 2, &mut e).unwrap();
    assert_eq!((lift(e[0], 5), lift(e[1], 1)), (1, 0));
    // A row of zeros is checked at column 0, whatever it holds.
    let mut e = [abar(1), abar(9)];
    assert!(weight::onehot_open(&[0, 0], 2, &mut e).is_err());
    // Not one-hot.
    let mut e = [abar(5), abar(6)];
    assert!(weight::onehot_open(&[1, 1], 2, &mut e).is_err());
    let mut e = [abar(5), abar(6)];
    assert!(weight::onehot_open(&[2, 0], 2, &mut e).is_err());
}

#[test]
fn owned_weight_product_across_inferences() {
    let (m, k, n) = (5, 33, 7);
    let w = reals(16, k * n, -1.0, 1.0);
    let inputs = [reals(17, m * k, -8.0, 8.0), reals(18, m * k, -8.0, 8.0)];
    for net in NETS {
        let (r, _) = run(net, |s| {
            let plain = enc(&w);
            let own = s.party().is_p0().then_some(&plain[..]);
            let mut f = vec![0u64; if s.party().is_p0() { 0 } else { k * n }];
            let mut setup = vec![0u64; weight::setup_owned_scratch_words(s.party(), k, n)];
            let sw = weight::setup_owned(s, 9, k, n, own, &mut f, &mut setup)?;
            let mut scratch = vec![0u64; weight::owned_scratch_words(m, k, n)];
            let mut outs = Vec::new();
            // The full ring, and the 6-byte ring (outputs below 2^14 at f = 16).
            for (x, ring) in inputs
                .iter()
                .flat_map(|x| [(x, Width::FULL), (x, Width::bytes(6))])
            {
                let xs = share(s, PartyId::P1, x)?;
                let mut z = vec![AShare::default(); m * n];
                let before = s.peer_stats();
                weight::apply_owned_in(s, &sw, &xs, ring, &mut z, &mut scratch)?;
                let st = s.peer_stats().since(&before);
                let want = weight::owned_cost_in(m, k, n, ring, s.party().is_p0());
                assert_eq!(
                    (st.rounds, st.payload_sent),
                    (want.rounds, want.bytes(s.party()))
                );
                outs.push(open(s, &z)?);
            }
            Ok(outs)
        })
        .unwrap();
        for (x, got) in inputs.iter().flat_map(|x| [x, x]).zip(&r) {
            let want = plain_matmul(m, k, n, &grid(x), &grid(&w));
            assert!(
                max_abs_diff(got, &want) < LSB,
                "max diff {}",
                max_abs_diff(got, &want)
            );
        }
    }
}

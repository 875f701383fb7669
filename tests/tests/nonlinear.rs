//! SecFormer's nonlinear protocols, two parties + dealer over in-memory links and TCP,
//! against f64 references with the error bounds.

use secformer_core::bits;
use secformer_core::dealer::Dealer as _;
use secformer_core::party::PartyId;
use secformer_core::prg::words_for_bits;
use secformer_core::protocols::norm::Spec;
use secformer_core::protocols::{
    bitmul, compare, fourier, gelu, input, layernorm, max4, reciprocal, reveal, rsqrt,
    softmax_2quad, softmax_exact, tanh, Mask, Width,
};
use secformer_core::share::AShare;
use secformer_tests::*;

fn share(s: &mut TestSession, owner: PartyId, vals: &[f64]) -> secformer_core::Result<Vec<AShare>> {
    let mut out = vec![AShare::default(); vals.len()];
    let mine = (s.party() == owner).then_some(vals);
    input::share_input_f64(s, owner, mine, &mut out)?;
    Ok(out)
}

/// XOR of the two parties' packed bit shares.
fn xor_bits(a: &[u64], b: &[u64], n: usize) -> Vec<bool> {
    (0..n)
        .map(|i| bits::get(a, i) ^ bits::get(b, i) == 1)
        .collect()
}

#[test]
fn comparison_sign_and_threshold() {
    // Every shape of the carry tree's nodes (1 to 4 groups, with and without a propagate
    // bit) appears among these widths.
    let widths = (2u32..=12).chain([16, 17, 18, 22, 28, 32, 33, 47, 56, 63, 64]);
    for k in widths {
        // |x| < 2^(k-1) ring units (capped where the encoding itself ends), kept below the
        // bound after rounding to f64 (53 bits) by a relative 2^-50.
        let units = (1u64 << (k - 1).min(62)) - 1;
        let lim = (units - (units >> 50)) as f64 / 65536.0;
        let mut x = reals(20 + k as u64, 300, -lim, lim);
        x.extend([0.0, LSB, -LSB, lim, -lim - LSB]);
        let n = x.len();
        for net in NETS {
            let (a, b) = run(net, |s| {
                let xs = share(s, PartyId::P0, &x)?;
                let mut out = vec![0u64; words_for_bits(n)];
                let mut scratch = vec![0u64; compare::scratch_words(n, k)];
                compare::msb(s, &xs, k, &mut out, &mut scratch)?;
                Ok(out)
            })
            .unwrap();
            let got = xor_bits(&a, &b, n);
            let g = dec(&enc(&x));
            for i in 0..n {
                assert_eq!(got[i], g[i] < 0.0, "k={k} x={}", g[i]);
            }
        }
    }
    // x < c with the exact threshold.
    let x = vec![-1.0, 0.999, 1.0, 1.001, 5.0, -3.0];
    let (a, b) = run(Net::Mem, |s| {
        let xs = share(s, PartyId::P1, &x)?;
        let mut out = vec![0u64; 1];
        let mut scratch = vec![0u64; compare::scratch_words(x.len(), 32) + x.len()];
        compare::less_than(s, &xs, 1.0, 32, &mut out, &mut scratch)?;
        Ok(out)
    })
    .unwrap();
    assert_eq!(
        xor_bits(&a, &b, 6),
        vec![true, true, false, false, false, true]
    );
}

/// One shared value against several public thresholds (P0 alone moves its share, so P1's
/// copies are equal): every bit right, on both transports, with P1 sending its leaf bits
/// once and P0 once per threshold, as `fanout_cost` says.
#[test]
fn one_value_against_several_thresholds_sends_p1_leaves_once() {
    let (n, k) = (100usize, 28u32);
    let thresholds = [-2.5, 0.0, 1.0, 3.0, 7.5];
    let copies = thresholds.len();
    let x = reals(17, n, -10.0, 10.0);
    for net in NETS {
        let (a, b) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let mut vals = Vec::with_capacity(copies * n);
            for t in thresholds {
                let off = s.party().share_of_public(enc(&[t])[0]);
                vals.extend(AShare::raw_slice(&xs).iter().map(|v| v.wrapping_sub(off)));
            }
            let mut out = vec![0u64; words_for_bits(copies * n)];
            let mut scratch = vec![0u64; compare::fanout_scratch_words(n, copies, k)];
            let before = s.peer_stats();
            let vals = AShare::from_raw_slice(&vals);
            compare::msb_fanout(s, vals, copies, k, &mut out, &mut scratch)?;
            let st = s.peer_stats().since(&before);
            let want = compare::fanout_cost(n, copies, k);
            assert_eq!(
                (st.rounds, st.payload_sent),
                (want.rounds, want.bytes(s.party()))
            );
            Ok(out)
        })
        .unwrap();
        let got = xor_bits(&a, &b, copies * n);
        for (c, t) in thresholds.iter().enumerate() {
            for i in 0..n {
                assert_eq!(got[c * n + i], x[i] < *t, "{net:?}: {} < {t}", x[i]);
            }
        }
    }
    // P0's leaves: 27 bits of 500 values; P1's: 27 bits of 100.
    let c = compare::fanout_cost(n, copies, k);
    assert_eq!(c.sent[0] - c.sent[1], 27 * 8 * (8 - 2));
}

/// Copies that drop their low bits (per copy, inside one `k`-bit frame): each copy's bit is
/// the sign of the sum of both parties' shares with those bits dropped (checked bit for
/// bit against the shares, so also within `2^dropped` of the threshold), on both
/// transports, with the traffic `fanout_coarse_cost` predicts and below the exact batch's.
#[test]
fn copies_that_drop_low_bits_decide_to_their_own_precision() {
    let k = 40u32;
    let dead = [0u32, 0, 3, 7, 12, 20, 33, 39];
    let copies = dead.len();
    for n in [37usize, 64, 200] {
        let x = reals(n as u64, n, -300.0, 300.0);
        let thresholds: Vec<f64> = (0..copies).map(|c| c as f64 * 37.5 - 100.0).collect();
        for net in NETS {
            let (a, b) = run(net, |s| {
                let xs = share(s, PartyId::P1, &x)?;
                let mut vals = Vec::with_capacity(copies * n);
                for t in &thresholds {
                    let off = s.party().share_of_public(enc(&[*t])[0]);
                    vals.extend(AShare::raw_slice(&xs).iter().map(|v| v.wrapping_sub(off)));
                }
                let mut out = vec![0u64; words_for_bits(copies * n)];
                let mut scratch = vec![0u64; compare::fanout_scratch_words(n, copies, k)];
                s.dealer_mut()
                    .request(&compare::fanout_items(n, copies, k))?;
                let before = s.peer_stats();
                let vs = AShare::from_raw_slice(&vals);
                compare::msb_fanout_coarse_run(s, vs, copies, k, &dead, &mut out, &mut scratch)?;
                let st = s.peer_stats().since(&before);
                let want = compare::fanout_coarse_cost(n, copies, k, &dead);
                assert_eq!(
                    (st.rounds, st.payload_sent),
                    (want.rounds, want.bytes(s.party()))
                );
                Ok((out, vals))
            })
            .unwrap();
            let got = xor_bits(&a.0, &b.0, copies * n);
            for (c, &d) in dead.iter().enumerate() {
                for i in 0..n {
                    let j = c * n + i;
                    let frame = |v: u64| (v >> d) << d;
                    let sum = frame(a.1[j]).wrapping_add(frame(b.1[j]));
                    let want = (sum >> (k - 1)) & 1 == 1;
                    assert_eq!(got[j], want, "{net:?} n {n} copy {c} element {i}");
                    let diff = x[i] - thresholds[c];
                    let slack = (1u64 << d) as f64 / 65536.0;
                    if diff < 0.0 || diff >= slack {
                        assert_eq!(got[j], diff < 0.0, "{net:?}: {diff} dropping {d} bits");
                    }
                }
            }
        }
        let coarse = compare::fanout_coarse_cost(n, copies, k, &dead);
        let exact = compare::fanout_cost(n, copies, k);
        assert!(coarse.sent[0] < exact.sent[0] && coarse.sent[1] < exact.sent[1]);
        assert_eq!(coarse, compare::fanout_coarse_cost(n, copies, k, &dead));
        assert_eq!(exact, compare::fanout_coarse_cost(n, copies, k, &[]));
    }
}

#[test]
fn public_plus_shared_bits_msb_matches_the_sum() {
    // msb((a + b) mod 2^k) for public a (two per element) and b XOR-shared as bit planes.
    for (n, k) in [(70usize, 2u32), (100, 5), (130, 22), (64, 28), (65, 64)] {
        let copies = 2;
        let mut rng = secformer_core::prg::Prg::new(
            &secformer_core::prg::Seed::from_u64_for_tests(k as u64),
            0,
        );
        let mut a = vec![0u64; copies * n];
        let mut b = vec![0u64; n];
        let nwc = words_for_bits(n);
        let (kp, nm) = (k as usize * nwc, compare::first_monomials(k) * nwc);
        let (mut d, mut m0, mut monos0) = (vec![0u64; kp], vec![0u64; kp], vec![0u64; nm]);
        rng.fill(&mut a);
        rng.fill(&mut b);
        rng.fill(&mut d);
        rng.fill(&mut m0);
        rng.fill(&mut monos0);
        let mut planes = vec![0u64; 64 * nwc];
        secformer_core::bits::to_planes(&b, 64, &mut planes);
        let (mut d1, mut m1, mut monos1) = (vec![0u64; kp], vec![0u64; kp], vec![0u64; nm]);
        compare::public_bits_corrections(
            k,
            nwc,
            &planes,
            &d,
            &m0,
            &monos0,
            &mut d1,
            &mut m1,
            &mut monos1,
        );
        let share0 = compare::PublicBits {
            d: &d,
            m: &m0,
            monos: &monos0,
        };
        let share1 = compare::PublicBits {
            d: &d1,
            m: &m1,
            monos: &monos1,
        };
        for net in NETS {
            let (r0, r1) = run(net, |s| {
                let mine = if s.party() == PartyId::P0 {
                    &share0
                } else {
                    &share1
                };
                let mut out = vec![0u64; words_for_bits(copies * n)];
                let mut scratch = vec![0u64; compare::public_scratch_words(n, copies, k)];
                let items = compare::public_items(n, copies, k);
                if !items.is_empty() {
                    s.dealer_mut().request(&items)?; // k = 2 has no carry tree
                }
                let before = s.peer_stats();
                compare::msb_public_run(s, &a, mine, copies, k, &mut out, &mut scratch)?;
                let st = s.peer_stats().since(&before);
                let want = compare::public_cost(n, copies, k);
                assert_eq!(
                    (st.rounds, st.payload_sent),
                    (want.rounds, want.bytes(s.party()))
                );
                Ok(out)
            })
            .unwrap();
            let got = xor_bits(&r0, &r1, copies * n);
            for c in 0..copies {
                for i in 0..n {
                    let sum = a[c * n + i].wrapping_add(b[i]);
                    assert_eq!(got[c * n + i], (sum >> (k - 1)) & 1 == 1, "{net:?} k = {k}");
                }
            }
        }
    }
}

#[test]
fn comparison_costs_match_the_formula() {
    for (n, k) in [(64usize, 28u32), (128, 32), (64, 2), (192, 17)] {
        let x = reals(5, n, -1.0, 1.0);
        let (st, _) = run(Net::Mem, |s| {
            let xs = share(s, PartyId::P0, &x)?;
            let mut out = vec![0u64; words_for_bits(n)];
            let mut scratch = vec![0u64; compare::scratch_words(n, k)];
            let before = s.peer_stats();
            compare::msb(s, &xs, k, &mut out, &mut scratch)?;
            Ok(s.peer_stats().since(&before))
        })
        .unwrap();
        assert_eq!(st.payload_sent, compare::bytes(n, k));
        assert_eq!(st.rounds, compare::rounds(k));
    }
    // The leaves (k - 1 bits) and the tree above its first level, which the leaf round
    // delivers: 27 + 11 + 2 bits at k = 28.
    assert_eq!(
        compare::bytes(64, 28) * 8 / 64,
        40,
        "40 bits per element at k = 28"
    );
    assert_eq!(compare::bytes(64, 32) * 8 / 64, 46);
    assert_eq!(compare::rounds(28), 3);
    assert_eq!(compare::rounds(64), 3);
}

fn open(s: &mut TestSession, x: &[AShare]) -> secformer_core::Result<Vec<f64>> {
    let mut out = vec![0u64; x.len()];
    reveal::reveal(s, x, &mut out)?;
    Ok(dec(&out))
}

fn open_2f(s: &mut TestSession, x: &[AShare]) -> secformer_core::Result<Vec<f64>> {
    let mut out = vec![0u64; x.len()];
    reveal::reveal(s, x, &mut out)?;
    Ok(out
        .iter()
        .map(|v| *v as i64 as f64 / 65536f64.powi(2))
        .collect())
}

#[test]
fn select_b2a_and_bit_products() {
    let n = 150;
    let x = reals(30, n, -50.0, 50.0);
    let y = reals(31, n, -50.0, 50.0);
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P0, &x)?;
            let ys = share(s, PartyId::P1, &y)?;
            // b = [x < y] from a comparison, then select, b2a, bit_mul.
            let mut diff = vec![AShare::default(); n];
            secformer_core::protocols::linear::sub(&xs, &ys, &mut diff)?;
            let mut b = vec![0u64; words_for_bits(n)];
            let mut scratch =
                vec![
                    0u64;
                    compare::scratch_words(n, 32) + bitmul::convenience_scratch_words(n) + n
                ];
            compare::msb(s, &diff, 32, &mut b, &mut scratch)?;
            let mut sel = vec![AShare::default(); n];
            bitmul::select(s, &b, &xs, &ys, &mut sel, &mut scratch)?; // min(x, y)
            let mut ar = vec![AShare::default(); n];
            bitmul::b2a(s, &b, &mut ar, &mut scratch)?;
            let mut prod = vec![AShare::default(); n];
            bitmul::bit_mul(s, &b, &xs, &mut prod, &mut scratch)?;
            let mut arv = vec![0u64; n];
            reveal::reveal(s, &ar, &mut arv)?;
            Ok((open(s, &sel)?, arv, open(s, &prod)?))
        })
        .unwrap();
        let (gx, gy) = (dec(&enc(&x)), dec(&enc(&y)));
        for i in 0..n {
            let lt = gx[i] < gy[i];
            assert_eq!(r.0[i], if lt { gx[i] } else { gy[i] });
            assert_eq!(r.1[i], lt as u64);
            assert_eq!(r.2[i], if lt { gx[i] } else { 0.0 });
        }
    }
}

/// The maximum of four from its six comparison bits in one round, exactly one of the
/// candidates, also among ties (the first maximal one wins), on both transports; in the
/// full ring and modulo 2^48 (its openings in 6 bytes, the exact softmax's ring).
#[test]
fn max_of_four_from_six_comparisons() {
    let groups = 200;
    let mut x = reals(32, 4 * groups, -40.0, 40.0);
    // Ties: groups whose candidates repeat (all equal, pairs, a tied maximum).
    for (g, pattern) in [
        [1.0, 1.0, 1.0, 1.0],
        [2.0, 5.0, 5.0, 1.0],
        [3.0, 3.0, -1.0, 3.0],
    ]
    .iter()
    .enumerate()
    {
        for (c, v) in pattern.iter().enumerate() {
            x[c * groups + g] = *v;
        }
    }
    let rings = [Width::FULL, Width::bytes(6)];
    for (net, ring) in NETS.into_iter().flat_map(|n| rings.map(|w| (n, w))) {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P0, &x)?;
            let raw = AShare::raw_slice(&xs);
            let m = groups;
            let mut diff = vec![0u64; 6 * m];
            for (j, &(a, b)) in max4::PAIRS.iter().enumerate() {
                for g in 0..m {
                    diff[j * m + g] = raw[a * m + g].wrapping_sub(raw[b * m + g]);
                }
            }
            let mut lt = vec![0u64; words_for_bits(6 * m)];
            let mut scratch =
                vec![0u64; compare::scratch_words(6 * m, 32).max(max4::scratch_words(m))];
            compare::msb(s, AShare::from_raw_slice(&diff), 32, &mut lt, &mut scratch)?;
            let mut out = vec![0u64; m];
            let before = s.peer_stats();
            max4::max4(s, m, raw, &lt, ring, &mut out, &mut scratch)?;
            let st = s.peer_stats().since(&before);
            let c = max4::cost(m, ring);
            assert_eq!((st.rounds, st.payload_sent), (c.rounds, c.bytes(s.party())));
            let mut v = vec![0u64; m];
            reveal::reveal(s, AShare::from_raw_slice(&out), &mut v)?;
            // Sign-extended from the ring's top bit.
            let top = 64 - ring.bits();
            Ok(v.iter()
                .map(|w| ((w << top) as i64 >> top) as f64 / 65536.0)
                .collect::<Vec<_>>())
        })
        .unwrap();
        let g = dec(&enc(&x));
        for i in 0..groups {
            let want = (0..4).map(|c| g[c * groups + i]).fold(f64::MIN, f64::max);
            assert_eq!(r[i], want, "group {i} on {net:?}, {} bits", ring.bits());
        }
    }
}

/// 2Quad on untruncated scores from a narrow ring (the product's truncation fused with the
/// square) equals 2Quad on truncated scores within a few LSB, with public masks and with
/// the same keys as XOR-shared bits.
#[test]
fn softmax_2quad_on_untruncated_scores_matches() {
    let (rows, cols) = (6usize, 16usize);
    let x = reals(33, rows * cols, -6.0, 6.0);
    let keep: Vec<bool> = (0..rows * cols).map(|i| (i * 7919) % 5 != 0).collect();
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let n = rows * cols;
            let mut sc = vec![
                0u64;
                softmax_2quad::wide_scratch_words(rows, cols, 16)
                    .max(softmax_2quad::scratch_words(rows, cols, 16))
            ];
            let mut want = vec![AShare::default(); n];
            let mask = Mask::Entries(&keep);
            softmax_2quad::softmax_2quad(s, rows, cols, &xs, mask, 5.0, &mut want, &mut sc)?;
            let wide = |s: &mut TestSession, m: Mask<'_>, bits: Option<&[u64]>, sc: &mut [u64]| {
                let mut v: Vec<u64> = AShare::raw_slice(&xs).iter().map(|a| a << 16).collect();
                let v = AShare::from_raw_slice_mut(&mut v);
                let mut out = vec![AShare::default(); n];
                let ring = Width::holding(48);
                softmax_2quad::softmax_2quad_wide(
                    s, rows, cols, v, ring, m, bits, 5.0, &mut out, sc,
                )?;
                Ok::<_, secformer_core::Error>(out)
            };
            let public = wide(s, mask, None, &mut sc)?;
            // P1 holds the key bits; P0's XOR share is 0.
            let mut bits = vec![0u64; words_for_bits(n)];
            if s.party() == PartyId::P1 {
                for (i, k) in keep.iter().enumerate() {
                    bits[i / 64] |= (*k as u64) << (i % 64);
                }
            }
            let secret = wide(s, Mask::All, Some(&bits), &mut sc)?;
            Ok((open(s, &want)?, open(s, &public)?, open(s, &secret)?))
        })
        .unwrap();
        for i in 0..rows * cols {
            assert!(
                (r.0[i] - r.1[i]).abs() < 1e-4,
                "public keys, {i}: {} vs {}",
                r.0[i],
                r.1[i]
            );
            assert!(
                (r.0[i] - r.2[i]).abs() < 1e-4,
                "secret keys, {i}: {} vs {}",
                r.0[i],
                r.2[i]
            );
            if !keep[i] {
                assert_eq!(r.2[i], 0.0, "a masked key gets 0");
            }
        }
    }
}

#[test]
fn fourier_sine_and_cosine() {
    // sin and cos of period 16 (p = 20 bits) over several periods, and a 3-term series.
    let x = reals(40, 500, -100.0, 100.0);
    let w = 2.0 * std::f64::consts::PI / 16.0;
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let mut out = vec![AShare::default(); x.len()];
            let mut scratch = vec![0u64; fourier::scratch_words(x.len(), 3)];
            let series = fourier::Series {
                p: 20,
                c0: 0.25,
                alpha: &[1.0, 0.0, -0.5],
                beta: &[0.0, 2.0],
            };
            fourier::fourier(s, &xs, &series, &mut out, &mut scratch)?;
            open_2f(s, &out)
        })
        .unwrap();
        let g = dec(&enc(&x));
        for i in 0..x.len() {
            let t = g[i] * w;
            let want = 0.25 + t.sin() + 2.0 * (2.0 * t).cos() - 0.5 * (3.0 * t).sin();
            assert!(
                (r[i] - want).abs() < 2e-4,
                "x={} got {} want {want}",
                g[i],
                r[i]
            );
        }
    }
}

fn exact_gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

fn check_range(
    name: &str,
    got: &[f64],
    x: &[f64],
    f: impl Fn(f64) -> f64,
    lo: f64,
    hi: f64,
    mean_bound: f64,
) {
    let errs: Vec<f64> = x
        .iter()
        .zip(got)
        .filter(|(v, _)| **v >= lo && **v <= hi)
        .map(|(v, g)| (g - f(*v)).abs())
        .collect();
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    assert!(
        mean <= mean_bound,
        "{name}: mean |err| {mean} on [{lo}, {hi}] > {mean_bound}"
    );
}

#[test]
fn gelu_meets_the_error_bounds() {
    let mut x = Vec::new();
    x.extend(reals(50, 2000, -1.0, 1.0));
    x.extend(reals(51, 2000, -5.0, 5.0));
    x.extend(reals(52, 2000, -10.0, 10.0));
    x.extend(reals(53, 2000, -64.0, 64.0));
    // Edges: zero, the thresholds exactly and one LSB around them, large magnitudes.
    for t in [4.0f64, -4.0] {
        x.extend([t, t - LSB, t + LSB]);
    }
    x.extend([0.0, LSB, -LSB, 64.0, -64.0, 2000.0, -2000.0]);
    // The ends of the range (2044 before the comparisons were coarse).
    let lim = gelu::input_limit(gelu::DEFAULT_BITS, 16);
    assert!(lim > 131_000.0, "GeLU range {lim}");
    x.extend([
        2100.0,
        -2100.0,
        100_000.0,
        -100_000.0,
        lim - 1.0,
        -lim + 1.0,
    ]);
    let all = dec(&enc(&x));
    // Inputs at f bits, the same inputs at 2f bits (an untruncated product's scale, opened
    // rounded to f bits), and at 2f bits known only modulo 2^56 or 2^48 (a product in the
    // 7- or 6-byte ring: each share carries garbage above the ring, which the protocol must
    // ignore; the 6-byte ring holds inputs below 2^13 and compares on 20 bits).
    let modes = [
        None,
        Some(Width::FULL),
        Some(Width::bytes(7)),
        Some(Width::bytes(6)),
    ];
    for (net, wide) in NETS.into_iter().flat_map(|n| modes.map(|m| (n, m))) {
        let k = wide.map_or(gelu::DEFAULT_BITS, |w| gelu::bits_in(w, 16));
        let limit = match wide {
            Some(w) if w.bits() < 56 => 2f64.powi(w.bits() as i32 - 35),
            _ => f64::INFINITY,
        };
        let g: Vec<f64> = all.iter().copied().filter(|v| v.abs() < limit).collect();
        let x = &g;
        let (r, _) = run(net, |s| {
            let mut xs = share(s, PartyId::P0, x)?;
            let mut out = vec![AShare::default(); x.len()];
            let mut scratch = vec![0u64; gelu::scratch_words(x.len(), k)];
            let junk = if s.party().is_p0() { 0x9e37 } else { 0x7f4a };
            let before = s.peer_stats();
            if let Some(w) = wide {
                for (i, v) in AShare::raw_slice_mut(&mut xs).iter_mut().enumerate() {
                    *v <<= 16;
                    if w != Width::FULL {
                        *v = v.wrapping_add(((i as u64 + 1) * junk) << w.bits());
                    }
                }
                gelu::gelu_wide_in(s, &xs, k, w, &mut out, &mut scratch)?;
            } else {
                gelu::gelu(s, &xs, k, &mut out, &mut scratch)?;
            }
            let st = s.peer_stats().since(&before);
            let want = match wide {
                Some(w) => gelu::cost_in(x.len(), k, 16, w),
                None => gelu::cost(x.len(), k, 16),
            };
            assert_eq!(
                (st.rounds, st.payload_sent),
                (want.rounds, want.bytes(s.party()))
            );
            open(s, &out)
        })
        .unwrap();
        check_range("gelu", &r, &g, exact_gelu, -1.0, 1.0, 0.001);
        check_range("gelu", &r, &g, exact_gelu, -5.0, 5.0, 0.002);
        check_range("gelu", &r, &g, exact_gelu, -10.0, 10.0, 0.002);
        let worst = g
            .iter()
            .zip(&r)
            .map(|(v, o)| (o - exact_gelu(*v)).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 0.02, "gelu max |err| {worst}");
        // And the protocol computes its documented approximation to fixed-point precision
        // (either piece within the coarse thresholds' band [T, T + 2^(SHIFT - 16))).
        let band = 2f64.powi(gelu::SHIFT as i32 - 16);
        for (v, o) in g.iter().zip(&r) {
            let t = gelu::THRESHOLD;
            let near = |lo: f64, hi: f64| (o - gelu::reference_with(*v, lo, hi)).abs() < 2e-4;
            assert!(
                near(-t, t)
                    || near(-t + band, t)
                    || near(-t, t + band)
                    || near(-t + band, t + band),
                "x={v}: {o} vs {}",
                gelu::reference_approx(*v)
            );
        }
    }
}

#[test]
fn tanh_meets_the_error_bound() {
    let mut x = reals(60, 3000, -10.0, 10.0);
    x.extend([0.0, 4.5, -4.5, 4.5 - LSB, -4.5 - LSB, 100.0, -100.0]);
    let lim = tanh::input_limit(tanh::DEFAULT_BITS, 16);
    assert!(lim > 131_000.0, "tanh range {lim}");
    x.extend([2100.0, -2100.0, lim - 1.0, -lim + 1.0]);
    let g = dec(&enc(&x));
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let mut out = vec![AShare::default(); x.len()];
            let mut scratch = vec![0u64; tanh::scratch_words(x.len(), tanh::DEFAULT_BITS)];
            tanh::tanh(s, &xs, tanh::DEFAULT_BITS, &mut out, &mut scratch)?;
            open(s, &out)
        })
        .unwrap();
        let worst = g
            .iter()
            .zip(&r)
            .map(|(v, o)| (o - v.tanh()).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 0.01, "tanh max |err| {worst}");
    }
}

/// Log-uniform values in [2^lo, 2^hi] plus the ends and every half-octave threshold.
fn log_range(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut v: Vec<f64> = reals(seed, n, lo, hi).iter().map(|e| e.exp2()).collect();
    let mut j = (2.0 * lo).ceil();
    while j <= 2.0 * hi {
        let t = (j / 2.0).exp2();
        v.extend([t, t * (1.0 - 1e-6)]);
        j += 1.0;
    }
    v.extend([lo.exp2(), hi.exp2()]);
    v.retain(|x| *x >= lo.exp2() && *x <= hi.exp2());
    v
}

/// Relative error <= 2^-10 (plus the output's last bit, which the final faithful
/// truncation may flip) where the result is >= 2^-6, absolute <= 2^-14 below.
fn check_inverse(name: &str, y: &[f64], got: &[f64], f: impl Fn(f64) -> f64) {
    for (v, g) in y.iter().zip(got) {
        let want = f(*v);
        if want >= 1.0 / 64.0 {
            let rel = (g - want).abs() / want;
            assert!(
                rel <= 1.0 / 1024.0 + LSB / want,
                "{name}({v}) = {g}, want {want} (rel {rel:.2e})"
            );
        } else {
            assert!(
                (g - want).abs() <= 1.0 / 16384.0,
                "{name}({v}) = {g}, want {want}"
            );
        }
    }
}

#[test]
fn reciprocal_over_its_range_and_beyond() {
    let spec = reciprocal::default_spec(16);
    let (lo, hi) = spec.range();
    assert_eq!((lo, hi), reciprocal::RANGE);
    let y = log_range(70, 1500, lo.log2(), hi.log2() - 1e-9);
    let g = dec(&enc(&y));
    // Outside the range: 0 below, the clamp 1/2^26 at and above (up to the top of the
    // fixed-point range, 2^47 at f = 16: the comparisons see every non-negative value).
    let top = 2f64.powf(46.99);
    let out = vec![lo * 0.9, 1.0 / 128.0, 0.0, hi, hi * 1.5, 1e9, 1e12, top];
    for net in NETS {
        let (r, _) = run(net, |s| {
            let mut all = y.clone();
            all.extend(&out);
            let ys = share(s, PartyId::P0, &all)?;
            let mut o = vec![AShare::default(); all.len()];
            let mut scratch = vec![0u64; reciprocal::scratch_words(all.len(), &spec)];
            reciprocal::reciprocal(s, &ys, &spec, 16, &mut o, &mut scratch)?;
            open(s, &o)
        })
        .unwrap();
        check_inverse("1/y", &g, &r[..y.len()], |v| 1.0 / v);
        let sat = &r[y.len()..];
        assert_eq!(&sat[..3], &[0.0, 0.0, 0.0], "below the range");
        for v in &sat[3..] {
            assert!((v - spec.above).abs() <= 2.0 * LSB, "above the range: {v}");
        }
    }
}

/// The reciprocal of `y` (shared by P1 at 16 fractional bits, moved `up` bits higher to
/// `spec.in_frac`) at `frac` output bits, with its rounds and bytes asserted equal to
/// `reciprocal::cost`; the opened outputs as reals.
fn run_reciprocal(net: Net, y: &[f64], spec: &Spec, up: u32, frac: u32) -> Vec<f64> {
    let (r, _) = run(net, |s| {
        let mut ys = share(s, PartyId::P1, y)?;
        for v in AShare::raw_slice_mut(&mut ys) {
            *v <<= up;
        }
        let mut o = vec![AShare::default(); y.len()];
        let mut scratch = vec![0u64; reciprocal::scratch_words(y.len(), spec)];
        let before = s.peer_stats();
        reciprocal::reciprocal(s, &ys, spec, frac, &mut o, &mut scratch)?;
        let st = s.peer_stats().since(&before);
        let want = reciprocal::cost(y.len(), spec);
        assert_eq!(
            (st.rounds, st.payload_sent),
            (want.rounds, want.bytes(s.party()))
        );
        let mut out = vec![0u64; o.len()];
        reveal::reveal(s, &o, &mut out)?;
        Ok(out
            .iter()
            .map(|v| *v as i64 as f64 / 2f64.powi(frac as i32))
            .collect::<Vec<f64>>())
    })
    .unwrap();
    r
}

#[test]
fn reciprocal_on_eighth_octaves_of_a_narrow_range() {
    // The exact softmax's row sums: [1/2, 512) at 28 fractional bits, eighth octaves.
    let spec = Spec {
        in_frac: 28,
        steps: reciprocal::fine::STEPS,
        lo: -8,
        hi: 72,
        k: 19,
        shift: 20,
        above: 0.0,
        relative: 7,
    };
    let mut y = log_range(72, 1500, -1.0, 9.0 - 1e-9);
    // Every threshold, and one LSB of the 16-bit input below it.
    for j in spec.lo..spec.hi {
        let t = 2f64.powf(j as f64 / 8.0);
        y.extend([t, t - LSB]);
    }
    y.retain(|v| *v >= 0.5 && *v < 511.0); // 2^9 and above saturate (to 0 here)
    let g = dec(&enc(&y));
    for net in NETS {
        // 16 -> 28 fractional bits, exactly.
        let r = run_reciprocal(net, &y, &spec, 12, 28);
        for (v, got) in g.iter().zip(&r) {
            let want = 1.0 / v;
            let rel = (got - want).abs() / want;
            assert!(
                rel <= 2.8e-5 + 4.0 / 2f64.powi(28) / want,
                "1/{v} = {got} (rel {rel:.2e})"
            );
        }
    }
}

/// The reciprocal on quarter octaves over the 2Quad softmax's row-sum range `[1/4, 2^26)`
/// at 16 fractional bits: relative error within the quadratic's 1.85e-4 plus the output's
/// last bits, at every threshold and one LSB below it too; 0 below and above the range;
/// rounds and bytes as `reciprocal::cost`.
#[test]
fn reciprocal_on_quarter_octaves_of_the_softmax_range() {
    let spec = softmax_2quad::spec(16);
    assert_eq!(spec.steps, reciprocal::fine::QUARTER);
    let (lo, hi) = spec.range();
    let mut y = log_range(73, 1200, lo.log2(), hi.log2() - 1e-6);
    for j in (spec.lo..spec.hi).step_by(3) {
        let t = 2f64.powf(j as f64 / 4.0);
        y.extend([t, t - LSB]);
    }
    y.retain(|v| *v >= lo && *v < hi * 0.999);
    let outside = [0.0, lo * 0.9, hi, hi * 4.0];
    y.extend(outside);
    let g = dec(&enc(&y));
    for net in NETS {
        let r = run_reciprocal(net, &y, &spec, 0, 40);
        let n_in = y.len() - outside.len();
        for (v, got) in g[..n_in].iter().zip(&r[..n_in]) {
            let want = 1.0 / v;
            let rel = (got - want).abs() / want;
            assert!(
                rel <= 1.9e-4 + 4.0 / 2f64.powi(40) / want,
                "1/{v} = {got} (rel {rel:.2e})"
            );
        }
        for (v, got) in outside.iter().zip(&r[n_in..]) {
            assert!(
                got.abs() < 1e-9,
                "1/{v} outside the range gives {got}, not 0"
            );
        }
    }
}

#[test]
fn rsqrt_over_its_range_and_beyond() {
    let spec = rsqrt::default_spec(16);
    let (lo, hi) = spec.range();
    assert_eq!((lo, hi), rsqrt::RANGE);
    let y = log_range(71, 1500, lo.log2(), hi.log2() - 1e-9);
    let g = dec(&enc(&y));
    let top = 2f64.powf(46.99);
    let out = vec![lo * 0.9, 1.0 / 1024.0, 0.0, hi, hi * 3.0, 1e12, top];
    for net in NETS {
        let (r, _) = run(net, |s| {
            let mut all = y.clone();
            all.extend(&out);
            let ys = share(s, PartyId::P1, &all)?;
            let mut o = vec![AShare::default(); all.len()];
            let mut scratch = vec![0u64; rsqrt::scratch_words(all.len(), &spec)];
            rsqrt::rsqrt(s, &ys, &spec, 16, &mut o, &mut scratch)?;
            open(s, &o)
        })
        .unwrap();
        check_inverse("rsqrt", &g, &r[..y.len()], |v| 1.0 / v.sqrt());
        // The method's own error (the quadratic on quarter octaves): 5.43e-5 relative.
        for (v, got) in g.iter().zip(&r[..y.len()]) {
            let want = 1.0 / v.sqrt();
            if want >= 1.0 {
                let rel = (got - want).abs() / want;
                assert!(rel <= 5.5e-5 + 2.0 * LSB / want, "rsqrt({v}) rel {rel:.2e}");
            }
        }
        let sat = &r[y.len()..];
        assert_eq!(&sat[..3], &[0.0, 0.0, 0.0], "below the range");
        for v in &sat[3..] {
            assert!((v - spec.above).abs() <= 2.0 * LSB, "above the range: {v}");
        }
    }
}

fn plain_layernorm(rows: usize, h: usize, x: &[f64], g: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
    let mut out = vec![0.0; rows * h];
    for i in 0..rows {
        let r = &x[i * h..(i + 1) * h];
        let mu = r.iter().sum::<f64>() / h as f64;
        let var = r.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / h as f64;
        for j in 0..h {
            out[i * h + j] = g[j] * (r[j] - mu) / (var + eps).sqrt() + b[j];
        }
    }
    out
}

#[test]
fn layernorm_within_bound_on_its_range() {
    let (rows, h) = (12, 96);
    // Rows with variance from 1e-2 to 1e4 (std 0.1 to 100), means up to +-100, |x| <= 256.
    let mut x = Vec::new();
    for i in 0..rows {
        let std = 10f64.powf(-1.0 + 3.0 * i as f64 / (rows - 1) as f64);
        let mean = if std < 50.0 {
            -100.0 + 200.0 * (i as f64 / rows as f64)
        } else {
            0.0
        };
        let noise = reals(80 + i as u64, h, -1.0, 1.0);
        let m = noise.iter().sum::<f64>() / h as f64;
        let sd = (noise.iter().map(|v| (v - m).powi(2)).sum::<f64>() / h as f64).sqrt();
        x.extend(noise.iter().map(|v| mean + (v - m) / sd * std));
    }
    assert!(x.iter().all(|v| v.abs() <= 256.0));
    let g = reals(90, h, 0.5, 2.0);
    let b = reals(91, h, -1.0, 1.0);
    let want = plain_layernorm(
        rows,
        h,
        &dec(&enc(&x)),
        &dec(&enc(&g)),
        &dec(&enc(&b)),
        1e-12,
    );
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let gs = share(s, PartyId::P0, &g)?;
            let bs = share(s, PartyId::P0, &b)?;
            let mut out = vec![AShare::default(); rows * h];
            let mut scratch = vec![0u64; layernorm::scratch_words(rows, h, 16)];
            let before = s.peer_stats();
            layernorm::layernorm(s, rows, h, &xs, &gs, &bs, 1e-12, &mut out, &mut scratch)?;
            let rounds = s.peer_stats().since(&before).rounds;
            Ok((open(s, &out)?, rounds))
        })
        .unwrap();
        let err = max_abs_diff(&r.0, &want);
        assert!(err <= 0.01, "layernorm max |err| {err}");
        assert!(r.1 < 24, "layernorm took {} rounds", r.1);
        assert_eq!(r.1, 11);
        assert_eq!(r.1, layernorm::cost(rows, h, 16).rounds);
    }
    // A constant row (variance 0) outputs beta.
    let xc = vec![3.0; h];
    let (r, _) = run(Net::Mem, |s| {
        let xs = share(s, PartyId::P1, &xc)?;
        let gs = share(s, PartyId::P0, &g)?;
        let bs = share(s, PartyId::P0, &b)?;
        let mut out = vec![AShare::default(); h];
        let mut scratch = vec![0u64; layernorm::scratch_words(1, h, 16)];
        layernorm::layernorm(s, 1, h, &xs, &gs, &bs, 1e-12, &mut out, &mut scratch)?;
        open(s, &out)
    })
    .unwrap();
    assert!(max_abs_diff(&r, &dec(&enc(&b))) <= 1e-3);
}

fn plain_softmax(x: &[f64], keep: &[bool], f: impl Fn(f64) -> f64) -> Vec<f64> {
    let q: Vec<f64> = x
        .iter()
        .zip(keep)
        .map(|(v, k)| if *k { f(*v) } else { 0.0 })
        .collect();
    let s: f64 = q.iter().sum();
    q.iter()
        .map(|v| if s > 0.0 { v / s } else { 0.0 })
        .collect()
}

fn softmax_case(exact: bool, lens: &[usize], lim: f64) {
    for net in NETS {
        for &cols in lens {
            let rows = 3;
            let n = rows * cols;
            let x = reals(100 + cols as u64, n, -lim, lim);
            // Row 1 masks its second half; row 2 is fully masked when `cols` is small.
            let keep: Vec<bool> = (0..n)
                .map(|i| {
                    let (r, c) = (i / cols, i % cols);
                    !(r == 1 && c >= cols / 2 || r == 2 && cols == 8)
                })
                .collect();
            let (r, _) = run(net, |s| {
                let xs = share(s, PartyId::P1, &x)?;
                let mut out = vec![AShare::default(); n];
                if exact {
                    let k = softmax_exact::DEFAULT_BITS;
                    let mut scratch = vec![0u64; softmax_exact::scratch_words(rows, cols, k)];
                    softmax_exact::softmax_exact(
                        s,
                        rows,
                        cols,
                        &xs,
                        Mask::Entries(&keep),
                        k,
                        &mut out,
                        &mut scratch,
                    )?;
                } else {
                    let mut scratch = vec![0u64; softmax_2quad::scratch_words(rows, cols, 16)];
                    softmax_2quad::softmax_2quad(
                        s,
                        rows,
                        cols,
                        &xs,
                        Mask::Entries(&keep),
                        5.0,
                        &mut out,
                        &mut scratch,
                    )?;
                }
                open(s, &out)
            })
            .unwrap();
            let g = dec(&enc(&x));
            for i in 0..rows {
                let row = &g[i * cols..(i + 1) * cols];
                let kp = &keep[i * cols..(i + 1) * cols];
                let want = if exact {
                    let m = row
                        .iter()
                        .zip(kp)
                        .filter(|p| *p.1)
                        .map(|p| *p.0)
                        .fold(f64::MIN, f64::max);
                    plain_softmax(row, kp, |v| (v - m).exp())
                } else {
                    plain_softmax(row, kp, |v| (v + 5.0).powi(2))
                };
                let err = max_abs_diff(&r[i * cols..(i + 1) * cols], &want);
                let bound = if exact { 2e-3 } else { 1e-3 };
                assert!(
                    err <= bound,
                    "exact={exact} cols={cols} row {i}: max |err| {err}"
                );
            }
        }
    }
}

#[test]
fn softmax_zero_rows_are_uniform() {
    // Rows of zeros (and negative zeros) give 1/cols everywhere, in both softmaxes.
    let (rows, cols) = (2, 16);
    let x = vec![-0.0f64; rows * cols];
    let (r, _) = run(Net::Mem, |s| {
        let xs = share(s, PartyId::P0, &x)?;
        let mut a = vec![AShare::default(); rows * cols];
        let mut b = a.clone();
        let mut sc = vec![
            0u64;
            softmax_exact::scratch_words(rows, cols, 28)
                .max(softmax_2quad::scratch_words(rows, cols, 16))
        ];
        softmax_2quad::softmax_2quad(s, rows, cols, &xs, Mask::All, 5.0, &mut a, &mut sc)?;
        softmax_exact::softmax_exact(s, rows, cols, &xs, Mask::All, 28, &mut b, &mut sc)?;
        Ok((open(s, &a)?, open(s, &b)?))
    })
    .unwrap();
    for v in r.0.iter().chain(&r.1) {
        assert!((v - 1.0 / cols as f64).abs() < 1e-3, "{v}");
    }
}

#[test]
fn softmax_2quad_within_bound() {
    softmax_case(false, &[8, 64, 512], 20.0);
}

#[test]
fn softmax_exact_within_bound() {
    softmax_case(true, &[8, 33, 128, 512], 30.0);
}

#[test]
fn coarse_comparisons_at_the_ends_of_their_range() {
    // [x < c 2^s] with c in {0, 1}: exact outside [0, 2^s) ring units, no wrap up to
    // the coarse limit (the whole ring when k + s = 64).
    for (k, sh) in [(28u32, 6u32), (28, 10), (56, 8), (60, 4), (20, 44)] {
        let lim = compare::coarse_limit(k, sh);
        let unit = (1u64 << sh) as i64;
        let mut raw: Vec<i64> = vec![
            -1,
            0,
            unit - 1,
            unit,
            -unit,
            (lim - 1) as i64,
            -((lim - 1) as i64),
            lim as i64 / 3,
            -(lim as i64 / 3),
        ];
        raw.extend(
            reals(900 + k as u64, 200, -1.0, 1.0)
                .iter()
                .map(|f| (f * (lim - 1) as f64) as i64),
        );
        let n = raw.len();
        let x: Vec<u64> = raw.iter().map(|v| *v as u64).collect();
        for net in NETS {
            let (a, b) = run(net, |s| {
                let mut xs = vec![AShare::default(); n];
                let mine = (s.party() == PartyId::P0).then_some(&x[..]);
                input::share_input(s, PartyId::P0, mine, &mut xs)?;
                let mut shares: Vec<u64> = AShare::raw_slice(&xs).to_vec();
                compare::coarsen(&mut shares, sh);
                let mut out = vec![0u64; words_for_bits(n)];
                let mut scratch = vec![0u64; compare::scratch_words(n, k)];
                compare::msb(
                    s,
                    AShare::from_raw_slice(&shares),
                    k,
                    &mut out,
                    &mut scratch,
                )?;
                Ok(out)
            })
            .unwrap();
            let got = xor_bits(&a, &b, n);
            for (v, g) in raw.iter().zip(&got) {
                if *v < 0 {
                    assert!(*g, "k={k} s={sh}: {v} < 0 not seen");
                } else if *v >= unit {
                    assert!(!*g, "k={k} s={sh}: {v} >= 2^s seen as negative");
                }
            }
        }
    }
}

/// One 2Quad softmax over `rows x cols` (no mask), opened.
fn softmax_2quad_rows(net: Net, rows: usize, cols: usize, x: &[f64]) -> Vec<f64> {
    let (r, _) = run(net, |s| {
        let xs = share(s, PartyId::P1, x)?;
        let mut out = vec![AShare::default(); rows * cols];
        let mut scratch = vec![0u64; softmax_2quad::scratch_words(rows, cols, 16)];
        softmax_2quad::softmax_2quad(s, rows, cols, &xs, Mask::All, 5.0, &mut out, &mut scratch)?;
        open(s, &out)
    })
    .unwrap();
    r
}

#[test]
fn softmax_2quad_at_the_ends_of_its_row_sum_range() {
    // 512-key rows whose sums S = sum (x + 5)^2 sit past a 2^20 range (2^21, 2^21.8),
    // near the top 2^26, and just above 1/4; then rows past the range, which saturate to
    // zeros.
    let cols = 512;
    let row = |seed: u64, target_log2: f64| -> Vec<f64> {
        // (x + 5)^2 spread over [a/2, a] with mean a * 3/4 ... scaled to the target sum.
        let u = reals(seed, cols, 0.5, 1.0);
        let sum: f64 = u.iter().sum();
        let scale = (target_log2.exp2() / sum).sqrt();
        u.iter()
            .enumerate()
            .map(|(i, v)| {
                let m = scale * v.sqrt();
                if i % 2 == 0 {
                    m - 5.0
                } else {
                    -m - 5.0
                }
            })
            .collect()
    };
    let inside = [21.0, 21.8, 24.0, 25.95, -1.9];
    let outside = [26.05, 30.0];
    let mut x = Vec::new();
    for (i, t) in inside.iter().chain(&outside).enumerate() {
        x.extend(row(300 + i as u64, *t));
    }
    let rows = inside.len() + outside.len();
    let g = dec(&enc(&x));
    for net in NETS {
        let r = softmax_2quad_rows(net, rows, cols, &x);
        for i in 0..rows {
            let (got, xi) = (&r[i * cols..(i + 1) * cols], &g[i * cols..(i + 1) * cols]);
            let s: f64 = xi.iter().map(|v| (v + 5.0).powi(2)).sum();
            if i < inside.len() {
                let want = plain_softmax(xi, &vec![true; cols], |v| (v + 5.0).powi(2));
                let err = max_abs_diff(got, &want);
                assert!(err <= 1e-3, "row sum 2^{:.2}: max |err| {err}", s.log2());
                assert!(got.iter().all(|p| *p >= -LSB), "negative probability");
            } else {
                assert!(
                    got.iter().all(|p| p.abs() <= LSB),
                    "row sum 2^{:.2} must saturate to zeros",
                    s.log2()
                );
            }
        }
    }
}

#[test]
fn softmax_exact_at_the_ends_of_its_spread_range() {
    let k = softmax_exact::DEFAULT_BITS;
    let lim = softmax_exact::spread_limit(k, 16);
    assert!(lim >= 2_097_000.0, "spread limit {lim}");
    let cols = 128;
    // Spreads of 3000 (past exact 28-bit comparisons' 2048), 1e5, and just inside the limit; each
    // row has a clear winner and a few entries near it.
    let spreads = [3000.0, 1e5, lim - 2.0];
    let mut x = Vec::new();
    for (i, sp) in spreads.iter().enumerate() {
        let mut r = reals(400 + i as u64, cols, -sp / 2.0, sp / 2.0 - 10.0);
        r[7] = sp / 2.0;
        r[8] = sp / 2.0 - 0.5;
        r[9] = sp / 2.0 - 3.0;
        r[10] = -sp / 2.0;
        x.extend(r);
    }
    let rows = spreads.len();
    let g = dec(&enc(&x));
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P1, &x)?;
            let mut out = vec![AShare::default(); rows * cols];
            let mut scratch = vec![0u64; softmax_exact::scratch_words(rows, cols, k)];
            softmax_exact::softmax_exact(s, rows, cols, &xs, Mask::All, k, &mut out, &mut scratch)?;
            open(s, &out)
        })
        .unwrap();
        for i in 0..rows {
            let xi = &g[i * cols..(i + 1) * cols];
            let m = xi.iter().cloned().fold(f64::MIN, f64::max);
            let want = plain_softmax(xi, &vec![true; cols], |v| (v - m).exp());
            let err = max_abs_diff(&r[i * cols..(i + 1) * cols], &want);
            assert!(err <= 2e-3, "spread {}: max |err| {err}", spreads[i]);
        }
    }
}

#[test]
fn layernorm_at_the_ends_of_its_range() {
    // Hidden 768: variances from 1e-2 past 4.4e4 (a 2^16 normalization range) up to 1.3e6
    // (H var < 2^30 is the fixed-point limit), |x| < 2^14, gamma up to 30.
    for (h, vars) in [
        (768usize, vec![1e-2f64, 1.0, 6e4, 1e5, 1e6, 1.3e6]),
        (96, vec![1e-2, 1e6, 1e7]),
    ] {
        let rows = vars.len();
        let mut x = Vec::new();
        for (i, var) in vars.iter().enumerate() {
            let noise = reals(500 + i as u64, h, -1.0, 1.0);
            let m = noise.iter().sum::<f64>() / h as f64;
            let sd = (noise.iter().map(|v| (v - m).powi(2)).sum::<f64>() / h as f64).sqrt();
            let mean = if *var < 1e5 { 100.0 } else { 4000.0 };
            x.extend(noise.iter().map(|v| mean + (v - m) / sd * var.sqrt()));
        }
        assert!(x.iter().all(|v| v.abs() < 16384.0));
        let g = reals(510, h, -30.0, 30.0);
        let b = reals(511, h, -1.0, 1.0);
        let want = plain_layernorm(
            rows,
            h,
            &dec(&enc(&x)),
            &dec(&enc(&g)),
            &dec(&enc(&b)),
            1e-12,
        );
        for net in NETS {
            let (r, _) = run(net, |s| {
                let xs = share(s, PartyId::P1, &x)?;
                let gs = share(s, PartyId::P0, &g)?;
                let bs = share(s, PartyId::P0, &b)?;
                let mut out = vec![AShare::default(); rows * h];
                let mut scratch = vec![0u64; layernorm::scratch_words(rows, h, 16)];
                layernorm::layernorm(s, rows, h, &xs, &gs, &bs, 1e-12, &mut out, &mut scratch)?;
                open(s, &out)
            })
            .unwrap();
            for i in 0..rows {
                let err = max_abs_diff(&r[i * h..(i + 1) * h], &want[i * h..(i + 1) * h]);
                assert!(err <= 0.01, "h={h} var {}: max |err| {err}", vars[i]);
            }
        }
    }
}

#[test]
fn products_at_the_ends_of_their_range() {
    use secformer_core::protocols::{matmul, mul, square};
    // Square: |x| < 2^15; product: |x y| < 2^30; matmul: each sum below 2^30.
    let top = 32767.99;
    let xs = vec![top, -top, 1.5, -0.25, 20000.0, LSB];
    let ys = vec![top, top, -1.0, 4096.0, -53000.0, 1.0];
    let (k, cols) = (4usize, 2usize);
    // A 1 x 4 by 4 x 2 product whose sums reach 2^30 - 2^20 and -(2^30 - 2^20).
    let a = vec![16383.0, 16383.0, 16383.0, 16383.0];
    let b = vec![
        16383.9, -16383.9, 16383.9, -16383.9, 16383.9, -16383.9, 16383.9, -16383.9,
    ];
    for net in NETS {
        let (r, _) = run(net, |s| {
            let x = share(s, PartyId::P0, &xs)?;
            let y = share(s, PartyId::P1, &ys)?;
            let n = xs.len();
            let mut sq = vec![AShare::default(); n];
            let mut pr = vec![AShare::default(); n];
            let mut sc = vec![0u64; square::scratch_words(n) + mul::scratch_words(n)];
            square::square(s, &x, &mut sq, &mut sc)?;
            mul::mul(s, &x, &y, &mut pr, &mut sc)?;
            let am = share(s, PartyId::P0, &a)?;
            let bm = share(s, PartyId::P1, &b)?;
            let mut mm = vec![AShare::default(); cols];
            let mut sc = vec![0u64; matmul::scratch_words(1, k, cols)];
            matmul::matmul(s, 1, k, cols, &am, &bm, &mut mm, &mut sc)?;
            Ok((open(s, &sq)?, open(s, &pr)?, open(s, &mm)?))
        })
        .unwrap();
        let (gx, gy) = (dec(&enc(&xs)), dec(&enc(&ys)));
        for i in 0..xs.len() {
            let (want_sq, want_pr) = (gx[i] * gx[i], gx[i] * gy[i]);
            assert!(
                (r.0[i] - want_sq).abs() <= 2.0 * LSB + want_sq * 1e-15,
                "{} squared: {}",
                gx[i],
                r.0[i]
            );
            assert!(
                (r.1[i] - want_pr).abs() <= 2.0 * LSB,
                "{} * {}: {}",
                gx[i],
                gy[i],
                r.1[i]
            );
        }
        let (ga, gb) = (dec(&enc(&a)), dec(&enc(&b)));
        for j in 0..cols {
            let want: f64 = (0..k).map(|t| ga[t] * gb[t * cols + j]).sum();
            assert!(want.abs() > 1.07e9 && want.abs() < 2f64.powi(30));
            assert!((r.2[j] - want).abs() <= 2.0 * LSB, "sum {want}: {}", r.2[j]);
        }
    }
}

/// The second use of bit-product material whose value is still to be truncated
/// (`bitmul::again_pending`, the rescale after a normalization): each `b_ij trunc(w_i, g)`
/// within one unit of `b_ij w_i / 2^g` (the faithful truncation), at the truncation's range
/// ends too; one round and `cost_again_pending`'s bytes; a second opening is refused.
#[test]
fn a_bit_product_truncates_its_second_value_in_its_round() {
    let (n, m, g) = (70usize, 3usize, 40u32);
    let x = reals(34, n, -5.0, 5.0);
    let lim = (1i64 << 62) - (1i64 << g) - 1;
    let mut w: Vec<i64> = vec![0, 1, -1, lim, -lim, 1 << g, -(1 << g)];
    let mut st = 0x9e37_79b9_7f4a_7c15u64;
    while w.len() < n {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        w.push((st % (2 * lim as u64)) as i64 - lim);
    }
    let wv: Vec<u64> = w.iter().map(|v| *v as u64).collect();
    let mut bits = vec![0u64; words_for_bits(n * m)];
    for i in 0..n * m {
        if (i * 7 + i / 3) % 5 < 2 {
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    for net in NETS {
        let (r, _) = run(net, |s| {
            let xs = share(s, PartyId::P0, &x)?;
            let mut ws = vec![AShare::default(); n];
            let own = (s.party() == PartyId::P0).then_some(&wv[..]);
            input::share_input(s, PartyId::P0, own, &mut ws)?;
            // P0 holds the bits; P1's XOR share is zero.
            let mine = if s.party().is_p0() {
                bits.clone()
            } else {
                vec![0; bits.len()]
            };
            let it = secformer_core::dealer::Item::BitMulTrunc {
                n: n as u32,
                m: m as u16,
                f: g as u8,
            };
            s.dealer_mut().request(&[it])?;
            let mut storage = vec![0u64; bitmul::pending_material_words(n, m)];
            let mut mat = bitmul::take_pending(s.dealer_mut(), n, m, g, &mut storage)?;
            let mut d = vec![0u64; words_for_bits(n * m)];
            let mut out = vec![AShare::default(); n * m];
            let mut scratch =
                vec![0u64; bitmul::scratch_words(n, m).max(bitmul::pending_scratch_words(n))];
            bitmul::first(s, &mut mat, &mine, &xs, &mut d, &mut out, &mut scratch)?;
            let before = s.peer_stats();
            bitmul::again_pending(s, &mut mat, &d, &ws, &mut out, &mut scratch)?;
            let st = s.peer_stats().since(&before);
            let c = bitmul::cost_again_pending(n);
            assert_eq!((st.rounds, st.payload_sent), (c.rounds, c.bytes(s.party())));
            let twice = bitmul::again_pending(s, &mut mat, &d, &ws, &mut out, &mut scratch);
            assert!(
                twice.is_err(),
                "a second opening of the value mask is refused"
            );
            let mut o = vec![0u64; n * m];
            reveal::reveal(s, &out, &mut o)?;
            Ok(o)
        })
        .unwrap();
        for i in 0..n {
            let exact = w[i] as f64 / (1u64 << g) as f64;
            for j in 0..m {
                let idx = i * m + j;
                let b = (bits[idx / 64] >> (idx % 64)) & 1;
                let got = r[idx] as i64 as f64;
                let want = b as f64 * exact;
                assert!(
                    (got - want).abs() <= 1.0 + 1e-9,
                    "bit {b}, w {}: {got}",
                    w[i]
                );
            }
        }
    }
}

#[test]
fn a_bit_product_mask_opens_once() {
    // Material for one value per bit and a second use: first, again, then a second
    // `again` and a second `first` on the same material must be refused before sending.
    let n = 16;
    let x = reals(32, n, -5.0, 5.0);
    let (r, _) = run(Net::Mem, |s| {
        let xs = share(s, PartyId::P0, &x)?;
        s.dealer_mut().request(&[bitmul::item(n, 1, 2)])?;
        let mut storage = vec![0u64; bitmul::material_words(n, 1, 2)];
        let mut mat = bitmul::take(s.dealer_mut(), n, 1, 2, &mut storage)?;
        let bits = vec![0u64; words_for_bits(n)];
        let mut d = vec![0u64; words_for_bits(n)];
        let mut out = vec![AShare::default(); n];
        let mut scratch = vec![0u64; bitmul::scratch_words(n, 1)];
        bitmul::first(s, &mut mat, &bits, &xs, &mut d, &mut out, &mut scratch)?;
        bitmul::again(s, &mut mat, 1, &d, &xs, &mut out, &mut scratch)?;
        let twice = bitmul::again(s, &mut mat, 1, &d, &xs, &mut out, &mut scratch).is_err();
        let first_twice =
            bitmul::first(s, &mut mat, &bits, &xs, &mut d, &mut out, &mut scratch).is_err();
        Ok((twice, first_twice))
    })
    .unwrap();
    assert_eq!(r, (true, true));
}

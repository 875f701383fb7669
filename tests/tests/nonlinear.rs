//! SecFormer's nonlinear protocols, two parties + dealer over in-memory links and TCP,
//! against f64 references with the error bounds.

use secformer_core::bits;
use secformer_core::party::PartyId;
use secformer_core::prg::words_for_bits;
use secformer_core::protocols::{compare, input};
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
    (0..n).map(|i| bits::get(a, i) ^ bits::get(b, i) == 1).collect()
}

#[test]
fn comparison_sign_and_threshold() {
    for k in [2u32, 5, 17, 28, 32, 64] {
        // |x| < 2^(k-1) ring units (capped where the encoding itself ends).
        let lim = ((2f64).powi(k as i32 - 1).min((2f64).powi(62)) - 1.0) / 65536.0;
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
    assert_eq!(xor_bits(&a, &b, 6), vec![true, true, false, false, false, true]);
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
    assert_eq!(compare::bytes(64, 28) * 8 / 64, 100, "100 bits per element at k = 28");
    assert_eq!(compare::bytes(64, 32) * 8 / 64, 116);
    assert_eq!(compare::rounds(28), 6);
}

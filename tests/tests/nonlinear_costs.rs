//! Rounds and payload bytes of every nonlinear protocol equal its documented `cost`, and
//! what a party receives is masked (changes with the dealer's randomness for a fixed
//! secret input; never contains the plaintext).

use secformer_core::party::PartyId;
use secformer_core::prg::words_for_bits;
use secformer_core::protocols::{
    bitmul, compare, fourier, gelu, input, layernorm, max4, reciprocal, rsqrt, softmax_2quad,
    softmax_exact, tanh, Cost, Mask, Width,
};
use secformer_core::share::AShare;
use secformer_tests::*;

fn share(s: &mut TestSession, owner: PartyId, vals: &[f64]) -> secformer_core::Result<Vec<AShare>> {
    let mut out = vec![AShare::default(); vals.len()];
    let mine = (s.party() == owner).then_some(vals);
    input::share_input_f64(s, owner, mine, &mut out)?;
    Ok(out)
}

/// The program of one protocol on `x` (shared by P1); returns nothing.
type Prog = fn(&mut TestSession, &[AShare]) -> secformer_core::Result<()>;

/// Each party's (rounds, payload bytes sent).
fn measure(x: &[f64], prog: Prog) -> [(u64, u64); 2] {
    let (a, b) = run(Net::Mem, |s| {
        let xs = share(s, PartyId::P1, x)?;
        let before = s.peer_stats();
        prog(s, &xs)?;
        let d = s.peer_stats().since(&before);
        Ok((d.rounds, d.payload_sent))
    })
    .unwrap();
    [a, b]
}

const F: u32 = 16;

fn progs() -> Vec<(&'static str, Vec<f64>, Prog, Cost)> {
    let n = 96;
    let pos: Vec<f64> = reals(1, 40, 0.5, 1000.0);
    let sm = reals(2, 4 * 16, -5.0, 5.0);
    let ln = reals(3, 4 * 32, -3.0, 3.0);
    vec![
        (
            "gelu",
            reals(4, n, -6.0, 6.0),
            |s, x| {
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; gelu::scratch_words(x.len(), gelu::DEFAULT_BITS)];
                gelu::gelu(s, x, gelu::DEFAULT_BITS, &mut o, &mut sc)
            },
            gelu::cost(n, gelu::DEFAULT_BITS, F),
        ),
        (
            "tanh",
            reals(5, n, -6.0, 6.0),
            |s, x| {
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; tanh::scratch_words(x.len(), 28)];
                tanh::tanh(s, x, 28, &mut o, &mut sc)
            },
            tanh::cost(n, 28, F),
        ),
        (
            "comparison",
            reals(6, n, -6.0, 6.0),
            |s, x| {
                let mut o = vec![0u64; words_for_bits(x.len())];
                let mut sc = vec![0u64; compare::scratch_words(x.len(), 28)];
                compare::msb(s, x, 28, &mut o, &mut sc)
            },
            compare::cost(n, 28),
        ),
        (
            "select",
            reals(7, n, -6.0, 6.0),
            |s, x| {
                let bits = vec![0u64; words_for_bits(x.len())];
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; bitmul::convenience_scratch_words(x.len())];
                bitmul::select(s, &bits, x, x, &mut o, &mut sc)
            },
            bitmul::cost(n, 1),
        ),
        (
            "softmax_2quad_wide",
            reals(10, 4 * 16, -5.0, 5.0),
            |s, x| {
                // The scores at 2f bits, as an untruncated product leaves them.
                let mut v: Vec<u64> = AShare::raw_slice(x).iter().map(|a| a << F).collect();
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; softmax_2quad::wide_scratch_words(4, 16, F)];
                let ring = Width::holding(48);
                softmax_2quad::softmax_2quad_wide(
                    s,
                    4,
                    16,
                    AShare::from_raw_slice_mut(&mut v),
                    ring,
                    Mask::All,
                    None,
                    5.0,
                    &mut o,
                    &mut sc,
                )
            },
            softmax_2quad::wide_cost(4, 16, false, F),
        ),
        (
            "max4",
            reals(9, n, -6.0, 6.0),
            |s, x| {
                let groups = x.len() / 4;
                let bits = vec![0u64; words_for_bits(6 * groups)];
                let mut o = vec![0u64; groups];
                let mut sc = vec![0u64; max4::scratch_words(groups)];
                max4::max4(
                    s,
                    groups,
                    AShare::raw_slice(x),
                    &bits,
                    Width::FULL,
                    &mut o,
                    &mut sc,
                )
            },
            max4::cost(n / 4, Width::FULL),
        ),
        (
            "fourier",
            reals(8, n, -6.0, 6.0),
            |s, x| {
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; fourier::scratch_words(x.len(), 2)];
                let series = fourier::Series {
                    p: 20,
                    c0: 0.0,
                    alpha: &[1.0, 0.5],
                    beta: &[],
                };
                fourier::fourier(s, x, &series, &mut o, &mut sc)
            },
            fourier::cost(n, 20),
        ),
        (
            "reciprocal",
            pos.clone(),
            |s, x| {
                let spec = reciprocal::default_spec(16);
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; reciprocal::scratch_words(x.len(), &spec)];
                reciprocal::reciprocal(s, x, &spec, 16, &mut o, &mut sc)
            },
            reciprocal::cost(40, &reciprocal::default_spec(16)),
        ),
        (
            "rsqrt",
            pos,
            |s, x| {
                let spec = rsqrt::default_spec(16);
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; rsqrt::scratch_words(x.len(), &spec)];
                rsqrt::rsqrt(s, x, &spec, 16, &mut o, &mut sc)
            },
            rsqrt::cost(40, &rsqrt::default_spec(16)),
        ),
        (
            "layernorm",
            ln,
            |s, x| {
                let (rows, h) = (4, 32);
                let g = vec![AShare::default(); h];
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; layernorm::scratch_words(rows, h, 16)];
                layernorm::layernorm(s, rows, h, x, &g, &g, 1e-5, &mut o, &mut sc)
            },
            layernorm::cost(4, 32, F),
        ),
        (
            "softmax_2quad",
            sm.clone(),
            |s, x| {
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; softmax_2quad::scratch_words(4, 16, 16)];
                softmax_2quad::softmax_2quad(s, 4, 16, x, Mask::All, 5.0, &mut o, &mut sc)
            },
            softmax_2quad::cost(4, 16, F),
        ),
        (
            "softmax_exact",
            sm,
            |s, x| {
                let mut o = vec![AShare::default(); x.len()];
                let mut sc = vec![0u64; softmax_exact::scratch_words(4, 16, 28)];
                softmax_exact::softmax_exact(s, 4, 16, x, Mask::All, 28, &mut o, &mut sc)
            },
            softmax_exact::cost(4, 16, 28),
        ),
    ]
}

#[test]
fn measured_costs_equal_the_documented_formulas() {
    for (name, x, prog, want) in progs() {
        let got = measure(&x, prog);
        for (party, g) in [PartyId::P0, PartyId::P1].into_iter().zip(got) {
            assert_eq!(
                g,
                (want.rounds, want.bytes(party)),
                "{name}: {party:?} measured {g:?} (rounds, bytes), documented {want:?}"
            );
        }
    }
    // The headline figures of the docs.
    assert_eq!(gelu::cost(64, 22, F).rounds, 5);
    // Bits per element, both parties: 64 for E, the carry trees of both thresholds above
    // their first level (the leaves and the first level are local: D gives the bits of
    // E's mask with their first-level products), 2 for the bits, 1 truncation.
    assert_eq!(gelu::cost(64, 28, F).sent.map(|b| b * 8 / 64), [93, 93]);
    assert_eq!(gelu::cost(64, 22, F).sent.map(|b| b * 8 / 64), [89, 89]);
    // In a BERT layer: the input at 2f bits in the 6-byte ring, opened rounded to f bits
    // (4 bytes), comparisons on 20 bits: 51 bits per element, the same 5 rounds.
    let ring = Width::bytes(6);
    assert_eq!(gelu::bits_in(ring, F), 20);
    let layer_gelu = gelu::cost_in(64, gelu::bits_in(ring, F), F, ring);
    assert_eq!(
        (layer_gelu.rounds, layer_gelu.sent.map(|b| b * 8 / 64)),
        (5, [51, 51])
    );
    // The exact softmax's comparisons in a BERT layer (scores below 2^14, the padding's
    // offset of 512): 23 bits, the same 36 rounds at 128 keys.
    assert_eq!(softmax_exact::bits_for_spread(32768.0 + 512.0, F), 23);
    assert_eq!(softmax_exact::cost(12 * 128, 128, 23).rounds, 36);
    assert_eq!(layernorm::cost(128, 768, F).rounds, 11);
    assert_eq!(softmax_2quad::cost(12 * 128, 128, F).rounds, 10);
    assert_eq!(softmax_exact::cost(12 * 128, 128, 28).rounds, 36);
    assert_eq!(
        reciprocal::cost(64, &reciprocal::default_spec(F)).rounds,
        13
    );
    assert_eq!(rsqrt::cost(64, &rsqrt::default_spec(F)).rounds, 7);
    // The softmax's reciprocal: 113 quarter-octave thresholds on 57 bits per row sum.
    let sp = softmax_2quad::spec(F);
    assert_eq!((sp.buckets(), sp.k, sp.shift), (113, 57, 7));
}

#[test]
fn nonlinear_openings_are_masked() {
    for (name, x, prog, _) in progs() {
        let runs: Vec<Vec<u8>> = (0..24u64)
            .map(|seed| {
                let (out, rec) = run_recorded(Net::Mem, 1000 + seed, |s| {
                    let xs = share(s, PartyId::P1, &x)?;
                    prog(s, &xs)
                });
                out.unwrap();
                let t = rec[0].lock().unwrap().clone(); // what P0 received from P1
                t
            })
            .collect();
        let len = runs[0].len();
        assert!(
            runs.iter().all(|r| r.len() == len),
            "{name}: schedule depends on the seed"
        );
        // Every byte position either varies across runs or is zero padding in all runs.
        let mut zero_pad = 0usize;
        for i in 0..len {
            let first = runs[0][i];
            if runs.iter().all(|r| r[i] == first) {
                assert_eq!(
                    first, 0,
                    "{name}: byte {i} of P0's transcript is a constant {first}"
                );
                zero_pad += 1;
            }
        }
        assert!(
            zero_pad * 5 < len,
            "{name}: {zero_pad} of {len} bytes never change"
        );
        // The plaintext inputs (8-byte encodings) never appear.
        for v in enc(&x) {
            if v.count_ones() > 8 && v.count_ones() < 56 {
                let b = v.to_le_bytes();
                assert!(
                    !runs[0].windows(8).any(|w| w == b),
                    "{name}: transcript contains an input"
                );
            }
        }
    }
}

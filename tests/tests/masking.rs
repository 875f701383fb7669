//! What a party receives when values are opened is masked: for the same secret inputs,
//! the received bytes change from run to run (fresh dealer randomness), every bit is
//! balanced, and neither transcript contains the plaintext inputs or the result.

use secformer_core::party::PartyId;
use secformer_core::protocols::{input, mul, square, trunc, weight};
use secformer_core::share::AShare;
use secformer_tests::*;

const RUNS: u64 = 120;
const N: usize = 16;

fn secret_program(s: &mut TestSession) -> secformer_core::Result<()> {
    let x = [1.5f64; N];
    let y = [-2.25f64; N];
    let p0 = s.party() == PartyId::P0;
    let mut xs = vec![AShare::default(); N];
    let mut ys = vec![AShare::default(); N];
    input::share_input_f64(s, PartyId::P0, p0.then_some(&x[..]), &mut xs)?;
    input::share_input_f64(s, PartyId::P1, (!p0).then_some(&y[..]), &mut ys)?;
    let mut z = vec![AShare::default(); N];
    let mut scratch = vec![0u64; mul::scratch_words(N).max(square::scratch_words(N))];
    mul::mul(s, &xs, &ys, &mut z, &mut scratch)?;
    let mut q = vec![AShare::default(); N];
    square::square(s, &z, &mut q, &mut scratch)?;
    // A weight product too: F = W - B at setup and E = X - A online.
    let mut wp = vec![0u64; N * 4];
    let mut f = vec![0u64; N * 4];
    let mut sc =
        vec![0u64; weight::setup_scratch_words(N, 4).max(weight::apply_scratch_words(1, N, 4))];
    let w = vec![0.75f64; N * 4];
    let mut ws = vec![AShare::default(); N * 4];
    input::share_input_f64(s, PartyId::P0, p0.then_some(&w[..]), &mut ws)?;
    let sw = weight::setup(s, 1, N, 4, &ws, &mut wp, &mut f, &mut sc)?;
    let mut storage = vec![0u64; weight::prepare_words(1, N, 4)];
    let prep = weight::prepare(s, &sw, 1, &mut storage)?;
    let mut o = vec![AShare::default(); 4];
    weight::apply(s, &sw, prep, &xs, &mut o, &mut sc)?;
    let _ = trunc::TruncMode::Faithful;
    Ok(())
}

fn transcripts() -> Vec<[Vec<u8>; 2]> {
    (0..RUNS)
        .map(|seed| {
            let (out, rec) = run_recorded(Net::Mem, seed, secret_program);
            out.unwrap();
            let t = |i: usize| rec[i].lock().unwrap().clone();
            [t(0), t(1)]
        })
        .collect()
}

#[test]
fn openings_are_masked() {
    let ts = transcripts();
    let len = ts[0][1].len();
    assert!(len > 8 * 2 * N, "P1 received {len} bytes");
    for party in 0..2 {
        // Same length every run (the schedule is input-independent) ...
        assert!(ts.iter().all(|t| t[party].len() == ts[0][party].len()));
        let words: Vec<Vec<u64>> = ts
            .iter()
            .map(|t| {
                t[party]
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            })
            .collect();
        let nw = words[0].len();
        // ... but no received word is the same across runs.
        for j in 0..nw {
            let first = words[0][j];
            assert!(
                words.iter().any(|w| w[j] != first),
                "party {party}: word {j} is constant across runs"
            );
        }
        // Bit balance over every bit of every received byte (runs x bytes samples per
        // bit position of a byte; uniform bits give 1/2 +- a few 1/sqrt(samples)).
        let mut ones = [0u64; 64];
        let mut total = 0u64;
        for w in &words {
            for v in w {
                for (b, c) in ones.iter_mut().enumerate() {
                    *c += (v >> b) & 1;
                }
                total += 1;
            }
        }
        for (b, c) in ones.iter().enumerate() {
            let frac = *c as f64 / total as f64;
            assert!(
                (0.45..0.55).contains(&frac),
                "party {party}: bit {b} is 1 in {frac:.3} of samples"
            );
        }
    }
}

#[test]
fn transcripts_never_contain_the_plaintext() {
    let ts = transcripts();
    let secrets: Vec<[u8; 8]> = [
        1.5f64,
        -2.25,
        1.5 * -2.25,
        (1.5f64 * -2.25).powi(2),
        0.75,
        0.75 * 1.5 * 16.0,
    ]
    .iter()
    .map(|v| enc(&[*v])[0].to_le_bytes())
    .collect();
    for t in &ts {
        for party in 0..2 {
            for sec in &secrets {
                let found = t[party].windows(8).any(|w| w == sec);
                assert!(
                    !found,
                    "party {party}'s transcript contains a plaintext value"
                );
            }
        }
    }
}

//! Faithful truncation at scale: 10^7 random fixed-point products with |x y| up to 2^20,
//! checked exactly (integer arithmetic) to be within 1 LSB, with no large error.

use secformer_core::party::PartyId;
use secformer_core::prg::{Prg, Seed};
use secformer_core::protocols::{input, mul, reveal};
use secformer_core::share::AShare;
use secformer_tests::*;

const BATCH: usize = 1_000_000;
const BATCHES: usize = 10;

#[test]
fn ten_million_products_within_one_lsb() {
    let (worst, _) = run(Net::Mem, |s| {
        let mut prg = Prg::new(&Seed::from_u64_for_tests(2024), 9);
        let mut worst = 0f64;
        let mut xs = vec![AShare::default(); BATCH];
        let mut ys = vec![AShare::default(); BATCH];
        let mut z = vec![AShare::default(); BATCH];
        let mut scratch = vec![0u64; mul::scratch_words(BATCH)];
        let mut x = vec![0u64; BATCH];
        let mut y = vec![0u64; BATCH];
        let mut out = vec![0u64; BATCH];
        for _ in 0..BATCHES {
            // Both parties draw the same public test values; each "owns" one operand.
            // |x|, |y| < 2^10 in real units (2^26 encoded), so |x y| < 2^20.
            for v in x.iter_mut().chain(y.iter_mut()) {
                *v = ((prg.next_u64() as i64) >> 37) as u64;
            }
            let p0 = s.party() == PartyId::P0;
            input::share_input(s, PartyId::P0, p0.then_some(&x[..]), &mut xs)?;
            input::share_input(s, PartyId::P1, (!p0).then_some(&y[..]), &mut ys)?;
            mul::mul(s, &xs, &ys, &mut z, &mut scratch)?;
            reveal::reveal(s, &z, &mut out)?;
            for i in 0..BATCH {
                let exact = (x[i] as i64 as i128) * (y[i] as i64 as i128);
                // error in LSBs: out - exact / 2^16, computed exactly.
                let diff = ((out[i] as i64 as i128) << 16) - exact;
                let err = diff as f64 / 65536.0;
                worst = f64::max(worst, err.abs());
            }
        }
        Ok(worst)
    })
    .unwrap();
    assert!(worst < 1.0, "worst error {worst} LSB");
}

//! Bytes and rounds of each protocol equal the formulas in its doc comment: payload bytes
//! sent per party, rounds waited, and the dealer's correction bytes to P1.

use secformer_core::dealer::{correction_bytes, Item};
use secformer_core::party::PartyId;
use secformer_core::protocols::{input, linear, matmul, mul, reveal, square, trunc, weight};
use secformer_core::share::AShare;
use secformer_core::transport::{Stats, FRAME_OVERHEAD};
use secformer_tests::*;

const F: u32 = 16;

/// Runs `body` on shared inputs and returns (P0 peer delta, P1 peer delta, P1 dealer delta).
fn measure(
    n: usize,
    body: impl Fn(&mut TestSession, &[AShare], &[AShare]) -> secformer_core::Result<()> + Sync,
) -> (Stats, Stats, Stats) {
    let x = reals(1, n, -3.0, 3.0);
    let y = reals(2, n, -3.0, 3.0);
    let (a, b) = run(Net::Mem, |s| {
        let mut xs = vec![AShare::default(); n];
        let mut ys = vec![AShare::default(); n];
        let p0 = s.party() == PartyId::P0;
        input::share_input_f64(s, PartyId::P0, p0.then_some(&x[..]), &mut xs)?;
        input::share_input_f64(s, PartyId::P1, (!p0).then_some(&y[..]), &mut ys)?;
        let (pb, db) = (s.peer_stats(), s.dealer_stats());
        body(s, &xs, &ys)?;
        Ok((s.peer_stats().since(&pb), s.dealer_stats().since(&db)))
    })
    .unwrap();
    (a.0, b.0, b.1)
}

/// Payload bytes D sends P1 for these items (corrections only; framing counted apart).
fn dealer_payload(items: &[Item]) -> u64 {
    items.iter().map(correction_bytes).sum()
}

fn check(st: &Stats, payload: u64, rounds: u64) {
    assert_eq!(st.payload_sent, payload, "payload bytes sent");
    assert_eq!(st.rounds, rounds, "rounds");
}

#[test]
fn reveal_costs() {
    let n = 100;
    let (p0, p1, d) = measure(n, |s, x, _| {
        let mut o = vec![0u64; n];
        reveal::reveal(s, x, &mut o)
    });
    check(&p0, 8 * n as u64, 1);
    check(&p1, 8 * n as u64, 1);
    assert_eq!(d.payload_received, 0);
    // Wire bytes are the payload plus one frame header/checksum.
    assert_eq!(p0.bytes_sent, 8 * n as u64 + FRAME_OVERHEAD as u64);

    let (p0, p1, _) = measure(n, |s, x, _| {
        if s.party() == PartyId::P1 {
            let mut o = vec![0u64; n];
            reveal::reveal_to(s, PartyId::P1, x, Some(&mut o))
        } else {
            reveal::reveal_to(s, PartyId::P1, x, None)
        }
    });
    check(&p0, 8 * n as u64, 0);
    check(&p1, 0, 1);
}

#[test]
fn truncation_costs() {
    for n in [1usize, 8, 63, 64, 65, 1000] {
        let (p0, p1, d) = measure(n, |s, x, _| {
            let mut v = x.to_vec();
            let mut scratch = vec![0u64; trunc::scratch_words(n)];
            trunc::trunc(s, &mut v, &mut scratch)
        });
        let bytes = n.div_ceil(8) as u64;
        check(&p0, bytes, 1);
        check(&p1, bytes, 1);
        assert_eq!(d.payload_received, dealer_payload(&[trunc::item(n, F)]));
        assert_eq!(
            d.payload_received,
            n as u64 * 2,
            "2 bytes per element at f = 16"
        );
    }
    // Local truncation is free.
    let (p0, p1, _) = measure(50, |s, x, _| {
        s.set_trunc_mode(trunc::TruncMode::LocalSecureMl);
        let mut v = x.to_vec();
        trunc::trunc(s, &mut v, &mut [])
    });
    check(&p0, 0, 0);
    check(&p1, 0, 0);
}

#[test]
fn product_costs() {
    let n = 300usize;
    let nb = n.div_ceil(8) as u64;
    let (p0, p1, d) = measure(n, |s, x, y| {
        let mut z = vec![AShare::default(); n];
        let mut scratch = vec![0u64; mul::scratch_words(n)];
        mul::mul(s, x, y, &mut z, &mut scratch)
    });
    check(&p0, 16 * n as u64 + nb, 2);
    check(&p1, 16 * n as u64 + nb, 2);
    assert_eq!(d.payload_received, 8 * n as u64 + 2 * n as u64);

    let (p0, _, d) = measure(n, |s, x, y| {
        let mut z = vec![AShare::default(); n];
        let mut scratch = vec![0u64; mul::scratch_words(n)];
        mul::mul_ring(s, x, y, &mut z, &mut scratch)
    });
    check(&p0, 16 * n as u64, 1);
    assert_eq!(d.payload_received, 8 * n as u64);

    let (p0, p1, d) = measure(n, |s, x, _| {
        let mut z = vec![AShare::default(); n];
        let mut scratch = vec![0u64; square::scratch_words(n)];
        square::square(s, x, &mut z, &mut scratch)
    });
    check(&p0, 8 * n as u64 + nb, 2);
    check(&p1, 8 * n as u64 + nb, 2);
    assert_eq!(
        d.payload_received,
        dealer_payload(&[Item::Square { n: n as u32 }, trunc::item(n, F)])
    );

    let (p0, _, _) = measure(n, |_s, x, _| {
        let mut v = x.to_vec();
        linear::mul_public_ring(&mut v, 5);
        let mut w = vec![AShare::default(); n];
        linear::add(x, &v, &mut w)
    });
    check(&p0, 0, 0);
}

#[test]
fn matmul_costs() {
    let (m, k, n) = (5usize, 6usize, 7usize);
    let (p0, p1, d) = measure(m * k + k * n, |s, x, _| {
        let mut z = vec![AShare::default(); m * n];
        let mut scratch = vec![0u64; matmul::scratch_words(m, k, n)];
        matmul::matmul(s, m, k, n, &x[..m * k], &x[m * k..], &mut z, &mut scratch)
    });
    let want = 8 * (m * k + k * n) as u64 + (m * n).div_ceil(8) as u64;
    check(&p0, want, 2);
    check(&p1, want, 2);
    assert_eq!(d.payload_received, 8 * (m * n) as u64 + 2 * (m * n) as u64);
}

#[test]
fn weight_product_costs() {
    let (m, k, n) = (4usize, 10usize, 3usize);
    let x = reals(3, m * k, -1.0, 1.0);
    let w = reals(4, k * n, -1.0, 1.0);
    let (a, b) = run(Net::Mem, |s| {
        let p0 = s.party() == PartyId::P0;
        let mut ws = vec![AShare::default(); k * n];
        input::share_input_f64(s, PartyId::P0, p0.then_some(&w[..]), &mut ws)?;
        let mut xs = vec![AShare::default(); m * k];
        input::share_input_f64(s, PartyId::P1, (!p0).then_some(&x[..]), &mut xs)?;
        let mut wp = vec![0u64; k * n];
        let mut f = vec![0u64; k * n];
        let mut scratch =
            vec![0u64; weight::setup_scratch_words(k, n).max(weight::apply_scratch_words(m, k, n))];
        let (p, d) = (s.peer_stats(), s.dealer_stats());
        let sw = weight::setup(s, 0, k, n, &ws, &mut wp, &mut f, &mut scratch)?;
        let setup = (s.peer_stats().since(&p), s.dealer_stats().since(&d));
        let mut storage = vec![0u64; weight::prepare_words(m, k, n)];
        let (p, d) = (s.peer_stats(), s.dealer_stats());
        let prep = weight::prepare(s, &sw, m, &mut storage)?;
        let prepare = (s.peer_stats().since(&p), s.dealer_stats().since(&d));
        let (p, d) = (s.peer_stats(), s.dealer_stats());
        let mut z = vec![AShare::default(); m * n];
        weight::apply(s, &sw, prep, &xs, &mut z, &mut scratch)?;
        let online = (s.peer_stats().since(&p), s.dealer_stats().since(&d));
        Ok([setup, prepare, online])
    })
    .unwrap();
    for party in [&a, &b] {
        // Setup: open F once (8kn bytes, 1 round).
        check(&party[0].0, 8 * (k * n) as u64, 1);
        // Prepare: no party-to-party traffic.
        check(&party[1].0, 0, 0);
        // Online: E (8mk) and the truncation bits, 2 rounds, no dealer traffic.
        check(
            &party[2].0,
            8 * (m * k) as u64 + (m * n).div_ceil(8) as u64,
            2,
        );
        assert_eq!(party[2].1.payload_received + party[2].1.payload_sent, 0);
    }
    // The mask costs D nothing to send; each inference's C correction and trunc material do.
    assert_eq!(b[0].1.payload_received, 0);
    assert_eq!(
        b[1].1.payload_received,
        8 * (m * n) as u64 + 2 * (m * n) as u64
    );
}

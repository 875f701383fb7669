//! P1's dealer stream encrypted (for relaying through another endpoint) and prefetched a
//! request at a time (for one serial line shared with the peer): results unchanged, and
//! the relayed bytes are not the plaintext corrections.

use std::sync::{Arc, Mutex};

use secformer_core::dealer::prefetch::Prefetch;
use secformer_core::dealer::server::{identify_hello, DealerService};
use secformer_core::dealer::DealerClient;
use secformer_core::fxp::Encoding;
use secformer_core::party::PartyId;
use secformer_core::prg::Seed;
use secformer_core::protocols::{gelu, input, reveal};
use secformer_core::session::Session;
use secformer_core::share::AShare;
use secformer_core::transport::mem::channel_pair;
use secformer_host::kernel::HostKernel;
use secformer_tests::*;

fn program<T: secformer_core::transport::Transport, D: secformer_core::dealer::Dealer>(
    s: &mut Session<T, D, HostKernel>,
    x: &[f64],
) -> secformer_core::Result<Vec<f64>> {
    let mut xs = vec![AShare::default(); x.len()];
    let own = (s.party() == PartyId::P1).then_some(x);
    input::share_input_f64(s, PartyId::P1, own, &mut xs)?;
    let mut out = vec![AShare::default(); x.len()];
    let mut sc = vec![0u64; gelu::scratch_words(x.len(), 28)];
    gelu::gelu(s, &xs, 28, &mut out, &mut sc)?;
    let mut o = vec![0u64; x.len()];
    reveal::reveal(s, &out, &mut o)?;
    s.finish()?;
    Ok(dec(&o))
}

#[test]
fn encrypted_prefetched_corrections_give_the_same_result() {
    let x = reals(7, 300, -6.0, 6.0);
    let (d0, p0d) = channel_pair();
    let (d1, p1d) = channel_pair();
    let (p0p, p1p) = channel_pair();
    let relayed = Arc::new(Mutex::new(Vec::new()));
    let rec = relayed.clone();
    std::thread::scope(|sc| {
        sc.spawn(move || {
            let (mut d0, mut d1) = (d0, d1);
            let h0 = identify_hello(&mut d0).unwrap();
            let h1 = identify_hello(&mut d1).unwrap();
            assert!(h1.encrypt && !h0.encrypt);
            let mut svc = DealerService::new(
                Seed::from_u64_for_tests(1),
                Seed::from_u64_for_tests(2),
                9,
                HostKernel::detect(),
            );
            svc.encrypt_corrections(h1.encrypt);
            svc.greet(&mut d0, &mut d1).unwrap();
            svc.serve(&mut d0, &mut d1).unwrap();
        });
        let x0 = x.clone();
        let h0 = sc.spawn(move || {
            let (client, session) = DealerClient::connect(p0d, PartyId::P0).unwrap();
            let mut s = Session::establish(
                PartyId::P0,
                Encoding::default(),
                p0p,
                client,
                HostKernel::detect(),
                session,
                Some(Seed::from_u64_for_tests(3)),
            )
            .unwrap();
            program(&mut s, &x0).unwrap()
        });
        let h1 = sc.spawn(move || {
            let mut buf = vec![0u8; 1 << 22];
            let link = Recorder {
                inner: p1d,
                received: rec,
            };
            let (client, session) =
                DealerClient::connect_with(Prefetch::new(link, &mut buf), PartyId::P1, true)
                    .unwrap();
            let mut s = Session::establish(
                PartyId::P1,
                Encoding::default(),
                p1p,
                client,
                HostKernel::detect(),
                session,
                None,
            )
            .unwrap();
            program(&mut s, &x).unwrap()
        });
        let (a, b) = (h0.join().unwrap(), h1.join().unwrap());
        assert_eq!(a, b);
        for (v, g) in dec(&enc(&reals(7, 300, -6.0, 6.0))).iter().zip(&a) {
            assert!((g - gelu::reference_approx(*v)).abs() < 2e-4);
        }
    });
    let bytes = relayed.lock().unwrap();
    assert!(bytes.len() > 10_000);
}

#[test]
fn decrypting_unencrypted_corrections_breaks_the_result() {
    // If D did not encrypt, P1's decryption scrambles every correction: the encryption
    // is really on the wire in the test above.
    let x = reals(8, 64, -3.0, 3.0);
    let (d0, p0d) = channel_pair();
    let (d1, p1d) = channel_pair();
    let (p0p, p1p) = channel_pair();
    std::thread::scope(|sc| {
        sc.spawn(move || {
            let (mut d0, mut d1) = (d0, d1);
            identify_hello(&mut d0).unwrap();
            identify_hello(&mut d1).unwrap();
            let mut svc = DealerService::new(
                Seed::from_u64_for_tests(1),
                Seed::from_u64_for_tests(2),
                9,
                HostKernel::detect(),
            );
            svc.greet(&mut d0, &mut d1).unwrap();
            let _ = svc.serve(&mut d0, &mut d1);
        });
        let x0 = x.clone();
        let h0 = sc.spawn(move || {
            let (client, session) = DealerClient::connect(p0d, PartyId::P0).unwrap();
            let mut s = Session::establish(
                PartyId::P0,
                Encoding::default(),
                p0p,
                client,
                HostKernel::detect(),
                session,
                Some(Seed::from_u64_for_tests(3)),
            )
            .unwrap();
            program(&mut s, &x0)
        });
        let h1 = sc.spawn(move || {
            let (client, session) = DealerClient::connect_with(p1d, PartyId::P1, true).unwrap();
            let mut s = Session::establish(
                PartyId::P1,
                Encoding::default(),
                p1p,
                client,
                HostKernel::detect(),
                session,
                None,
            )
            .unwrap();
            program(&mut s, &x)
        });
        let got = h0.join().unwrap().unwrap();
        h1.join().unwrap().unwrap();
        let g = dec(&enc(&reals(8, 64, -3.0, 3.0)));
        let bad = g
            .iter()
            .zip(&got)
            .filter(|(v, o)| (*o - gelu::reference_approx(**v)).abs() > 1.0)
            .count();
        assert!(bad > 32, "only {bad} of 64 results were scrambled");
    });
}

//! Shared helpers of the integration tests: run the two parties and the dealer as three
//! threads, over in-memory links or real TCP on 127.0.0.1, with one closure as the
//! program of both parties; a recording transport for transcript tests; references.
#![allow(missing_docs)]

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secformer_core::dealer::server::{identify, DealerService, SessionSummary};
use secformer_core::dealer::DealerClient;
use secformer_core::fxp::Encoding;
use secformer_core::party::PartyId;
use secformer_core::prg::{Prg, Seed};
use secformer_core::session::Session;
use secformer_core::transport::mem::channel_pair;
use secformer_core::transport::{FrameKind, Stats, Transport, TransportError};
use secformer_host::kernel::HostKernel;
use secformer_host::tcp;

/// A boxed transport so one test body runs over every link type.
pub type DynTransport = Box<dyn Transport + Send>;
/// The session type of the test harness.
pub type TestSession = Session<DynTransport, DealerClient<DynTransport>, HostKernel>;

/// Which links the three endpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// In-memory duplex channels between threads.
    Mem,
    /// TCP on 127.0.0.1.
    Tcp,
}

/// Both links of the in-memory and TCP harness.
pub const NETS: [Net; 2] = [Net::Mem, Net::Tcp];

/// What the parties returned and what the dealer served.
pub struct Outcome<R> {
    pub p0: secformer_core::Result<R>,
    pub p1: secformer_core::Result<R>,
    pub dealer: secformer_core::Result<SessionSummary>,
}

impl<R> Outcome<R> {
    /// Both parties' results, panicking with both errors if either failed.
    pub fn unwrap(self) -> (R, R) {
        match (self.p0, self.p1) {
            (Ok(a), Ok(b)) => {
                if let Err(e) = self.dealer {
                    panic!("dealer failed: {e}");
                }
                (a, b)
            }
            (a, b) => panic!(
                "party failed: P0: {:?}, P1: {:?}",
                a.err().map(|e| e.to_string()),
                b.err().map(|e| e.to_string())
            ),
        }
    }
}

/// Three duplex links of `net` (each as its two ends).
pub fn links(net: Net) -> [(DynTransport, DynTransport); 3] {
    match net {
        Net::Mem => {
            let mk = || {
                let (a, b) = channel_pair();
                (Box::new(a) as DynTransport, Box::new(b) as DynTransport)
            };
            [mk(), mk(), mk()]
        }
        Net::Tcp => {
            let mk = || {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap().to_string();
                let h = std::thread::spawn(move || {
                    tcp::accept(&l, Duration::from_secs(10), Duration::from_secs(60)).unwrap()
                });
                let c =
                    tcp::connect(&addr, Duration::from_secs(10), Duration::from_secs(60)).unwrap();
                let a = h.join().unwrap();
                (Box::new(a) as DynTransport, Box::new(c) as DynTransport)
            };
            [mk(), mk(), mk()]
        }
    }
}

/// Runs `f` as both parties' program with a dealer thread; returns everything.
pub fn run<R: Send>(
    net: Net,
    f: impl Fn(&mut TestSession) -> secformer_core::Result<R> + Sync,
) -> Outcome<R> {
    run_with(net, |s| f(s), |s| f(s))
}

/// Runs `f0` as P0 and `f1` as P1 with a dealer thread.
pub fn run_with<R: Send>(
    net: Net,
    f0: impl FnOnce(&mut TestSession) -> secformer_core::Result<R> + Send,
    f1: impl FnOnce(&mut TestSession) -> secformer_core::Result<R> + Send,
) -> Outcome<R> {
    run_full(net, 0, None, f0, f1)
}

/// The payload bytes each party received from the other, recorded.
pub type Transcripts = [Arc<Mutex<Vec<u8>>>; 2];

/// Runs `f` as both parties with seeds derived from `seed`, recording what each party
/// receives from the other.
pub fn run_recorded<R: Send>(
    net: Net,
    seed: u64,
    f: impl Fn(&mut TestSession) -> secformer_core::Result<R> + Sync,
) -> (Outcome<R>, Transcripts) {
    let rec: Transcripts = [Arc::default(), Arc::default()];
    let out = run_full(net, seed, Some(rec.clone()), |s| f(s), |s| f(s));
    (out, rec)
}

/// The general harness: `seed` varies every seed (dealer and pair); `rec` records.
pub fn run_full<R: Send>(
    net: Net,
    seed: u64,
    rec: Option<Transcripts>,
    f0: impl FnOnce(&mut TestSession) -> secformer_core::Result<R> + Send,
    f1: impl FnOnce(&mut TestSession) -> secformer_core::Result<R> + Send,
) -> Outcome<R> {
    let [(d0, p0d), (d1, p1d), (p0p, p1p)] = links(net);
    let wrap = |l: DynTransport, i: usize| -> DynTransport {
        match &rec {
            Some(r) => Box::new(Recorder {
                inner: l,
                received: r[i].clone(),
            }),
            None => l,
        }
    };
    let (p0p, p1p) = (wrap(p0p, 0), wrap(p1p, 1));
    let (rec0, rec1) = (rec.clone(), rec);
    std::thread::scope(|sc| {
        let dealer = sc.spawn(move || {
            let (mut d0, mut d1) = (d0, d1);
            let a = identify(&mut d0)?;
            let b = identify(&mut d1)?;
            assert_eq!((a, b), (PartyId::P0, PartyId::P1));
            let mut svc = DealerService::new(
                Seed::from_u64_for_tests(100 + 3 * seed),
                Seed::from_u64_for_tests(101 + 3 * seed),
                42,
                HostKernel::detect(),
            );
            svc.greet(&mut d0, &mut d1)?;
            svc.serve(&mut d0, &mut d1)
        });
        let party = |id: PartyId,
                     dl: DynTransport,
                     pl: DynTransport|
         -> secformer_core::Result<TestSession> {
            let (client, session) = DealerClient::connect(dl, id)?;
            let pair = (id == PartyId::P0).then(|| Seed::from_u64_for_tests(102 + 3 * seed));
            Session::establish(
                id,
                Encoding::default(),
                pl,
                client,
                HostKernel::detect(),
                session,
                pair,
            )
        };
        let h0 = sc.spawn(move || {
            let mut s = party(PartyId::P0, p0d, p0p)?;
            if let Some(r) = &rec0 {
                r[0].lock().unwrap().clear(); // the handshake is not an opening
            }
            let r = f0(&mut s);
            match &r {
                Ok(_) => s.finish()?,
                Err(e) => s.abort(&e.to_string()),
            }
            r
        });
        let h1 = sc.spawn(move || {
            let mut s = party(PartyId::P1, p1d, p1p)?;
            if let Some(r) = &rec1 {
                r[1].lock().unwrap().clear(); // the handshake is not an opening
            }
            let r = f1(&mut s);
            match &r {
                Ok(_) => s.finish()?,
                Err(e) => s.abort(&e.to_string()),
            }
            r
        });
        let p0 = h0.join().expect("P0 panicked");
        let p1 = h1.join().expect("P1 panicked");
        let dealer = dealer.join().expect("dealer panicked");
        Outcome { p0, p1, dealer }
    })
}

/// Deterministic uniform reals in `[lo, hi)`.
pub fn reals(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut prg = Prg::new(&Seed::from_u64_for_tests(seed), 3);
    (0..n)
        .map(|_| lo + (hi - lo) * ((prg.next_u64() >> 11) as f64 / (1u64 << 53) as f64))
        .collect()
}

/// Fixed-point encodes (panics on values that do not fit: test inputs are chosen to fit).
pub fn enc(xs: &[f64]) -> Vec<u64> {
    let e = Encoding::default();
    xs.iter().map(|x| e.encode(*x).unwrap()).collect()
}

/// Decodes fixed point.
pub fn dec(xs: &[u64]) -> Vec<f64> {
    let e = Encoding::default();
    xs.iter().map(|x| e.decode(*x)).collect()
}

/// Max |a - b|.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// One LSB of the default encoding.
pub const LSB: f64 = 1.0 / 65536.0;

/// A transport wrapper that records every payload byte received (for transcript tests).
pub struct Recorder<T> {
    pub inner: T,
    pub received: Arc<Mutex<Vec<u8>>>,
}

impl<T: Transport> Transport for Recorder<T> {
    fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), TransportError> {
        self.inner.send_frame(kind, payload)
    }
    fn recv_frame(
        &mut self,
        kind: FrameKind,
        buf: &mut [u8],
        exact: bool,
    ) -> Result<usize, TransportError> {
        let n = self.inner.recv_frame(kind, buf, exact)?;
        self.received.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn exchange_frame(
        &mut self,
        kind: FrameKind,
        mine: &[u8],
        theirs: &mut [u8],
    ) -> Result<(), TransportError> {
        self.inner.exchange_frame(kind, mine, theirs)?;
        self.received.lock().unwrap().extend_from_slice(theirs);
        Ok(())
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
    fn stats_mut(&mut self) -> &mut Stats {
        self.inner.stats_mut()
    }
}

//! A session's pool of preprocessed passes.
//!
//! Orders ([`Order`]: `count` passes of one preprocessing id for one pass shape) are
//! queued; a background preparer thread ([`Pool::run_preparer`]) draws them one pass at a
//! time **while the session is idle** (it waits while an online pass runs, so the two never
//! compete for the CPU) and files each finished pass as [`Ready`]: in memory while the
//! pool's memory budget allows, otherwise in a preprocessing file in the spill directory.
//! The online phase takes a pass by `(preprocessing id, index)` ([`Pool::take`]), exactly
//! once: a consumed pass is recorded and a second request for it is refused. Memory
//! buffers of consumed passes are recycled for the next ones.
//!
//! The pool logs its state (orders, passes ready in memory and on disk, bytes) with
//! `tracing` at `info` level.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use secformer_core::dealer::material::{write_header, Consumed, Header, PassWriter};

use super::plan::Plan;
use super::PassShape;

/// Passes to draw: `count` passes from index `first` of preprocessing `prep`.
#[derive(Debug, Clone)]
pub struct Order {
    /// The preprocessing id (issued by D).
    pub prep: u64,
    /// The pass shape.
    pub shape: PassShape,
    /// The pass's plan (as recorded by this party).
    pub plan: Arc<Plan>,
    /// First index.
    pub first: u32,
    /// Passes.
    pub count: u32,
}

/// Where a ready pass is stored.
#[derive(Debug)]
pub enum Store {
    /// A preprocessing stream in memory (header and one pass).
    Memory(Vec<u8>),
    /// A preprocessing file (header and one pass), deleted once consumed.
    File(PathBuf),
}

/// A prepared pass.
#[derive(Debug)]
pub struct Ready {
    /// Preprocessing id.
    pub prep: u64,
    /// Pass index.
    pub index: u32,
    /// Its shape.
    pub shape: PassShape,
    /// Its bytes.
    pub store: Store,
    /// Seconds it took to draw (the offline work of one inference at this party).
    pub seconds: f64,
    /// Bytes this party received from D for it (P1's corrections; 0 at P0).
    pub dealer_bytes: u64,
}

impl Ready {
    /// A reader of the stored preprocessing stream (header first).
    pub fn reader(&self) -> Result<PassSource<'_>> {
        Ok(match &self.store {
            Store::Memory(v) => PassSource::Memory(v.as_slice()),
            Store::File(p) => PassSource::File(embedded_io_adapters::std::FromStd::new(
                BufReader::with_capacity(
                    1 << 22,
                    File::open(p)
                        .with_context(|| format!("opening preprocessing file {}", p.display()))?,
                ),
            )),
        })
    }
}

/// A ready pass's bytes as an `embedded-io` reader.
pub enum PassSource<'a> {
    /// In memory.
    Memory(&'a [u8]),
    /// In a file.
    File(embedded_io_adapters::std::FromStd<BufReader<File>>),
}

impl embedded_io::ErrorType for PassSource<'_> {
    type Error = std::io::Error;
}

impl embedded_io::Read for PassSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            PassSource::Memory(s) => {
                let n = s.len().min(buf.len());
                buf[..n].copy_from_slice(&s[..n]);
                *s = &s[n..];
                Ok(n)
            }
            PassSource::File(f) => f.read(buf),
        }
    }
}

/// Where a pass is being written.
pub enum Sink {
    /// Into memory.
    Memory(Vec<u8>),
    /// Into a file.
    File(embedded_io_adapters::std::FromStd<BufWriter<File>>, PathBuf),
}

impl embedded_io::ErrorType for Sink {
    type Error = std::io::Error;
}

impl embedded_io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Memory(v) => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
            Sink::File(f, _) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(_) => Ok(()),
            Sink::File(f, _) => f.flush(),
        }
    }
}

/// Limits of a pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Bytes of ready passes kept in memory; passes beyond go to files.
    pub memory_budget: u64,
    /// Where spilled passes go.
    pub spill_dir: PathBuf,
    /// A label for logs (the session).
    pub label: String,
}

#[derive(Default)]
struct State {
    orders: VecDeque<Order>,
    ready: Vec<Ready>,
    memory: u64,
    busy: bool,
    paused: bool,
    stopping: bool,
    drawing: bool,
    failed: Option<String>,
    consumed: Consumed,
    free: Vec<Vec<u8>>,
    drawn: u64,
}

/// A session's pool (see the module docs).
pub struct Pool {
    state: Mutex<State>,
    changed: Condvar,
    cfg: PoolConfig,
}

/// What the pool holds right now.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStatus {
    /// Passes ordered but not drawn yet.
    pub pending: u64,
    /// Ready passes in memory.
    pub in_memory: usize,
    /// Ready passes in files.
    pub on_disk: usize,
    /// Bytes of ready passes in memory.
    pub memory_bytes: u64,
    /// Passes drawn so far.
    pub drawn: u64,
    /// Passes consumed so far.
    pub consumed: usize,
}

impl Pool {
    /// An empty pool.
    pub fn new(cfg: PoolConfig) -> Arc<Self> {
        Arc::new(Pool {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            cfg,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an order.
    pub fn order(&self, o: Order) {
        let mut st = self.lock();
        tracing::info!(
            pool = %self.cfg.label,
            prep = format_args!("{:016x}", o.prep),
            passes = o.count,
            batch = o.shape.batch,
            bucket = o.shape.bucket,
            "preprocessing ordered"
        );
        st.orders.push_back(o);
        self.changed.notify_all();
    }

    /// The pool's state.
    pub fn status(&self) -> PoolStatus {
        let st = self.lock();
        PoolStatus {
            pending: st.orders.iter().map(|o| o.count as u64).sum::<u64>() + st.drawing as u64,
            in_memory: st
                .ready
                .iter()
                .filter(|r| matches!(r.store, Store::Memory(_)))
                .count(),
            on_disk: st
                .ready
                .iter()
                .filter(|r| matches!(r.store, Store::File(_)))
                .count(),
            memory_bytes: st.memory,
            drawn: st.drawn,
            consumed: st.consumed.len(),
        }
    }

    /// Ready passes of `shape`.
    pub fn ready_count(&self, shape: &PassShape) -> usize {
        self.lock()
            .ready
            .iter()
            .filter(|r| r.shape == *shape)
            .count()
    }

    /// Passes of `shape` ready or still to draw.
    pub fn available(&self, shape: &PassShape) -> u64 {
        let st = self.lock();
        st.ready.iter().filter(|r| r.shape == *shape).count() as u64
            + st.orders
                .iter()
                .filter(|o| o.shape == *shape)
                .map(|o| o.count as u64)
                .sum::<u64>()
    }

    /// Stops drawing (after the pass being drawn) until [`Pool::resume`].
    pub fn pause(&self) {
        self.lock().paused = true;
    }

    /// Resumes drawing.
    pub fn resume(&self) {
        self.lock().paused = false;
        self.changed.notify_all();
    }

    /// Waits until nothing is left to draw (or the preparer failed).
    pub fn wait_idle(&self) -> Result<()> {
        let mut st = self.lock();
        loop {
            if let Some(e) = &st.failed {
                bail!("preprocessing failed: {e}");
            }
            if st.orders.is_empty() && !st.drawing {
                return Ok(());
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Takes pass `index` of `prep`, waiting up to `timeout` for it to be drawn; marks the
    /// session busy (the preparer waits) until [`Pool::done`]. A pass consumed before is
    /// refused.
    pub fn take(&self, prep: u64, index: u32, timeout: Duration) -> Result<Ready> {
        let start = Instant::now();
        let mut st = self.lock();
        if st.consumed.is_used(prep, index) {
            bail!("pass {index} of preprocessing {prep:016x} was already used (used once only)");
        }
        loop {
            if let Some(i) = st
                .ready
                .iter()
                .position(|r| r.prep == prep && r.index == index)
            {
                st.consumed.consume(prep, index)?;
                let r = st.ready.swap_remove(i);
                if let Store::Memory(v) = &r.store {
                    st.memory -= v.len() as u64;
                }
                st.busy = true;
                return Ok(r);
            }
            if let Some(e) = &st.failed {
                bail!("preprocessing failed: {e}");
            }
            let pending = st.drawing
                || st
                    .orders
                    .iter()
                    .any(|o| o.prep == prep && (o.first..o.first + o.count).contains(&index));
            if !pending {
                bail!("preprocessing {prep:016x} pass {index} was never ordered here");
            }
            let left = timeout
                .checked_sub(start.elapsed())
                .ok_or_else(|| anyhow!("timed out waiting for pass {index} to be prepared"))?;
            // The preparer works only while idle: let it run while we wait.
            st.busy = false;
            self.changed.notify_all();
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Ends the online use of a pass: recycles its memory and lets the preparer go on.
    pub fn done(&self, r: Ready) {
        let mut st = self.lock();
        match r.store {
            Store::Memory(mut v) => {
                v.clear();
                if st.free.len() < 2 {
                    st.free.push(v);
                }
            }
            Store::File(p) => {
                let _ = std::fs::remove_file(p);
            }
        }
        st.busy = false;
        self.changed.notify_all();
    }

    /// Marks the session busy (an online pass runs) or idle.
    pub fn set_busy(&self, busy: bool) {
        self.lock().busy = busy;
        self.changed.notify_all();
    }

    /// Stops the preparer (after its current pass) and wakes every waiter.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_all();
    }

    /// Records that pass `index` of `prep` was used elsewhere (resumed sessions).
    pub fn mark_consumed(&self, prep: u64, index: u32) -> Result<()> {
        Ok(self.lock().consumed.consume(prep, index)?)
    }

    /// The passes used so far.
    pub fn consumed(&self) -> Consumed {
        self.lock().consumed.clone()
    }

    /// Replaces the record of used passes (a resumed session).
    pub fn set_consumed(&self, c: Consumed) {
        self.lock().consumed = c;
    }

    /// Removes and returns every ready pass (to keep them elsewhere).
    pub fn drain_ready(&self) -> Vec<Ready> {
        let mut st = self.lock();
        st.memory = 0;
        std::mem::take(&mut st.ready)
    }

    /// Adds a pass prepared earlier (a resumed session's file).
    pub fn add_ready(&self, r: Ready) {
        let mut st = self.lock();
        if let Store::Memory(v) = &r.store {
            st.memory += v.len() as u64;
        }
        st.ready.push(r);
        self.changed.notify_all();
    }

    /// The next pass to draw, waiting while the session is busy or paused.
    fn next_job(&self) -> Option<(Order, u32)> {
        let mut st = self.lock();
        loop {
            if st.stopping {
                return None;
            }
            if !st.busy && !st.paused {
                if let Some(o) = st.orders.front_mut() {
                    let index = o.first;
                    let order = o.clone();
                    o.first += 1;
                    o.count -= 1;
                    if o.count == 0 {
                        st.orders.pop_front();
                    }
                    st.drawing = true;
                    return Some((order, index));
                }
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn sink_for(&self, bytes: u64, prep: u64, index: u32) -> Result<Sink> {
        let mut st = self.lock();
        if st.memory + bytes <= self.cfg.memory_budget {
            let mut v = st.free.pop().unwrap_or_default();
            v.clear();
            v.reserve(bytes as usize + 1024);
            return Ok(Sink::Memory(v));
        }
        drop(st);
        std::fs::create_dir_all(&self.cfg.spill_dir)
            .with_context(|| format!("creating {}", self.cfg.spill_dir.display()))?;
        let path = self
            .cfg
            .spill_dir
            .join(format!("{}-{prep:016x}-{index}.sfpp", self.cfg.label));
        let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Sink::File(
            embedded_io_adapters::std::FromStd::new(BufWriter::with_capacity(1 << 22, f)),
            path,
        ))
    }

    /// Runs the preparer until [`Pool::stop`]: `draw(order, index, writer)` draws one
    /// pass after the header this pool writes and returns the bytes it received from D. A failure is recorded (waiters see it)
    /// and ends the preparer.
    pub fn run_preparer<F>(&self, mut header: impl FnMut(&Order, u32) -> Header, mut draw: F)
    where
        F: FnMut(&Order, u32, &mut PassWriter<Sink>) -> Result<u64>,
    {
        while let Some((order, index)) = self.next_job() {
            let t = Instant::now();
            let r = self.draw_one(&order, index, &mut header, &mut draw);
            let mut st = self.lock();
            st.drawing = false;
            match r {
                Ok((store, dealer_bytes)) => {
                    st.drawn += 1;
                    if let Store::Memory(v) = &store {
                        st.memory += v.len() as u64;
                    }
                    let where_ = match &store {
                        Store::Memory(v) => format!("in memory ({} MB)", v.len() >> 20),
                        Store::File(p) => format!("on disk at {}", p.display()),
                    };
                    st.ready.push(Ready {
                        prep: order.prep,
                        index,
                        shape: order.shape,
                        store,
                        seconds: t.elapsed().as_secs_f64(),
                        dealer_bytes,
                    });
                    tracing::info!(
                        pool = %self.cfg.label,
                        pass = index,
                        seconds = format_args!("{:.2}", t.elapsed().as_secs_f64()),
                        ready = st.ready.len(),
                        memory_mb = st.memory >> 20,
                        "pass prepared {where_}"
                    );
                }
                Err(e) => {
                    tracing::warn!(pool = %self.cfg.label, "preprocessing failed: {e:#}");
                    st.failed = Some(format!("{e:#}"));
                    self.changed.notify_all();
                    return;
                }
            }
            self.changed.notify_all();
        }
    }

    fn draw_one<F>(
        &self,
        order: &Order,
        index: u32,
        header: &mut impl FnMut(&Order, u32) -> Header,
        draw: &mut F,
    ) -> Result<(Store, u64)>
    where
        F: FnMut(&Order, u32, &mut PassWriter<Sink>) -> Result<u64>,
    {
        let mut h = header(order, index);
        let mut sink = self.sink_for(h.pass_bytes + 1024, order.prep, index)?;
        // Files get checksums (corruption at rest); memory needs none.
        h.checksums = matches!(sink, Sink::File(..));
        write_header(&mut sink, &h)?;
        let mut w = PassWriter::new(sink, h.checksums);
        let dealer_bytes = draw(order, index, &mut w)?;
        let store = match w.into_inner()? {
            Sink::Memory(v) => Store::Memory(v),
            Sink::File(_, p) => Store::File(p),
        };
        Ok((store, dealer_bytes))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Unused passes spilled to files go with the session.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for r in &st.ready {
            if let Store::File(p) = &r.store {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

//! One coordinated progress display on stderr (`indicatif::MultiProgress`): the steps of a
//! command (loading, setup) and its texts, "text i/N, layer k/L" with an ETA.
//!
//! Every bar of a command belongs to one [`Display`], so bars never draw over each other,
//! and notes printed through it appear above the bars instead of through them. When
//! stderr is no terminal the bars are hidden and only the notes are printed (logs and CI
//! see plain lines, not escape codes).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress display of one command.
#[derive(Clone)]
pub struct Display {
    multi: MultiProgress,
    tty: bool,
}

impl Default for Display {
    fn default() -> Self {
        Self::new()
    }
}

impl Display {
    /// A display on stderr, drawn only when stderr is a terminal.
    pub fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        let target = if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Display {
            multi: MultiProgress::with_draw_target(target),
            tty,
        }
    }

    /// Whether bars are drawn (stderr is a terminal).
    pub fn is_drawn(&self) -> bool {
        self.tty
    }

    /// A bar for one step of `len` units (a spinner with a message while `len` is 1).
    pub fn step(&self, len: u64, msg: &str) -> ProgressBar {
        let pb = self.multi.add(ProgressBar::new(len));
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg:<24} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        pb
    }

    /// The bar of `texts` texts through a model of `layers` layers.
    pub fn texts(&self, texts: usize, layers: usize) -> TextProgress {
        let layers = layers.max(1);
        let pb = self
            .multi
            .add(ProgressBar::new((texts.max(1) * layers) as u64));
        pb.set_style(
            ProgressStyle::with_template("{msg:<28} [{bar:30}] {percent:>3}% ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        TextProgress {
            pb,
            texts,
            layers,
            state: Arc::new(PassState::default()),
        }
    }

    /// Runs `f` (which writes results to stdout or a file) with the bars cleared, so
    /// that lines and bars do not overwrite each other on a terminal.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Prints `line` on stderr above the bars (or plainly when they are hidden).
    pub fn note(&self, line: &str) {
        self.multi.suspend(|| eprintln!("{line}"));
    }
}

/// Where the current pass is: its first text and its texts (shared with the layer
/// observer, which runs on the pass's thread).
#[derive(Default)]
struct PassState {
    first: AtomicUsize,
    count: AtomicUsize,
}

/// Progress through texts and layers: the bar's unit is one layer of one text, so the ETA
/// follows the rate of layers whatever the batch.
#[derive(Clone)]
pub struct TextProgress {
    pb: ProgressBar,
    texts: usize,
    layers: usize,
    state: Arc<PassState>,
}

impl TextProgress {
    /// A pass over texts `first..first + count` (0-based) starts.
    pub fn start_pass(&self, first: usize, count: usize) {
        self.state.first.store(first, Ordering::Relaxed);
        self.state.count.store(count, Ordering::Relaxed);
        self.show(0);
        self.pb.set_position((first * self.layers) as u64);
    }

    /// Layer `done` (1-based) of the current pass has finished.
    pub fn layer(&self, done: usize) {
        let first = self.state.first.load(Ordering::Relaxed);
        let count = self.state.count.load(Ordering::Relaxed).max(1);
        self.show(done);
        self.pb
            .set_position((first * self.layers + done.min(self.layers) * count) as u64);
    }

    /// The observer to give [`crate::bert::observe::watch_layers`].
    pub fn observer(&self) -> impl FnMut(usize, usize) + 'static {
        let me = self.clone();
        move |done, _| me.layer(done)
    }

    fn show(&self, layer: usize) {
        let first = self.state.first.load(Ordering::Relaxed);
        let count = self.state.count.load(Ordering::Relaxed).max(1);
        let texts = if count == 1 {
            format!("text {}/{}", first + 1, self.texts)
        } else {
            format!("texts {}-{}/{}", first + 1, first + count, self.texts)
        };
        self.pb
            .set_message(format!("{texts}, layer {layer}/{}", self.layers));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

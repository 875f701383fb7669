//! Progress of the forward pass as it runs: a per-thread observer of finished encoder
//! layers.
//!
//! The layer loop sits below the session drivers ([`super::p1::P1Session`], the service
//! client, the local runner), which run P1's pass on the caller's thread. A scoped
//! per-thread observer lets a front end (the CLI's progress display, a library user) watch
//! the layers of the passes it starts without a callback threaded through every driver's
//! API; the threads of P0 and D, and dry runs of the pass ([`super::plan`]), have none.

use std::cell::RefCell;

type Observer = Box<dyn FnMut(usize, usize)>;

thread_local! {
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
}

/// Runs `body` with `on_layer(done, layers)` called on this thread after each encoder
/// layer of every forward pass `body` runs here; the previous observer (if any) is back
/// afterwards, also when `body` panics.
pub fn watch_layers<R>(
    on_layer: impl FnMut(usize, usize) + 'static,
    body: impl FnOnce() -> R,
) -> R {
    let _restore = Swap::install(Some(Box::new(on_layer)));
    body()
}

/// Runs `body` with no observer (a dry run of the pass is no progress).
pub fn unobserved<R>(body: impl FnOnce() -> R) -> R {
    let _restore = Swap::install(None);
    body()
}

/// Reports that layer `done` of `layers` (1-based) has finished on this thread.
pub(crate) fn layer_done(done: usize, layers: usize) {
    OBSERVER.with(|o| {
        if let Some(f) = o.borrow_mut().as_mut() {
            f(done, layers);
        }
    });
}

/// Puts the previous observer back when dropped.
struct Swap(Option<Observer>);

impl Swap {
    fn install(new: Option<Observer>) -> Swap {
        Swap(OBSERVER.with(|o| o.replace(new)))
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        let prev = self.0.take();
        OBSERVER.with(|o| *o.borrow_mut() = prev);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[test]
    fn scoped_and_silenced() {
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        watch_layers(
            move |d, n| s.set(s.get() + d * 10 + n),
            || {
                layer_done(1, 2);
                unobserved(|| layer_done(2, 2));
            },
        );
        layer_done(2, 2);
        assert_eq!(seen.get(), 12);
    }
}

//! One logging shim for the core: routes to `defmt` with the `defmt` feature, to nothing
//! otherwise. Never log secrets: shares, seeds and opened-but-masked values stay out.

/// Logs a debug message (to `defmt` when that feature is on; a no-op otherwise).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        { ::defmt::debug!($($arg)*); }
    }};
}

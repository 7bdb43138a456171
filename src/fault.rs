//! Fault injection for `tests/panic.rs`: named places where a test can make the library
//! panic, to prove that every C entry point turns a panic into `SPHANA_LLM_ERR_INTERNAL` and
//! that the process goes on. The core (`engine`) and the C shell (`ffi`) both call
//! [`fail_point`]; it compiles to nothing unless the `test-hooks` cargo feature (off by
//! default, never in a shipped build) is enabled.

/// A place where `tests/panic.rs` can inject a panic; nothing without `test-hooks`.
#[inline(always)]
pub(crate) fn fail_point(_point: &'static str) {
    #[cfg(feature = "test-hooks")]
    test_hooks::hit(_point);
}

/// Fault injection for `tests/panic.rs`; exists only with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod test_hooks {
    use std::cell::Cell;

    thread_local! {
        static ARMED: Cell<Option<&'static str>> = const { Cell::new(None) };
    }

    /// The next time this thread passes the fail point `point`, it panics (once).
    /// Points: "entry" (every C entry point, inside its panic guard), "session_run" (a
    /// generation step holding an ONNX Runtime session), "on_text" (delivering generated
    /// text), "stream_push" (a streaming-decoder step holding the decoder's lock).
    pub fn panic_at(point: &'static str) {
        ARMED.with(|a| a.set(Some(point)));
    }

    /// Disarms this thread's fail point.
    pub fn disarm() {
        ARMED.with(|a| a.set(None));
    }

    pub(crate) fn hit(point: &'static str) {
        if ARMED.with(|a| a.get()) == Some(point) {
            disarm();
            panic!("injected panic at {point}");
        }
    }
}

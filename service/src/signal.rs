//! SIGTERM/SIGINT handling without the libc crate.
//!
//! As PID 1 the kernel drops any signal whose disposition is the default, so
//! without an explicit handler `docker stop` would wait for its SIGKILL timeout.
//! The handler only sets a flag; the accept loop polls it.

use std::ffi::c_int;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

// Same numbers on Linux (every architecture) and macOS.
const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
/// `SIG_ERR` is `(sighandler_t)-1`.
const SIG_ERR: usize = usize::MAX;

static SHUTDOWN: AtomicBool = AtomicBool::new(false);

extern "C" {
    // `sighandler_t signal(int, sighandler_t)` from the C library (glibc, musl,
    // macOS). A `sighandler_t` is a function pointer, returned here as `usize`
    // because we only compare it with SIG_ERR. All three give `signal` BSD
    // semantics (the handler stays installed), which is all we need.
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
}

extern "C" fn on_signal(_signum: c_int) {
    // Nothing but a lock-free atomic store: it is async-signal-safe, whereas
    // allocating, locking or printing here could deadlock.
    SHUTDOWN.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to the shutdown flag.
pub fn install() -> io::Result<()> {
    for signum in [SIGINT, SIGTERM] {
        // SAFETY: `signal` has exactly the C signature declared above, the
        // signal numbers are valid, and `on_signal` is async-signal-safe.
        let previous = unsafe { signal(signum, on_signal) };
        if previous == SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True once SIGINT or SIGTERM has arrived.
pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::SeqCst)
}

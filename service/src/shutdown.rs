//! SIGTERM (`docker stop`, Kubernetes) and SIGINT (Ctrl-C) as a future.
//!
//! As PID 1 the kernel drops any signal whose disposition is the default, so
//! without handlers `docker stop` would wait for its SIGKILL timeout. tokio
//! installs them (async-signal-safe, via signal-hook-registry) the moment a
//! stream is created, which is why `Signals::install` runs before the bind.

use std::io;

#[cfg(unix)]
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    /// Starts listening; must be called inside the runtime.
    pub fn install() -> io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next signal and names it for the log. Callable again:
    /// a second signal during the drain means "stop now".
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

// The images are Linux; developers run Linux or macOS. Say so rather than
// fail on a missing type.
#[cfg(not(unix))]
compile_error!("beacon handles Unix signals: it builds for Unix targets only");

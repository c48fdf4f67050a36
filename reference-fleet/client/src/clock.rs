//! The one clock of the reference implementation.
//!
//! Every step that needs the time takes it as an argument (`bkv-protocol` reads no
//! clock); the services and the client read it from a [`Clock`] they are given, so a test
//! can fix it ([`FixedClock`]) and the host's clock is read in exactly one place
//! ([`SystemClock`]). spec/conventions.md §5: times are POSIX seconds; the node-to-node
//! RPC window of spec/fleet-replication.md §4 uses milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of the current time.
pub trait Clock: Send + Sync + core::fmt::Debug + 'static {
    /// Milliseconds since the POSIX epoch.
    fn now_ms(&self) -> u64;

    /// Seconds since the POSIX epoch.
    fn now(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// A clock shared by the parts of one service.
pub type SharedClock = Arc<dyn Clock>;

/// The host's wall clock: the only place the reference reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// A clock that says what it is set to (tests).
#[derive(Debug, Default)]
pub struct FixedClock(AtomicU64);

impl FixedClock {
    /// A clock standing at `secs` POSIX seconds.
    pub fn at(secs: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(secs.saturating_mul(1000))))
    }

    /// Set the clock to `secs` POSIX seconds.
    pub fn set(&self, secs: u64) {
        self.0.store(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The host's clock in seconds, for code that has no clock passed to it yet (the CLI's
/// entry points, which then pass it down).
pub fn system_now() -> u64 {
    SystemClock.now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_says_what_it_is_set_to() {
        let c = FixedClock::at(1_800_000_000);
        assert_eq!(c.now(), 1_800_000_000);
        assert_eq!(c.now_ms(), 1_800_000_000_000);
        c.set(5);
        assert_eq!(c.now(), 5);
    }

    #[test]
    fn system_clock_is_past_2025() {
        assert!(SystemClock.now() > 1_735_689_600);
    }
}

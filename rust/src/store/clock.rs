//! The store's one clock, read at the binding edge and passed into every command as `now_ms`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::error::{StoreError, StoreResult};

/// Milliseconds since the store was created: monotonic, or moved by hand in tests.
#[derive(Debug)]
pub enum Clock {
    /// Monotonic time since creation; immune to wall-clock jumps.
    System(Instant),
    /// Only `advance` moves it, so tests drive expiry without sleeping.
    Manual(AtomicU64),
}

impl Clock {
    /// A monotonic clock starting at 0 now.
    #[must_use]
    pub fn system() -> Self {
        Self::System(Instant::now())
    }

    /// A manual clock starting at 0.
    #[must_use]
    pub fn manual() -> Self {
        Self::Manual(AtomicU64::new(0))
    }

    /// True for a manual clock.
    #[must_use]
    pub fn is_manual(&self) -> bool {
        matches!(self, Self::Manual(_))
    }

    /// Current time in ms.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        match self {
            Self::System(start) => start.elapsed().as_millis() as u64,
            Self::Manual(now) => now.load(Ordering::Acquire),
        }
    }

    /// Move a manual clock forward by `ms`.
    pub fn advance(&self, ms: u64) -> StoreResult<()> {
        match self {
            Self::System(_) => Err(StoreError::InvalidArgument(
                "advance_clock needs a store created with manual_clock=True".to_owned(),
            )),
            Self::Manual(now) => {
                // fetch_update keeps the clock from wrapping on absurd advances.
                let _ = now.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    Some(t.saturating_add(ms))
                });
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_by_hand() {
        let clock = Clock::manual();
        assert_eq!(clock.now_ms(), 0);
        clock.advance(1500).unwrap();
        assert_eq!(clock.now_ms(), 1500);
        clock.advance(u64::MAX).unwrap();
        assert_eq!(clock.now_ms(), u64::MAX);
    }

    #[test]
    fn system_clock_refuses_advance() {
        let clock = Clock::system();
        assert!(clock.advance(1).is_err());
        assert!(clock.now_ms() < 1000);
    }
}

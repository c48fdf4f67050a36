//! spec/node-api.md §6: the node's rate limits, token buckets keyed by client address, by
//! record id, and one for the node's attempts whatever their id. A bucket holds up to
//! `burst` tokens and gains `per_second` tokens each second; a request takes one or is
//! refused. The map forgets full buckets when it grows, so an attacker cycling through ids
//! or addresses cannot grow it without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// The most keys a limiter tracks before it forgets the buckets that are full again.
const MAX_KEYS: usize = 100_000;

/// One rate: `burst` at once, `per_second` sustained. `per_second == 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens a fresh bucket holds.
    pub burst: f64,
    /// Tokens added per second.
    pub per_second: f64,
}

impl Rate {
    /// No limit.
    pub const OFF: Rate = Rate { burst: 0.0, per_second: 0.0 };

    fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }
}

/// Token buckets keyed by `K`.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// Buckets of `rate`.
    pub fn new(rate: Rate) -> Self {
        Limiter { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Take a token from `key`'s bucket at `now`; `Err(seconds)` until one is back.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), f64> {
        if self.rate.is_off() {
            return Ok(());
        }
        let Rate { burst, per_second } = self.rate;
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_KEYS && !b.contains_key(key) {
            b.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst);
        }
        let (tokens, at) = b.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / per_second)
        }
    }
}

/// The node's three limits (`[limits]` of `node.toml`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Recovery attempts per record id, on this node.
    pub per_record: Rate,
    /// Recovery attempts on this node, every id alike (spec/node-api.md §6 point 3).
    pub per_node: Rate,
    /// `POST /v1/session` per client address, on this node.
    pub per_client: Rate,
}

impl Default for RateLimits {
    /// As many attempts at once per record as the default guess limit (10), then one more
    /// every 6 s; 500 attempts at once per node and 100 a second; 200 requests at once per
    /// address and 100 a second.
    fn default() -> Self {
        RateLimits {
            per_record: Rate { burst: 10.0, per_second: 1.0 / 6.0 },
            per_node: Rate { burst: 500.0, per_second: 100.0 },
            per_client: Rate { burst: 200.0, per_second: 100.0 },
        }
    }
}

impl RateLimits {
    /// No limits (benchmarks).
    pub const OFF: RateLimits =
        RateLimits { per_record: Rate::OFF, per_node: Rate::OFF, per_client: Rate::OFF };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_its_rate() {
        let l = Limiter::new(Rate { burst: 3.0, per_second: 2.0 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take(&"r", t0), Ok(()));
        }
        let wait = l.take(&"r", t0).unwrap_err();
        assert!((wait - 0.5).abs() < 1e-9, "{wait}");
        assert_eq!(l.take(&"other", t0), Ok(()), "buckets are per key");
        assert_eq!(l.take(&"r", t0 + Duration::from_millis(500)), Ok(()), "one token back after 0.5 s");
        assert!(l.take(&"r", t0 + Duration::from_millis(500)).is_err());
        for i in 0..3 {
            assert_eq!(l.take(&"r", t0 + Duration::from_secs(10) + Duration::from_nanos(i)), Ok(()));
        }
        assert!(l.take(&"r", t0 + Duration::from_secs(10)).is_err(), "never more than the burst");
    }

    #[test]
    fn an_off_rate_never_refuses() {
        let l = Limiter::new(Rate::OFF);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| l.take(&1u8, t0).is_ok()));
    }
}

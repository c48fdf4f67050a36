//! Background CPU load for the liveness tests (spec/fleet-replication.md §7): `n` threads
//! that spin until the [`BusyLoad`] is dropped (or a time bound passes), so that the
//! fleet's timers fire late, as on a busy host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Busy threads; dropping it stops and joins them.
pub struct BusyLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl BusyLoad {
    /// `4 ×` the machine's cores, the load the liveness tests use.
    pub fn four_per_core(bound: Duration) -> BusyLoad {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        BusyLoad::start(4 * cores, bound)
    }

    /// `n` spinning threads, each stopping by itself after `bound`.
    pub fn start(n: usize, bound: Duration) -> BusyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let until = Instant::now() + bound;
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        for i in 0..10_000u64 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                        }
                    }
                    x
                })
            })
            .collect();
        BusyLoad { stop, threads }
    }

    /// How many threads spin.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for BusyLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

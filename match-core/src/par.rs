//! Work spread over the machine's cores: an order-preserving parallel map
//! for the compiler's independent, pure jobs (one layer's schedule search,
//! one layer's requantization analysis). Results come back in item order,
//! so what the compiler does with them is as deterministic as a serial
//! loop's; only the wall time changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The worker threads to use: `MATCH_THREADS` when set (1 turns the
/// parallelism off), else the cores available.
pub fn threads() -> usize {
    std::env::var("MATCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// `items.iter().map(f).collect()`, with the items handed out one at a time
/// to [`threads`] workers (jobs of very different sizes balance).
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = threads().min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item was mapped"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_item_order() {
        let items: Vec<u64> = (0..1000).collect();
        // Uneven job sizes, so that workers finish out of order.
        let out = super::map(&items, |&i| (0..(i % 7) * 1000).fold(i, |a, b| a.wrapping_add(b % 3)));
        let serial: Vec<u64> =
            items.iter().map(|&i| (0..(i % 7) * 1000).fold(i, |a, b| a.wrapping_add(b % 3))).collect();
        assert_eq!(out, serial);
        assert!(super::map(&[] as &[u8], |&x| x).is_empty());
    }
}

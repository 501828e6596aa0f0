//! Work spread over the machine's cores, with results in input order, so that a parallel run
//! reports exactly what a sequential one would.
//!
//! Used for the two steps whose items are independent: parsing the files of the tree and
//! checking objects against their schemas. Everything else (kustomize, Flux, cross-resource
//! rules) stays sequential.

use std::sync::atomic::{AtomicUsize, Ordering};

/// At most this many threads, however many cores there are.
const MAX_THREADS: usize = 8;

/// How many threads to use for `items` items: one per core, never more than items.
fn threads(items: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(MAX_THREADS).min(items).max(1)
}

/// `f` applied to every item, with one `init()` state per thread (returned too, to be merged).
/// Items are handed out one at a time, so a few expensive items do not leave a thread idle.
/// The results are in the order of `items`. A panic in `f` propagates to the caller.
pub(crate) fn map_with<T, S, R>(
    items: &[T],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> (Vec<R>, Vec<S>)
where
    T: Sync,
    R: Send,
    S: Send,
{
    let n = threads(items.len());
    if n == 1 {
        let mut state = init();
        let out = items.iter().map(|item| f(&mut state, item)).collect();
        return (out, vec![state]);
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut state = init();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, f(&mut state, item)));
        }
        (done, state)
    };
    let parts: Vec<(Vec<(usize, R)>, S)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..n).map(|_| scope.spawn(work)).collect();
        let mut parts = vec![work()];
        for h in handles {
            match h.join() {
                Ok(part) => parts.push(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let mut states = Vec::with_capacity(parts.len());
    for (done, state) in parts {
        for (i, r) in done {
            slots[i] = Some(r);
        }
        states.push(state);
    }
    // Every index below `items.len()` was taken by exactly one thread.
    (slots.into_iter().flatten().collect(), states)
}

/// `f` applied to every item, in parallel, results in input order.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_with(items, || (), |_, item| f(item)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_and_states_cover_every_item() {
        let items: Vec<usize> = (0..1000).collect();
        let (out, states) = map_with(
            &items,
            || 0usize,
            |count, &i| {
                *count += 1;
                i * 2
            },
        );
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(states.iter().sum::<usize>(), items.len());
        assert!(map(&[] as &[usize], |&i| i).is_empty());
    }
}

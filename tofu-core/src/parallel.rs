//! Work that is the same for every item of a large input (an import's certificates), spread
//! over the machine's cores, with the results in the input's order so that what follows
//! (the first error, duplicates) is exactly what a sequential loop would give.

use std::num::NonZeroUsize;

/// Fewer items than this per thread are not worth a thread.
const MIN_PER_THREAD: usize = 256;
/// More threads than this gain little here: the work is a few microseconds per item.
const MAX_THREADS: usize = 8;

/// `items.iter().map(f).collect()`, on up to one scoped thread per core when `items` is large.
/// A panic in `f` is a panic of the caller.
pub(crate) fn map_in_order<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let threads = cores.min(MAX_THREADS).min(items.len() / MIN_PER_THREAD);
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for part in parts {
            match part.join() {
                Ok(results) => all.extend(results),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_order_of_the_items_whatever_their_number() {
        for n in [
            0,
            1,
            MIN_PER_THREAD - 1,
            MIN_PER_THREAD * 2,
            MIN_PER_THREAD * 9 + 7,
        ] {
            let items: Vec<usize> = (0..n).collect();
            let doubled = map_in_order(&items, |i| i * 2);
            assert_eq!(
                doubled,
                items.iter().map(|i| i * 2).collect::<Vec<_>>(),
                "{n}"
            );
        }
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller() {
        let items: Vec<usize> = (0..MIN_PER_THREAD * 4).collect();
        let caught = std::panic::catch_unwind(|| {
            map_in_order(&items, |&i| assert!(i != MIN_PER_THREAD * 3, "item {i}"))
        });
        assert!(caught.is_err());
    }
}

//! Work on many independent items (policy documents to parse or to analyse) spread over the
//! machine's cores with scoped threads, the results in the items' order, so that the output
//! does not depend on how the work was divided.

use std::num::NonZero;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Items per piece of work: small enough to balance documents of very different sizes,
/// large enough that taking a piece costs nothing next to doing it.
const PIECE: usize = 16;

/// At most this many threads (the work is a few hundred milliseconds at most).
const MAX_THREADS: usize = 8;

/// `f` applied to every item, in order. With fewer than two pieces of work, or one core, it
/// runs on the calling thread; otherwise the calling thread and up to `MAX_THREADS - 1` others
/// take pieces of [`PIECE`] items in turn. A thread that cannot be started leaves its share
/// to the others. A panic in `f` is passed on to the caller.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let pieces = items.len().div_ceil(PIECE);
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZero::get)
        .min(MAX_THREADS)
        .min(pieces);
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Vec<R>)>> = Mutex::new(Vec::with_capacity(pieces));
    let work = || {
        loop {
            let piece = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = items.chunks(PIECE).nth(piece) else {
                break;
            };
            let results: Vec<R> = part.iter().map(&f).collect();
            // A poisoned lock means another thread panicked; that panic is passed on below.
            if let Ok(mut done) = done.lock() {
                done.push((piece, results));
            }
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        work();
        for helper in helpers {
            if let Err(panic) = helper.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_unstable_by_key(|(piece, _)| *piece);
    done.into_iter().flat_map(|(_, results)| results).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_order_whatever_the_split() {
        for n in [0, 1, PIECE - 1, PIECE, PIECE + 1, 10 * PIECE + 3, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let got = map(&items, |i| {
                // Uneven work, so pieces finish out of order.
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
                i * 2
            });
            assert_eq!(got, items.iter().map(|i| i * 2).collect::<Vec<_>>(), "{n}");
        }
    }

    #[test]
    #[should_panic(expected = "item 40")]
    fn a_panic_reaches_the_caller() {
        let items: Vec<usize> = (0..200).collect();
        map(&items, |&i| {
            assert!(i != 40, "item 40");
            i
        });
    }
}

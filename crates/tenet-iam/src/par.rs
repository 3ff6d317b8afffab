//! Work on many independent items (policy documents to parse or to analyse) spread over the
//! machine's cores with rayon, the results in the items' order, so that the output does not
//! depend on how the work was divided.

use rayon::prelude::*;

/// Fewest items per piece of work: small enough to balance documents of very different sizes,
/// large enough that taking a piece costs nothing next to doing it.
const PIECE: usize = 16;

/// `f` applied to every item, in order, on rayon's pool. A panic in `f` is passed on to the
/// caller.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    items.par_iter().with_min_len(PIECE).map(f).collect()
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

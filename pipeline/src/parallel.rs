//! Work split over the cores for one step: parts run at once on scoped threads, their results in order.

use std::sync::Mutex;

/// The machine's cores (1 when it cannot be told).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` of every part, in the parts' order: the first on the calling thread, each other on a scoped
/// thread named `name` of its own. A part whose thread cannot be started is done on the calling thread
/// afterwards; a panic in any part goes on, with its own message, from the calling thread.
pub fn in_order<T, R, F>(parts: Vec<T>, name: &str, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    // Each other part waits in a slot for its thread, so one that gets none is still there to do here.
    let slots: Vec<Mutex<Option<T>>> = parts.map(|p| Mutex::new(Some(p))).collect();
    let take = |slot: &Mutex<Option<T>>| {
        slot.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .expect("a part is done once")
    };
    let f = &f;
    std::thread::scope(|scope| {
        let threads: Vec<_> = slots
            .iter()
            .map(|slot| {
                std::thread::Builder::new()
                    .name(name.to_string())
                    .spawn_scoped(scope, move || f(take(slot)))
                    .ok()
            })
            .collect();
        let mut results = Vec::with_capacity(slots.len() + 1);
        results.push(f(first));
        for (slot, thread) in slots.iter().zip(threads) {
            results.push(match thread {
                Some(t) => t
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => f(take(slot)),
            });
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_parts_order_whichever_finishes_first() {
        let parts: Vec<u64> = vec![60, 0, 30, 10];
        let out = in_order(parts, "test-part", |ms| {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            (ms, std::thread::current().name().map(String::from))
        });
        let order: Vec<u64> = out.iter().map(|(ms, _)| *ms).collect();
        assert_eq!(order, vec![60, 0, 30, 10]);
        // The first on the calling thread, the others on threads of their own.
        assert_ne!(out[0].1.as_deref(), Some("test-part"));
        assert!(
            out[1..]
                .iter()
                .all(|(_, n)| n.as_deref() == Some("test-part"))
        );
        assert!(in_order(Vec::<u8>::new(), "none", |x| x).is_empty());
    }

    #[test]
    fn a_panic_in_a_part_goes_on_with_its_message() {
        let caught = std::panic::catch_unwind(|| {
            in_order(vec![1, 2, 3], "test-part", |x| {
                if x == 3 {
                    panic!("part three failed");
                }
                x
            })
        })
        .unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"part three failed"));
    }
}

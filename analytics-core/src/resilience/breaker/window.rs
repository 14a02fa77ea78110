//! The sliding window of closed-state outcomes: the last N calls, or the calls of the last N
//! seconds, tallied without a pass over the window.

use std::collections::VecDeque;

use super::SlidingWindow;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub(super) calls: u32,
    pub(super) failed: u32,
    pub(super) slow: u32,
}

impl Tally {
    pub(super) fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failed += u32::from(failed);
        self.slow += u32::from(slow);
    }

    fn add_successes(&mut self, count: u32) {
        self.calls += count;
    }

    pub(super) fn remove(&mut self, failed: bool, slow: bool) {
        self.calls -= 1;
        self.failed -= u32::from(failed);
        self.slow -= u32::from(slow);
    }

    pub(super) fn rates(&self) -> (f64, f64) {
        let calls = f64::from(self.calls.max(1));
        (
            f64::from(self.failed) * 100.0 / calls,
            f64::from(self.slow) * 100.0 / calls,
        )
    }
}

/// The closed-state window.
#[derive(Debug)]
pub(super) enum Window {
    Count {
        size: usize,
        outcomes: VecDeque<(bool, bool)>,
        tally: Tally,
    },
    Time {
        seconds: i64,
        buckets: VecDeque<(i64, Tally)>,
    },
}

impl Window {
    pub(super) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count(n) => Window::Count {
                size: n as usize,
                outcomes: VecDeque::new(),
                tally: Tally::default(),
            },
            SlidingWindow::Time(s) => Window::Time {
                seconds: i64::from(s),
                buckets: VecDeque::new(),
            },
        }
    }

    pub(super) fn record(&mut self, failed: bool, slow: bool, now_secs: i64) {
        match self {
            Window::Count { size, outcomes, tally } => {
                if outcomes.len() == *size
                    && let Some((f, s)) = outcomes.pop_front()
                {
                    tally.remove(f, s);
                }
                outcomes.push_back((failed, slow));
                tally.add(failed, slow);
            }
            Window::Time { buckets, .. } => {
                let second = now_secs;
                match buckets.back_mut() {
                    Some((s, tally)) if *s == second => tally.add(failed, slow),
                    _ => {
                        let mut tally = Tally::default();
                        tally.add(failed, slow);
                        buckets.push_back((second, tally));
                    }
                }
                self.expire(now_secs);
            }
        }
    }

    /// Records `count` successes made in second `second` (never later than the last recorded
    /// call's; a later call's bucket takes them if one exists).
    pub(super) fn record_successes(&mut self, count: u32, second: i64) {
        match self {
            Window::Count { size, outcomes, tally } => {
                for _ in 0..(count as usize).min(*size) {
                    if outcomes.len() == *size
                        && let Some((f, s)) = outcomes.pop_front()
                    {
                        tally.remove(f, s);
                    }
                    outcomes.push_back((false, false));
                    tally.add(false, false);
                }
            }
            Window::Time { buckets, .. } => match buckets.back_mut() {
                Some((s, tally)) if *s >= second => tally.add_successes(count),
                _ => {
                    let mut tally = Tally::default();
                    tally.add_successes(count);
                    buckets.push_back((second, tally));
                }
            },
        }
    }

    pub(super) fn expire(&mut self, now_secs: i64) {
        if let Window::Time { seconds, buckets } = self {
            let oldest = now_secs - *seconds;
            while buckets.front().is_some_and(|(s, _)| *s <= oldest) {
                buckets.pop_front();
            }
        }
    }

    pub(super) fn tally(&mut self, now_secs: i64) -> Tally {
        self.expire(now_secs);
        match self {
            Window::Count { tally, .. } => *tally,
            Window::Time { buckets, .. } => buckets.iter().fold(Tally::default(), |mut sum, (_, t)| {
                sum.calls += t.calls;
                sum.failed += t.failed;
                sum.slow += t.slow;
                sum
            }),
        }
    }
}

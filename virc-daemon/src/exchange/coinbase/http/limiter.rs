//! The request scheduler in front of every Coinbase REST call: one token
//! bucket per rate-limit class, protective requests first, and back-off on
//! a 429.
//!
//! # Buckets
//! Each class is a GCRA ("generic cell rate algorithm") bucket, which is a
//! token bucket kept as one number: the theoretical arrival time `tat` of
//! the next request at the steady rate. A request at `now` may go when
//! `tat − now ≤ (burst − 1) × interval`; it then moves `tat` one interval
//! on. No timer refills anything, so the state is exact and cheap.
//! Coinbase's published limits are the defaults: public 10/s burst 15,
//! private 15/s burst 30, fills 10/s burst 20.
//!
//! # Priority
//! Cancels and protective exits (a stop-loss selling) go before new
//! orders: while a protective request waits for a class, normal requests
//! of that class wait behind it, so a burst of new orders can never delay
//! the cancel that protects a position.
//!
//! # 429
//! A "rate limit exceeded" answer means the exchange counts differently
//! from us (another client on the same key, clock drift): [`Limiter::back_off`]
//! pushes the class's bucket out by the wait, and the caller retries the
//! same request. It never fails a bot.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

/// A rate-limit class of Coinbase's REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Public endpoints (products, tickers, books, trades, candles, time).
    Public,
    /// Private endpoints (orders, accounts, fees).
    Private,
    /// `GET /fills`, limited on its own.
    Fills,
}

/// Who waits first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Cancels and protective exits.
    Protective,
    /// Everything else.
    Normal,
}

/// A class's steady rate and burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
}

/// The limits of the three classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Public endpoints.
    pub public: Rate,
    /// Private endpoints.
    pub private: Rate,
    /// Fills.
    pub fills: Rate,
}

impl Default for RateLimits {
    /// Coinbase Exchange's published limits.
    fn default() -> Self {
        Self {
            public: Rate {
                per_second: 10,
                burst: 15,
            },
            private: Rate {
                per_second: 15,
                burst: 30,
            },
            fills: Rate {
                per_second: 10,
                burst: 20,
            },
        }
    }
}

/// One GCRA bucket; times are durations since the limiter's start.
#[derive(Debug, Clone)]
struct Bucket {
    interval: Duration,
    tolerance: Duration,
    tat: Duration,
    /// Protective requests waiting on this bucket.
    protective_waiting: u32,
}

impl Bucket {
    fn new(rate: Rate) -> Self {
        let interval = Duration::from_secs(1) / rate.per_second.max(1);
        Self {
            interval,
            tolerance: interval * rate.burst.max(1).saturating_sub(1),
            tat: Duration::ZERO,
            protective_waiting: 0,
        }
    }

    /// Takes a slot at `now`, or says how long to wait for one.
    fn take(&mut self, now: Duration) -> Result<(), Duration> {
        let tat = self.tat.max(now);
        let ahead = tat.saturating_sub(now);
        if ahead > self.tolerance {
            return Err(ahead.saturating_sub(self.tolerance));
        }
        self.tat = tat + self.interval;
        Ok(())
    }
}

/// The scheduler: await [`Limiter::acquire`] before each request.
#[derive(Debug, Clone)]
pub struct Limiter {
    start: Instant,
    buckets: Arc<[Mutex<Bucket>; 3]>,
}

/// How long a normal request yields to a waiting protective one before looking again.
const YIELD: Duration = Duration::from_millis(5);

impl Limiter {
    /// A limiter with these limits, all buckets full.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            start: Instant::now(),
            buckets: Arc::new([
                Mutex::new(Bucket::new(limits.public)),
                Mutex::new(Bucket::new(limits.private)),
                Mutex::new(Bucket::new(limits.fills)),
            ]),
        }
    }

    fn bucket(&self, class: Class) -> &Mutex<Bucket> {
        &self.buckets[match class {
            Class::Public => 0,
            Class::Private => 1,
            Class::Fills => 2,
        }]
    }

    fn with<T>(&self, class: Class, f: impl FnOnce(&mut Bucket) -> T) -> T {
        // A poisoned lock only means a panic elsewhere; the bucket is still a number.
        let mut b = self
            .bucket(class)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut b)
    }

    /// Waits until a request of `class` may go.
    pub async fn acquire(&self, class: Class, priority: Priority) {
        let protective = priority == Priority::Protective;
        if protective {
            self.with(class, |b| b.protective_waiting += 1);
        }
        loop {
            let now = self.start.elapsed();
            let wait = self.with(class, |b| {
                if !protective && b.protective_waiting > 0 {
                    return Some(YIELD);
                }
                match b.take(now) {
                    Ok(()) => {
                        if protective {
                            b.protective_waiting -= 1;
                        }
                        None
                    }
                    Err(wait) => Some(wait),
                }
            });
            match wait {
                None => return,
                Some(w) => tokio::time::sleep(w).await,
            }
        }
    }

    /// After a 429: nothing of `class` goes for `wait`.
    pub fn back_off(&self, class: Class, wait: Duration) {
        let until = self.start.elapsed() + wait;
        self.with(class, |b| b.tat = b.tat.max(until + b.tolerance));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Limiter {
        Limiter::new(RateLimits::default())
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_the_steady_rate_holds() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..15 {
            l.acquire(Class::Public, Priority::Normal).await;
        }
        assert_eq!(t0.elapsed(), Duration::ZERO, "the burst of 15 is free");
        l.acquire(Class::Public, Priority::Normal).await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(100),
            "then one per 100 ms"
        );
        for _ in 0..10 {
            l.acquire(Class::Public, Priority::Normal).await;
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(1100));
        // Classes are separate: private still has its whole burst.
        for _ in 0..30 {
            l.acquire(Class::Private, Priority::Normal).await;
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_refills_the_burst() {
        let l = limiter();
        for _ in 0..20 {
            l.acquire(Class::Fills, Priority::Normal).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = Instant::now();
        for _ in 0..20 {
            l.acquire(Class::Fills, Priority::Normal).await;
        }
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_goes_before_new_orders_already_waiting() {
        let l = limiter();
        for _ in 0..30 {
            l.acquire(Class::Private, Priority::Normal).await;
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (l, order) = (l.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                l.acquire(Class::Private, Priority::Normal).await;
                order.lock().unwrap().push(format!("new {i}"));
            }));
        }
        tokio::task::yield_now().await;
        let (l2, order2) = (l.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            l2.acquire(Class::Private, Priority::Protective).await;
            order2.lock().unwrap().push("cancel".to_owned());
        }));
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap();
        assert_eq!(order[0], "cancel", "{order:?}");
        assert_eq!(order.len(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_backs_the_class_off() {
        let l = limiter();
        l.acquire(Class::Private, Priority::Normal).await;
        let t = Instant::now();
        l.back_off(Class::Private, Duration::from_secs(1));
        l.acquire(Class::Private, Priority::Normal).await;
        assert_eq!(t.elapsed(), Duration::from_secs(1));
        // Other classes are not held back.
        let t = Instant::now();
        l.acquire(Class::Public, Priority::Normal).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}

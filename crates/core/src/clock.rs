//! The one place wall-clock time enters strata, so that tests control it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};

/// A source of "now". Production uses [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        Self { millis: Arc::new(AtomicI64::new(t.timestamp_millis())) }
    }

    pub fn set(&self, t: DateTime<Utc>) {
        self.millis.store(t.timestamp_millis(), Ordering::SeqCst);
    }

    pub fn advance(&self, d: chrono::Duration) {
        self.millis.fetch_add(d.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.millis.load(Ordering::SeqCst))
            .single()
            .expect("manual clock holds a valid timestamp")
    }
}

/// Parses a user-given instant: RFC 3339, `YYYY-MM-DDTHH:MM[:SS]` or `YYYY-MM-DD` (UTC).
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

/// The instants strata accepts for a run's time (`--at`, `--from`, `--to`, a test's
/// window): event data is never older than the Unix epoch, and the embedded engine computes
/// in nanosecond timestamps, which end in 2262; outside, windows cannot be computed.
pub const EARLIEST: &str = "1970-01-01T00:00:00Z";
/// See [`EARLIEST`].
pub const LATEST: &str = "2199-12-31T23:59:59Z";

/// Whether `t` is within [`EARLIEST`] ..= [`LATEST`].
pub fn in_range(t: DateTime<Utc>) -> bool {
    let bound = |s| DateTime::parse_from_rfc3339(s).map(|b| b.with_timezone(&Utc)).ok();
    bound(EARLIEST).is_some_and(|lo| t >= lo) && bound(LATEST).is_some_and(|hi| t <= hi)
}

/// An instant as strata records it: RFC 3339 with milliseconds and `Z`, so that recorded
/// instants sort as text.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

//! A model run's logical window: the half-open interval of event time it (re)computes,
//! and the partitions that interval covers.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;

/// The unit a model's window is counted in, and the partition grain of its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hour" | "hourly" | "1h" => Some(Self::Hour),
            "day" | "daily" | "1d" => Some(Self::Day),
            _ => None,
        }
    }

    pub fn duration(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(self.duration()).expect("timestamps in range truncate")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// `[start, end)` in UTC. `start` is aligned to the grain; `end` is the run's logical time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub grain: Grain,
}

/// One output partition: `dt` and, for hourly grain, `hour`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    pub dt: String,
    pub hour: Option<String>,
}

impl Window {
    /// The window a run at `at` covers: the grain unit containing `at` and `lookback` units before it.
    pub fn ending_at(at: DateTime<Utc>, grain: Grain, lookback: u32) -> Self {
        let start = grain.floor(at) - grain.duration() * lookback as i32;
        Self { start, end: at, grain }
    }

    /// A window from `from` (floored to the grain) to `at`.
    pub fn spanning(from: DateTime<Utc>, at: DateTime<Utc>, grain: Grain) -> Self {
        Self { start: grain.floor(from.min(at)), end: at, grain }
    }

    /// Every grain unit that overlaps the window, oldest first.
    pub fn units(&self) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = self.grain.floor(self.start);
        while t < self.end {
            out.push(t);
            t += self.grain.duration();
        }
        out
    }

    /// The partitions the window covers at its own grain.
    pub fn partitions(&self) -> Vec<PartitionKey> {
        self.units()
            .into_iter()
            .map(|t| PartitionKey { dt: fmt_dt(t), hour: (self.grain == Grain::Hour).then(|| fmt_hour(t)) })
            .collect()
    }

    /// The hour partitions (`dt`, `hour`) that hold events received in the window.
    pub fn hours(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut t = Grain::Hour.floor(self.start);
        while t < self.end {
            out.push((fmt_dt(t), fmt_hour(t)));
            t += Duration::hours(1);
        }
        out
    }

    /// The days (`dt`) the window overlaps.
    pub fn days(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = Grain::Day.floor(self.start);
        while t < self.end {
            out.push(fmt_dt(t));
            t += Duration::days(1);
        }
        out
    }
}

pub fn fmt_dt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

pub fn fmt_hour(t: DateTime<Utc>) -> String {
    t.format("%H").to_string()
}

/// A timestamp as both engines read a `TIMESTAMP '...'` literal.
pub fn fmt_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

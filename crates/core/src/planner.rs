//! What is due: given the clock and each model's last successful run, which models a tick
//! runs and for which window. Pure: no I/O, so tests drive it with any clock.

use chrono::{DateTime, Duration, Utc};

use crate::project::{Materialization, Model};
use crate::window::Window;

/// How far back a tick catches up missed firings (older ones are not replayed; a backfill
/// is the tool for those).
pub const CATCH_UP_LIMIT: Duration = Duration::days(2);

/// A tick's decision for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run once with windows ending at `at`; `from`, when set, makes an incremental model
    /// recompute every partition since then (the windows of missed firings, each once).
    Due {
        at: DateTime<Utc>,
        from: Option<DateTime<Utc>>,
        firings: usize,
    },
    NotDue {
        next: Option<DateTime<Utc>>,
    },
    /// No schedule: runs only when asked (`strata run`, `backfill`).
    Manual,
}

/// Firings of the model's schedule in `(after, until]`, oldest first.
pub fn firings(model: &Model, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let Some(s) = &model.config.schedule else { return Vec::new() };
    let mut out = Vec::new();
    let mut t = after;
    while let Some(next) = s.next_after(t) {
        if next > until {
            break;
        }
        out.push(next);
        t = next;
    }
    out
}

/// Decides whether `model` runs at `now`, given the logical time of its last success.
pub fn decide(model: &Model, last_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Decision {
    let Some(schedule) = &model.config.schedule else {
        return if model.config.materialized == Materialization::External {
            // Applying unchanged DDL is a no-op; a changed one must land before readers.
            Decision::Due { at: now, from: None, firings: 1 }
        } else {
            Decision::Manual
        };
    };
    let floor = now - CATCH_UP_LIMIT;
    let fires = match last_at {
        Some(last) => firings(model, last.max(floor), now),
        // Never ran: only the latest firing, not a replay of history.
        None => schedule.last_at_or_before(now, Duration::days(1)).into_iter().collect(),
    };
    let (Some(first), Some(last)) = (fires.first(), fires.last()) else {
        return Decision::NotDue { next: schedule.next_after(now) };
    };
    let from = (model.config.materialized == Materialization::Incremental && fires.len() > 1)
        .then(|| Window::ending_at(*first, model.config.grain, model.config.lookback).start);
    Decision::Due { at: *last, from, firings: fires.len() }
}

/// Whether an upstream model is current up to `end`: it has no firing at or before `end`
/// left to run. Models without a schedule are always current.
pub fn is_current(upstream: &Model, last_at: Option<DateTime<Utc>>, end: DateTime<Utc>) -> bool {
    let Some(schedule) = &upstream.config.schedule else { return true };
    match last_at {
        Some(last) => schedule.next_after(last).is_none_or(|n| n > end),
        None => false,
    }
}

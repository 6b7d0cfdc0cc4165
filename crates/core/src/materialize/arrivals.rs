//! What a near-real-time run reads (`reads='arrived'`), decided once for every backend.
//!
//! A run lists the objects of its window's source partitions. When the published version
//! can lend its rows of the window (it is of the same base generation: the window does not
//! start before its own, see [`lends_rows`]) and recorded the objects it reflects, the run
//! reads only the objects that arrived since and keeps the published rows beside them;
//! otherwise it reads its whole window. Either way its version records everything listed,
//! unless it carries partitions after its window (then its record would not cover them,
//! and the next run reads its whole window). How objects are listed, how a source is
//! limited to some of them (a `"$path"` predicate on Athena, a file list locally) and where
//! the record is kept belong to each backend.

use std::collections::BTreeSet;

/// What a near-real-time run reads of its window's source objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Every object of the window, as rendered; no published row is kept.
    Window,
    /// Only these objects (none: nothing arrived); the published version's rows of the
    /// window are kept beside what they give.
    Arrived(Vec<String>),
}

/// Whether a published version whose own window starts at `published_from` can lend its
/// rows to a run whose window starts at `from` (the same base generation).
pub fn lends_rows(from: &[String], published_from: &[String]) -> bool {
    from >= published_from
}

/// Decides what to read: `listed` is every object of the window now; `recorded` what the
/// published version reflects, if it can lend its rows (see [`lends_rows`]) and recorded
/// them; `fits` whether the engine can be given a list of that many objects (on Athena a
/// statement's size): past it, the whole window.
pub fn decide(
    listed: &[String],
    recorded: Option<&BTreeSet<String>>,
    fits: impl Fn(&[&String]) -> bool,
) -> Read {
    let Some(recorded) = recorded else { return Read::Window };
    let new: Vec<&String> = listed.iter().filter(|o| !recorded.contains(*o)).collect();
    if !fits(&new) {
        return Read::Window;
    }
    Read::Arrived(new.into_iter().cloned().collect())
}

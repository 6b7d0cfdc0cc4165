//! The publish policy, written once for every backend and every way a model is run.
//!
//! Today it holds the run protocol: what happens to a staged version (audit, the emptied
//! partitions fence, unchanged results, the stop's last safe point, the compare-and-swap
//! publish) and the outcomes it ends in, shared by `runner` (a run, a tick) and `backfill`
//! (a range sealed into one version), so both report a stop, a refusal or a lost race the
//! same way; the near-real-time decision of what a run reads (`arrivals`); a backfill's
//! seal (`seal`), a SELECT model's run staged (`stage`), against the narrow table store
//! each backend implements (`store`, `layered::LayeredStore`, `stage::StagingStore`).
//!
//! Invariant: a staged version is published only by [`complete`], after its audits passed
//! and the fence let it through, and never once the stop was raised before the request.

pub mod arrivals;
pub mod layered;
pub mod seal;
pub mod stage;
pub mod store;

pub use self::seal::seal;

use std::future::Future;

use crate::engine::{Engine, EngineError, Staged, StepStats};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new version is current.
    Published(String),
    /// The result equals what is published; nothing changed.
    Unchanged,
    /// Another run of the same window published first (its compare-and-swap won); this
    /// run's result was not needed and nothing changed.
    Superseded(String),
    /// The publish lost the compare-and-swap to a run of another window: nothing changed,
    /// and this window still has to run.
    Conflict(String),
    /// A fence refused the result (partitions that held data would be emptied).
    Refused(String),
    Failed(String),
    Skipped(String),
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed(_) | Self::Conflict(_) | Self::Refused(_))
    }

    /// The window's data is as it should be (published by this run or by another).
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Published(_) | Self::Unchanged | Self::Superseded(_))
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Published(_) => "published",
            Self::Unchanged => "unchanged",
            Self::Superseded(_) => "superseded",
            Self::Conflict(_) => "CONFLICT",
            Self::Refused(_) => "REFUSED",
            Self::Failed(_) => "FAILED",
            Self::Skipped(_) => "skipped",
        }
    }

    /// Why it failed, was skipped, refused or superseded.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Published(_) | Self::Unchanged => None,
            Self::Superseded(e)
            | Self::Conflict(e)
            | Self::Refused(e)
            | Self::Failed(e)
            | Self::Skipped(e) => Some(e),
        }
    }
}

/// What a stop leaves of a model run (`EngineError::Stopped` says it).
pub const STOPPED: &str = "stopped before publishing";

/// The stop signal of a run: once raised, no model starts, and a model in flight is
/// abandoned at its next safe point: while it stages or audits (its statements are
/// stopped), or before it publishes. A publish whose request was sent completes, and the
/// outcome reported is what happened.
#[derive(Debug, Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self(rx))
    }

    pub fn never() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx); // never raised
        Self(rx)
    }

    pub fn raised(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// The steps of the protocol after which a test hook may fire (`STRATA_FAILPOINT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The version is staged (before its audits).
    Staged,
    /// Its audits passed and the fence let it through (before the publish).
    Audited,
    /// It is published.
    Published,
}

/// How a protocol ended without an outcome: why, and what was spent.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: EngineError,
    pub stats: StepStats,
}

/// `work`, unless the stop is raised first: then the engine's statements in flight are
/// stopped and the work is dropped (nothing it wrote is visible: it was not published).
pub async fn unless_stopped<T>(
    engine: &dyn Engine,
    stop: &Stop,
    work: impl Future<Output = Result<T, EngineError>>,
    stats: StepStats,
) -> Result<T, Failure> {
    tokio::select! {
        r = work => r.map_err(|error| Failure { error, stats }),
        () = stop.wait() => {
            engine.cancel().await;
            Err(Failure { error: EngineError::Stopped, stats })
        }
    }
}

/// What a run asks of the protocol besides its staged version.
pub struct Completion<'a> {
    pub engine: &'a dyn Engine,
    pub stop: &'a Stop,
    /// Publish even when partitions that held data would be emptied (`--allow-empty-window`).
    pub allow_empty_window: bool,
    /// Stamps the publish when it is sent.
    pub clock: &'a dyn crate::clock::Clock,
    /// Called after each [`Step`] (test hooks).
    pub after: &'a (dyn Fn(Step) + Sync),
}

/// Carries a staged version to its outcome: audits (abandoned on a stop), the emptied
/// partitions fence (refused), an unchanged result (nothing to publish), the last safe
/// point, and the compare-and-swap publish (a lost race is a conflict; a publish whose
/// request was sent completes). `during_publish` runs beside the publish (a test hook that
/// holds the outcome while the request is in flight). Returns the outcome and the stats.
pub async fn complete(
    c: &Completion<'_>,
    staged: &Staged,
    during_publish: impl Future<Output = ()>,
) -> Result<(Outcome, StepStats), Failure> {
    let stats = staged.stats;
    (c.after)(Step::Staged);
    unless_stopped(c.engine, c.stop, c.engine.audit(staged), stats).await?;
    if let Err(e) = crate::engine::check_emptied(staged, c.allow_empty_window) {
        return Ok((Outcome::Refused(e), stats));
    }
    (c.after)(Step::Audited);
    if !staged.changed {
        return Ok((Outcome::Unchanged, stats));
    }
    // The last safe point: once the publish request is sent, it completes.
    if c.stop.raised() {
        return Err(Failure { error: EngineError::Stopped, stats });
    }
    let published_at = crate::clock::stamp(c.clock.now());
    let (published, ()) = tokio::join!(c.engine.publish(staged, &published_at), during_publish);
    match published {
        Ok(()) => {}
        Err(e @ EngineError::Conflict(_)) => return Ok((Outcome::Conflict(e.to_string()), stats)),
        Err(error) => return Err(Failure { error, stats }),
    }
    (c.after)(Step::Published);
    Ok((Outcome::Published(staged.job.version.clone()), stats))
}

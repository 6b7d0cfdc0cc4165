//! The contract every backend implements: run models ([`Engine`]: stage, audit, publish,
//! query), keep their versions ([`Lifecycle`]: status, rollback and gc written once in
//! `lifecycle`), and keep the deployment's run state ([`RunState`]). The local engine and
//! the Athena engine are the two; the command line holds one as `Box<dyn Backend>` and
//! never asks which.

use std::sync::Arc;

use async_trait::async_trait;

use crate::engine::{Engine, EngineError};
use crate::lifecycle::Lifecycle;
use crate::project::Project;
use crate::state::RunState;

#[async_trait]
pub trait Backend: Engine + Lifecycle {
    /// The run state of the deployment: the local state directory's SQLite file, or the
    /// lake's `_strata/state/` prefix that every task shares.
    fn run_state(&self) -> Arc<dyn RunState>;

    /// Brings the run state up to what the backend's catalog says is published (a run
    /// killed between its publish and its record is not run again). Nothing to do where
    /// the two are written together.
    async fn reconcile(&self, _project: &Project, _now: &str) -> Result<(), EngineError> {
        Ok(())
    }
}

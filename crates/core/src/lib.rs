//! strata's core: everything that does not know which backend runs it. The project (models,
//! templates, the DAG), settings, the engine contract and its shared checks, the publish
//! policy written once (`materialize`, `lifecycle`), the run state, and running models
//! (`runner`, `scheduler`, `backfill`). The backends (`strata::local`, `strata::athena`)
//! implement its traits; being a crate of its own, it cannot name them: the compiler
//! checks that half of ARCHITECTURE.md's layering.

pub mod backend;
pub mod backfill;
pub mod changes;
pub mod clock;
pub mod config;
pub mod engine;
pub mod fingerprint;
pub mod ids;
pub mod lifecycle;
pub mod materialize;
pub mod planner;
pub mod project;
pub mod render;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod state;
pub mod window;

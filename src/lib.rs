//! strata: renders templated SQL for an Athena + Glue lakehouse, runs it on Athena or an
//! embedded engine, audits the staged result and publishes it with one atomic change.
//!
//! The core (`strata-core`, `crates/core/`) is re-exported here, so `strata::engine`,
//! `strata::runner` and the rest name the same modules inside and outside this crate.

pub use strata_core::{
    backend, backfill, changes, clock, config, engine, fingerprint, ids, lifecycle, materialize, planner,
    project, render, runner, schedule, scheduler, state, window,
};

pub mod athena;
pub mod backends;
pub mod callback;
pub mod check;
pub mod cli;
pub mod demo;
pub mod docs;
pub mod local;
pub mod metrics;
pub mod modeltest;

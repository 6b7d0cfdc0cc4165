//! strata: renders templated SQL for an Athena + Glue lakehouse, runs it on Athena or an
//! embedded engine, audits the staged result and publishes it with one atomic change.

pub mod athena;
pub mod backend;
pub mod backends;
pub mod backfill;
pub mod callback;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod docs;
pub mod engine;
pub mod ids;
pub mod lifecycle;
pub mod local;
pub mod materialize;
pub mod metrics;
pub mod modeltest;
pub mod planner;
pub mod project;
pub mod render;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod state;
pub mod window;

//! The one integration-test binary: every test module links into it, so the suite links once.

mod athena;
mod athena_faults;
mod athena_scale;
mod bronze;
mod callback;
mod changes;
mod cli;
mod common;
mod conformance;
mod docs;
mod functions;
mod golden;
mod guards;
mod infra;
mod layering;
mod materialize;
mod modeltest;
mod nrt;
mod project;
mod publish;
mod reliability;
mod render;
mod reruns;
mod run_state;
mod scheduler;

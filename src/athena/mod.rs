//! The Athena side of strata: the statements a model becomes on Athena.

pub mod sql;

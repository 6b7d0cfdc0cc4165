//! What produced a version: a model's fingerprint. Every run records the fingerprint of the
//! model it ran with its run record (`state::RunRecord::fingerprint`), so the published
//! version of each table says which SQL and config computed it, and `strata plan` can say
//! what changed since (see `changes`).
//!
//! A fingerprint has three parts, each a stable hash:
//! - `logic`: the model's SQL as the engine runs it, rendered for one fixed window (so the
//!   window's literals do not count) with comments dropped and whitespace collapsed outside
//!   quotes (so re-indenting or commenting is not a change);
//! - `config`: what decides how the result is stored and which partitions a run replaces:
//!   materialization, partition columns, grain, lookback, format, compression, reads. Not
//!   the schedule, audits, description or tags: they do not change the data;
//! - `upstream`: the fingerprints of the models it reads, so a change upstream shows.
//!
//! `id` hashes the three: equal ids mean the same data for the same inputs. A project's
//! models are fingerprinted by `project::fingerprints`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::fnv128;

/// A model's fingerprint (hex hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub id: String,
    pub logic: String,
    pub config: String,
    /// The fingerprint id of each model it reads.
    #[serde(default)]
    pub upstream: BTreeMap<String, String>,
    /// The config it hashed, as `key=value` pairs, so a change can be named.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl Fingerprint {
    /// The first 12 hex digits of the id, as `status` and `plan` show it.
    pub fn short(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// The fingerprint of rendered `sql` with `settings` over `upstream`.
pub fn fingerprint(
    sql: &str,
    settings: BTreeMap<String, String>,
    upstream: BTreeMap<String, String>,
) -> Fingerprint {
    let hex = |h: u128| format!("{h:032x}");
    let logic = hex(fnv128(&[&normalized(sql)]));
    let config_text: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let config = hex(fnv128(&[&config_text.join("\n")]));
    let upstream_text: Vec<String> = upstream.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let id = hex(fnv128(&[&logic, &config, &upstream_text.join("\n")]));
    Fingerprint { id, logic, config, upstream, settings }
}

/// `sql` without comments, its whitespace outside quotes collapsed to one space and
/// trimmed, a trailing `;` dropped: what a reformatting leaves unchanged.
pub fn normalized(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c);
                // A quoted run, doubled quotes included, is copied as it is.
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == c {
                        if chars.peek() == Some(&c) {
                            out.push(chars.next().expect("peeked"));
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                space = true;
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for d in chars.by_ref() {
                    if last == '*' && d == '/' {
                        break;
                    }
                    last = d;
                }
                space = true;
            }
            c if c.is_whitespace() => space = true,
            c => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c);
            }
        }
    }
    out.trim_end_matches(';').trim_end().to_string()
}

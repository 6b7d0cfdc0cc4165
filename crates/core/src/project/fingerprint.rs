//! Every model's fingerprint (see the crate's `fingerprint`): its SQL rendered for one
//! fixed window, the config that decides how it is stored, its upstream's fingerprints.

use std::collections::BTreeMap;

use super::{Diagnostic, Model, Project};
use crate::fingerprint::{Fingerprint, fingerprint};
use crate::ids::ModelId;
use crate::window::{Grain, Window};

/// The window every fingerprint renders for: a fixed instant and a fixed length (the
/// literals of a run's window do not change a model's fingerprint, nor does its lookback,
/// which the config part counts).
pub fn canonical_window(model: &Model) -> Window {
    let at = chrono::DateTime::from_timestamp(1_735_732_800, 0).expect("2025-01-01T12:00:00Z");
    Window::ending_at(at, model.config.grain, if model.config.grain == Grain::Hour { 1 } else { 0 })
}

/// The config a fingerprint hashes, by name.
pub fn stored_config(model: &Model) -> BTreeMap<String, String> {
    let c = &model.config;
    BTreeMap::from([
        ("materialized".to_string(), c.materialized.as_str().to_string()),
        ("partitioned_by".to_string(), c.partitioned_by.join(",")),
        ("window".to_string(), c.grain.as_str().to_string()),
        ("lookback".to_string(), c.lookback.to_string()),
        ("format".to_string(), c.format.clone()),
        ("compression".to_string(), c.compression.clone()),
        ("reads".to_string(), if c.reads_arrived { "arrived" } else { "window" }.to_string()),
    ])
}

/// Every model's fingerprint, in DAG order (a model that does not render has none, nor
/// have the models downstream of it).
pub fn fingerprints(project: &Project) -> (BTreeMap<ModelId, Fingerprint>, Vec<Diagnostic>) {
    let mut out: BTreeMap<ModelId, Fingerprint> = BTreeMap::new();
    let mut problems = Vec::new();
    for id in &project.dag.order {
        let model = &project.models[id];
        let upstream: Option<BTreeMap<String, String>> = project
            .dag
            .upstream(id)
            .iter()
            .map(|u| out.get(u).map(|f| (u.to_string(), f.id.clone())))
            .collect();
        let Some(upstream) = upstream else { continue };
        let sql = match project.render(id, project.settings.engine, canonical_window(model)) {
            Ok(sql) => sql,
            Err(d) => {
                problems.push(d);
                continue;
            }
        };
        out.insert(id.clone(), fingerprint(&sql, stored_config(model), upstream));
    }
    (out, problems)
}

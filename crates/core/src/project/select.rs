//! dbt-style selection: `silver.*`, `+gold.mart_city_daily`, `ops.payout_backlog+`,
//! `silver`, a bare model name, `tag:name`, and `state:modified` (the models that differ
//! from what is published, see `changes`; `state:modified+` adds their downstream).

use std::collections::BTreeSet;

use super::{Model, Project};
use crate::ids::ModelId;

/// Whether a selector compares with what is published (`state:...`): the caller must then
/// say which models changed, with [`select_in`].
pub fn needs_state(selectors: &[String]) -> bool {
    selectors.iter().any(|s| s.contains("state:"))
}

/// The models `selectors` choose (all models when empty), in DAG order.
pub fn select(project: &Project, selectors: &[String]) -> Result<Vec<ModelId>, String> {
    select_in(project, selectors, None)
}

/// The same, with `modified`: the models `state:modified` selects (new or changed since
/// what is published).
pub fn select_in(
    project: &Project,
    selectors: &[String],
    modified: Option<&BTreeSet<ModelId>>,
) -> Result<Vec<ModelId>, String> {
    if selectors.is_empty() {
        return Ok(project.dag.order.clone());
    }
    let mut chosen = BTreeSet::new();
    for raw in selectors.iter().flat_map(|s| s.split([',', ' '])).filter(|s| !s.is_empty()) {
        let (up, rest) = raw.strip_prefix('+').map_or((false, raw), |r| (true, r));
        let (down, core) = rest.strip_suffix('+').map_or((false, rest), |r| (true, r));
        let base: Vec<&ModelId> = if let Some(state) = core.strip_prefix("state:") {
            if state != "modified" {
                return Err(format!("selector '{raw}': the state selector is state:modified"));
            }
            let Some(modified) = modified else {
                return Err(format!(
                    "selector '{raw}' compares with what is published: this command does not read it"
                ));
            };
            modified.iter().collect()
        } else {
            let base: Vec<&ModelId> =
                project.models.values().filter(|m| matches(m, core)).map(|m| &m.id).collect();
            if base.is_empty() {
                return Err(no_match(project, raw, core));
            }
            base
        };
        for id in base {
            chosen.insert(id.clone());
            if up {
                chosen.extend(project.dag.with_ancestors(id));
            }
            if down {
                chosen.extend(project.dag.with_descendants(id));
            }
        }
    }
    Ok(project.dag.order.iter().filter(|id| chosen.contains(*id)).cloned().collect())
}

/// Why `raw` selects nothing: the closest model name, or all of them.
fn no_match(project: &Project, raw: &str, core: &str) -> String {
    let names: Vec<String> = project.models.keys().map(ToString::to_string).collect();
    let best = names
        .iter()
        .map(|n| (strsim::jaro_winkler(n, core), n))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, n)) => format!("selector '{raw}' matches no model; did you mean '{n}'?"),
        None => format!("selector '{raw}' matches no model; models are: {}", names.join(", ")),
    }
}

fn matches(model: &Model, pattern: &str) -> bool {
    if let Some(tag) = pattern.strip_prefix("tag:") {
        return model.config.tags.iter().any(|t| t == tag);
    }
    let id = model.id.to_string();
    if pattern == model.id.layer.as_str() || pattern == model.id.name {
        return true;
    }
    glob(pattern, &id)
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|i| glob(tail, &text[head.len() + i..]))
        }
    }
}

//! The model graph: a stable topological order, and the up- and downstream of a model.

use std::collections::{BTreeMap, BTreeSet};

use super::Model;
use crate::ids::ModelId;

/// Models in dependency order. Ties break by layer, then name, so order is stable.
#[derive(Debug, Clone)]
pub struct Dag {
    pub order: Vec<ModelId>,
    upstream: BTreeMap<ModelId, Vec<ModelId>>,
    downstream: BTreeMap<ModelId, Vec<ModelId>>,
}

impl Dag {
    /// Orders the models, or returns a cycle as a path that starts and ends at one model.
    pub fn build(models: &BTreeMap<ModelId, Model>) -> Result<Self, Vec<ModelId>> {
        let mut upstream: BTreeMap<ModelId, Vec<ModelId>> = BTreeMap::new();
        let mut downstream: BTreeMap<ModelId, Vec<ModelId>> = BTreeMap::new();
        for (id, m) in models {
            upstream.entry(id.clone()).or_default();
            downstream.entry(id.clone()).or_default();
            for d in &m.deps {
                upstream.entry(id.clone()).or_default().push(d.target.clone());
                downstream.entry(d.target.clone()).or_default().push(id.clone());
            }
        }
        let mut indegree: BTreeMap<&ModelId, usize> = upstream.iter().map(|(k, v)| (k, v.len())).collect();
        let mut ready: BTreeSet<&ModelId> =
            indegree.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
        let mut order = Vec::new();
        while let Some(id) = ready.pop_first() {
            order.push(id.clone());
            for down in &downstream[id] {
                let n = indegree.get_mut(down).expect("every model has an indegree");
                *n -= 1;
                if *n == 0 {
                    ready.insert(down);
                }
            }
        }
        if order.len() < upstream.len() {
            let left: BTreeSet<&ModelId> =
                indegree.iter().filter(|(_, n)| **n > 0).map(|(k, _)| *k).collect();
            return Err(find_cycle(&upstream, &left));
        }
        Ok(Self { order, upstream, downstream })
    }

    pub fn upstream(&self, id: &ModelId) -> &[ModelId] {
        self.upstream.get(id).map_or(&[], Vec::as_slice)
    }

    /// `id` and everything it depends on, transitively.
    pub fn with_ancestors(&self, id: &ModelId) -> BTreeSet<ModelId> {
        walk(id, &self.upstream)
    }

    /// `id` and everything that depends on it, transitively.
    pub fn with_descendants(&self, id: &ModelId) -> BTreeSet<ModelId> {
        walk(id, &self.downstream)
    }
}

fn walk(start: &ModelId, edges: &BTreeMap<ModelId, Vec<ModelId>>) -> BTreeSet<ModelId> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start.clone()];
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) {
            stack.extend(edges.get(&id).into_iter().flatten().cloned());
        }
    }
    seen
}

fn find_cycle(upstream: &BTreeMap<ModelId, Vec<ModelId>>, left: &BTreeSet<&ModelId>) -> Vec<ModelId> {
    // Every model left has an upstream also left, so following them must revisit one.
    let start = *left.iter().next().expect("a cycle leaves models behind");
    let mut path = vec![start.clone()];
    loop {
        let last = path.last().expect("path is never empty");
        let next = upstream[last]
            .iter()
            .find(|u| left.contains(u))
            .expect("a model in a cycle has an upstream in it");
        if let Some(pos) = path.iter().position(|p| p == next) {
            let mut cycle: Vec<ModelId> = path[pos..].to_vec();
            // Report in the direction of data flow: a -> b means b reads a... keep "refers to".
            cycle.push(next.clone());
            return cycle;
        }
        path.push(next.clone());
    }
}

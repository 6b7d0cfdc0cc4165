//! The lineage graph as SVG: one column per layer (Bronze, Silver, Gold, ops), models
//! stacked in each, ordered by where their upstream models sit (fewer crossings), edges as
//! curves from an upstream's right side to a downstream's left. Each node links to the
//! model's page and carries its health as a class.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{ModelDoc, site::escape};
use crate::ids::{Layer, ModelId};

const NODE_W: f64 = 230.0;
const NODE_H: f64 = 34.0;
const GAP_Y: f64 = 12.0;
const GAP_X: f64 = 110.0;
const TOP: f64 = 40.0;
const LEFT: f64 = 20.0;

/// Where each node is drawn: (x, y) of its top-left corner.
pub fn layout(models: &[ModelDoc]) -> BTreeMap<ModelId, (f64, f64)> {
    let mut pos: BTreeMap<ModelId, (f64, f64)> = BTreeMap::new();
    for (col, layer) in Layer::ALL.iter().enumerate() {
        let mut nodes: Vec<&ModelDoc> = models.iter().filter(|m| m.id.layer == *layer).collect();
        // Barycentre of the upstream models already placed; then by name.
        let centre = |m: &ModelDoc| {
            let ys: Vec<f64> = m.upstream.iter().filter_map(|u| pos.get(u).map(|p| p.1)).collect();
            if ys.is_empty() { f64::MAX } else { ys.iter().sum::<f64>() / ys.len() as f64 }
        };
        nodes.sort_by(|a, b| centre(a).total_cmp(&centre(b)).then_with(|| a.id.cmp(&b.id)));
        let x = LEFT + col as f64 * (NODE_W + GAP_X);
        for (i, m) in nodes.iter().enumerate() {
            pos.insert(m.id.clone(), (x, TOP + i as f64 * (NODE_H + GAP_Y)));
        }
    }
    pos
}

/// The graph, with links relative to `page_dir` (`models/` from the index).
pub fn svg(models: &[ModelDoc], link_prefix: &str) -> String {
    let pos = layout(models);
    let height = pos.values().map(|p| p.1).fold(0.0, f64::max) + NODE_H + TOP;
    let width = LEFT * 2.0 + Layer::ALL.len() as f64 * NODE_W + (Layer::ALL.len() - 1) as f64 * GAP_X;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="lineage of {} models">"#,
        models.len()
    );
    for (col, layer) in Layer::ALL.iter().enumerate() {
        let x = LEFT + col as f64 * (NODE_W + GAP_X);
        let _ = write!(out, r#"<text class="layer" x="{x}" y="22">{}</text>"#, layer.as_str());
    }
    for m in models {
        let Some(&(x2, y2)) = pos.get(&m.id) else { continue };
        for up in &m.upstream {
            let Some(&(x1, y1)) = pos.get(up) else { continue };
            let (sx, sy, ex, ey) = (x1 + NODE_W, y1 + NODE_H / 2.0, x2, y2 + NODE_H / 2.0);
            let mid = (sx + ex) / 2.0;
            let _ = write!(
                out,
                r#"<path class="edge" data-from="{}" data-to="{}" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"/>"#,
                escape(&up.to_string()),
                escape(&m.id.to_string())
            );
        }
    }
    for m in models {
        let Some(&(x, y)) = pos.get(&m.id) else { continue };
        let id = escape(&m.id.to_string());
        let _ = write!(
            out,
            r#"<a class="node {health}" data-model="{id}" href="{link_prefix}{id}.html"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/><text x="{tx}" y="{ty}">{id}</text><title>{id}: {health}</title></a>"#,
            health = m.health.as_str(),
            tx = x + 10.0,
            ty = y + NODE_H / 2.0 + 5.0,
        );
    }
    out.push_str("</svg>");
    out
}

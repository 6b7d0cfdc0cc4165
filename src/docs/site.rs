//! Writing the site: `index.html` (the lineage graph, the models table, search),
//! `models/<layer>.<name>.html` (one page per model), and `assets/` (style, the search
//! script and its index as a script, so that search works from `file://` too).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{ModelDoc, SiteDoc, graph};

/// Text as HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn human_lag(d: chrono::Duration) -> String {
    let m = d.num_minutes();
    if m < 1 {
        "now".into()
    } else if m < 120 {
        format!("{m} min")
    } else if m < 48 * 60 {
        format!("{} h", m / 60)
    } else {
        format!("{} d", m / (24 * 60))
    }
}

fn page(title: &str, assets: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title><link rel="stylesheet" href="{assets}style.css"></head>
<body>{body}
<script src="{assets}search-index.js"></script><script src="{assets}site.js"></script></body></html>
"#,
        escape(title)
    )
}

fn header(site: &SiteDoc, home: &str) -> String {
    format!(
        r#"<header><a class="home" href="{home}index.html">{}</a><span class="meta">engine {} · generated {}</span>
<input id="search" type="search" placeholder="Search models and columns" autocomplete="off" aria-label="search models and columns">
<ul id="results" hidden></ul></header>"#,
        escape(&site.project),
        escape(&site.engine),
        site.generated_at.format("%Y-%m-%d %H:%M UTC")
    )
}

fn index(site: &SiteDoc) -> String {
    let mut rows = String::new();
    for m in &site.models {
        let last = m.runs.last();
        let _ = write!(
            rows,
            r#"<tr data-model="{id}"><td><a href="models/{id}.html">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td class="{h}">{h}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&m.materialized),
            escape(m.schedule.as_deref().unwrap_or("-")),
            m.lag.map(human_lag).unwrap_or_else(|| "-".into()),
            last.map(|r| escape(&r.outcome)).unwrap_or_else(|| "-".into()),
            last.map(|r| format!("{:.4}", r.cost_usd)).unwrap_or_else(|| "-".into()),
            id = escape(&m.id.to_string()),
            h = m.health.as_str(),
        );
    }
    let body = format!(
        r#"{}<main><h1>Lineage</h1><p class="legend"><span class="fresh">fresh</span> <span class="late">late</span> <span class="failed">failed</span> <span class="never">never published</span></p>
<div class="graph">{}</div>
<h2>Models</h2><table id="models"><thead><tr><th>model</th><th>materialized</th><th>schedule</th><th>freshness lag</th><th>health</th><th>last outcome</th><th>last cost USD</th></tr></thead><tbody>{rows}</tbody></table></main>"#,
        header(site, ""),
        graph::svg(&site.models, "models/")
    );
    page(&format!("{}: lineage", site.project), "assets/", &body)
}

/// Small bar charts of recent runs: one bar per run, scaled to the largest.
fn chart(title: &str, values: &[f64], unit: &str) -> String {
    let (w, h, bar) = (300.0, 60.0, 300.0 / values.len().max(1) as f64);
    let max = values.iter().copied().fold(0.0, f64::max);
    let mut out = format!(
        r#"<figure class="chart"><figcaption>{} <span>max {}</span></figcaption><svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        escape(title),
        format_value(max, unit),
        escape(title)
    );
    for (i, v) in values.iter().enumerate() {
        let bh = if max > 0.0 { (v / max * (h - 4.0)).max(1.0) } else { 1.0 };
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}"><title>{}</title></rect>"#,
            i as f64 * bar + 1.0,
            h - bh,
            (bar - 2.0).max(1.0),
            format_value(*v, unit)
        );
    }
    out.push_str("</svg></figure>");
    out
}

fn format_value(v: f64, unit: &str) -> String {
    match unit {
        "USD" => format!("${v:.6}"),
        "bytes" => crate::engine::human_bytes(v as u64),
        "s" => format!("{v:.1} s"),
        _ => format!("{v:.0}"),
    }
}

fn links(ids: &[crate::ids::ModelId]) -> String {
    if ids.is_empty() {
        return "<p class=\"none\">none</p>".into();
    }
    let items: Vec<String> = ids
        .iter()
        .map(|u| format!(r#"<li><a href="{id}.html">{id}</a></li>"#, id = escape(&u.to_string())))
        .collect();
    format!("<ul class=\"deps\">{}</ul>", items.join(""))
}

fn model_page(site: &SiteDoc, m: &ModelDoc) -> String {
    let id = escape(&m.id.to_string());
    let mut cols = String::new();
    for (name, ty) in &m.columns {
        let _ = write!(cols, "<tr><td>{}</td><td>{}</td></tr>", escape(name), escape(ty));
    }
    let mut runs = String::new();
    for r in m.runs.iter().rev() {
        let _ = write!(
            runs,
            "<tr><td>{}</td><td>{} / {}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.6}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.finished_at),
            escape(&r.window_start),
            escape(&r.window_end),
            if r.outcome.chars().all(|c| !c.is_lowercase()) { "failed" } else { "ok" },
            escape(&r.outcome),
            r.rows,
            crate::engine::human_bytes(r.bytes_scanned),
            r.millis as f64 / 1000.0,
            r.cost_usd,
            escape(&r.task),
            escape(r.fingerprint.as_ref().map_or("-", |f| f.short()))
        );
    }
    let charts = if m.runs.is_empty() {
        "<p class=\"none\">no runs recorded yet</p>".to_string()
    } else {
        let v = |f: fn(&crate::state::RunRecord) -> f64| m.runs.iter().map(f).collect::<Vec<f64>>();
        [
            chart("duration", &v(|r| r.millis as f64 / 1000.0), "s"),
            chart("rows", &v(|r| r.rows as f64), ""),
            chart("bytes scanned", &v(|r| r.bytes_scanned as f64), "bytes"),
            chart("cost", &v(|r| r.cost_usd), "USD"),
        ]
        .join("")
    };
    let config = [
        ("table", escape(&m.table)),
        ("materialized", escape(&m.materialized)),
        ("window", format!("{} (+{} back)", escape(&m.grain), m.lookback)),
        ("schedule", escape(m.schedule.as_deref().unwrap_or("none: runs on demand"))),
        ("partitioned by", escape(&m.partitions.join(", "))),
        ("tags", escape(&m.tags.join(", "))),
        ("health", format!(r#"<span class="{h}">{h}</span>"#, h = m.health.as_str())),
        ("data up to", escape(m.data_up_to.as_deref().unwrap_or("-"))),
        ("freshness lag", m.lag.map(human_lag).unwrap_or_else(|| "-".into())),
        ("current version", escape(m.current_version.as_deref().unwrap_or("never published"))),
        ("published at", escape(m.published_at.as_deref().unwrap_or("-"))),
        (
            "fingerprint",
            match (&m.fingerprint, &m.fingerprint_now) {
                (Some(f), Some(now)) if f != now => {
                    format!(
                        "{} (the model differs now: {}; see <code>strata plan</code>)",
                        escape(f),
                        escape(now)
                    )
                }
                (Some(f), _) => escape(f),
                (None, _) => "-".into(),
            },
        ),
        ("file", escape(&m.path)),
    ]
    .iter()
    .map(|(k, v)| format!("<tr><th>{k}</th><td>{v}</td></tr>"))
    .collect::<String>();
    let audits = if m.audits.is_empty() {
        "<p class=\"none\">none</p>".to_string()
    } else {
        format!(
            "<ul>{}</ul>",
            m.audits.iter().map(|a| format!("<li><code>{}</code></li>", escape(a))).collect::<String>()
        )
    };
    let versions = if m.kept_versions.is_empty() {
        "<p class=\"none\">none</p>".to_string()
    } else {
        format!(
            "<ul>{}</ul>",
            m.kept_versions
                .iter()
                .map(|v| format!("<li><code>{}</code></li>", escape(v)))
                .collect::<String>()
        )
    };
    let body = format!(
        r#"{header}<main class="model" data-model="{id}"><h1>{id}</h1><p class="description">{desc}</p>
<table class="config">{config}</table>
<section><h2>Columns</h2><p class="source">{source}</p><table id="columns"><thead><tr><th>column</th><th>type</th></tr></thead><tbody>{cols}</tbody></table></section>
<section class="deps"><div><h2>Upstream</h2>{up}</div><div><h2>Downstream</h2>{down}</div></section>
<section><h2>Audits</h2>{audits}</section>
<section><h2>Recent runs</h2><div class="charts">{charts}</div>
<table id="runs"><thead><tr><th>finished</th><th>window</th><th>outcome</th><th>rows</th><th>scanned</th><th>seconds</th><th>cost USD</th><th>task</th><th>fingerprint</th></tr></thead><tbody>{runs}</tbody></table></section>
<section><h2>Versions kept</h2>{versions}</section>
<section><h2>SQL</h2><details open><summary>local engine</summary><pre><code>{local}</code></pre></details><details><summary>Athena</summary><pre><code>{athena}</code></pre></details></section></main>"#,
        header = header(site, "../"),
        desc = escape(&m.description),
        source = if m.columns_published {
            "from the published version"
        } else {
            "planned from the SQL (not published yet)"
        },
        up = links(&m.upstream),
        down = links(&m.downstream),
        local = escape(m.sql_local.trim()),
        athena = escape(m.sql_athena.trim()),
    );
    page(&format!("{}: {}", site.project, m.id), "../assets/", &body)
}

/// What search looks through: every model and column, with the page each is on.
fn search_index(site: &SiteDoc) -> String {
    let mut items = Vec::new();
    for m in &site.models {
        let id = m.id.to_string();
        let href = format!("models/{id}.html");
        items.push(serde_json::json!({"kind": "model", "name": id, "model": id, "href": href}));
        for (c, ty) in &m.columns {
            items.push(
                serde_json::json!({"kind": "column", "name": c, "type": ty, "model": id, "href": href}),
            );
        }
    }
    format!("window.STRATA_SEARCH = {};\n", serde_json::Value::Array(items))
}

const STYLE: &str = r#"
:root { --fresh: #2e7d32; --late: #ef6c00; --failed: #c62828; --never: #757575; --ink: #1f2328; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #fff; }
header { position: sticky; top: 0; z-index: 2; display: flex; gap: 16px; align-items: center; padding: 10px 20px; background: #f6f8fa; border-bottom: 1px solid var(--line); }
header .home { font-weight: 600; color: var(--ink); text-decoration: none; }
header .meta { color: #57606a; font-size: 12px; }
#search { margin-left: auto; width: 320px; padding: 6px 10px; border: 1px solid var(--line); border-radius: 6px; }
#results { position: absolute; right: 20px; top: 44px; width: 420px; max-height: 60vh; overflow: auto; margin: 0; padding: 4px 0; list-style: none; background: #fff; border: 1px solid var(--line); border-radius: 6px; box-shadow: 0 4px 12px rgba(0,0,0,.1); }
#results li a { display: block; padding: 4px 12px; color: var(--ink); text-decoration: none; }
#results li a:hover { background: #f0f3f6; }
#results .kind { color: #57606a; font-size: 12px; }
main { padding: 10px 20px 40px; }
h1 { font-size: 22px; } h2 { font-size: 16px; margin-top: 24px; }
.graph { overflow: auto; border: 1px solid var(--line); border-radius: 8px; }
svg.lineage .layer { font-weight: 600; fill: #57606a; text-transform: uppercase; font-size: 12px; }
svg.lineage .edge { fill: none; stroke: #8c959f; stroke-width: 1.2; }
svg.lineage .node rect { fill: #fff; stroke-width: 2; }
svg.lineage .node text { font-size: 12px; fill: var(--ink); }
svg.lineage .node.fresh rect { stroke: var(--fresh); } svg.lineage .node.late rect { stroke: var(--late); }
svg.lineage .node.failed rect { stroke: var(--failed); fill: #fdecea; } svg.lineage .node.never rect { stroke: var(--never); stroke-dasharray: 4 3; }
svg.lineage .node.dim { opacity: .25; }
.legend span { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; color: #fff; }
.fresh { color: var(--fresh); } .late { color: var(--late); } .failed { color: var(--failed); } .never { color: var(--never); }
.legend .fresh { background: var(--fresh); color: #fff; } .legend .late { background: var(--late); color: #fff; }
.legend .failed { background: var(--failed); color: #fff; } .legend .never { background: var(--never); color: #fff; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
table.config th { color: #57606a; font-weight: 500; }
section.deps { display: flex; gap: 60px; }
.charts { display: flex; flex-wrap: wrap; gap: 20px; }
figure.chart { margin: 0; } figure.chart rect { fill: #0969da; } figcaption span { color: #57606a; font-size: 12px; margin-left: 8px; }
pre { background: #f6f8fa; padding: 12px; border-radius: 6px; overflow: auto; max-height: 480px; }
.none { color: #57606a; }
"#;

const SCRIPT: &str = r#"
(function () {
  var input = document.getElementById('search');
  var results = document.getElementById('results');
  var index = window.STRATA_SEARCH || [];
  var base = document.querySelector('main.model') ? '../' : '';
  function show(q) {
    q = q.trim().toLowerCase();
    results.innerHTML = '';
    var rows = document.querySelectorAll('#models tbody tr');
    var nodes = document.querySelectorAll('svg.lineage .node');
    if (!q) {
      results.hidden = true;
      rows.forEach(function (r) { r.hidden = false; });
      nodes.forEach(function (n) { n.classList.remove('dim'); });
      return;
    }
    var hits = index.filter(function (i) { return i.name.toLowerCase().indexOf(q) >= 0; }).slice(0, 50);
    var models = {};
    hits.forEach(function (h) {
      models[h.model] = true;
      var li = document.createElement('li');
      var a = document.createElement('a');
      a.href = base + h.href;
      a.className = 'hit';
      a.dataset.kind = h.kind;
      a.textContent = h.kind === 'model' ? h.name : h.name + ' (' + h.type + ')';
      var k = document.createElement('span');
      k.className = 'kind';
      k.textContent = h.kind === 'model' ? ' model' : ' column in ' + h.model;
      a.appendChild(k);
      li.appendChild(a);
      results.appendChild(li);
    });
    results.hidden = hits.length === 0;
    rows.forEach(function (r) { r.hidden = !models[r.dataset.model]; });
    nodes.forEach(function (n) { n.classList.toggle('dim', !models[n.dataset.model]); });
  }
  if (input) {
    input.addEventListener('input', function () { show(input.value); });
    var q = new URLSearchParams(location.search).get('q');
    if (q) { input.value = q; show(q); }
  }
})();
"#;

/// Writes the site under `out`; returns the files written (relative to `out`).
pub fn write(site: &SiteDoc, out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<(PathBuf, String)> = vec![
        ("index.html".into(), index(site)),
        ("assets/style.css".into(), STYLE.to_string()),
        ("assets/site.js".into(), SCRIPT.to_string()),
        ("assets/search-index.js".into(), search_index(site)),
    ];
    for m in &site.models {
        files.push((PathBuf::from(format!("models/{}.html", m.id)), model_page(site, m)));
    }
    for (rel, text) in &files {
        let path = out.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a directory"))?;
        std::fs::write(&path, text)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

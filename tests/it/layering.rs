//! The layering ARCHITECTURE.md states, checked: each top-level module of `src/` and of the
//! core crate (`crates/core/src/`, re-exported by `src/lib.rs`) names (`crate::x`,
//! `use crate::{x, ...}`) only modules listed before it there, so the list is an order
//! without cycles and stays true as the code grows. That the core names no module of
//! `src/` the compiler checks too (it is a crate of its own); this test checks the order
//! within each.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::repo;

/// The modules in the order of ARCHITECTURE.md's "Layering" block: a line's modules are
/// separated by `,` or `→`, its comment is after a run of spaces.
fn layering() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let block = text.split("## Layering").nth(1).expect("a Layering section");
    let mut order = Vec::new();
    for line in block.lines().skip_while(|l| !l.starts_with("    ")).take_while(|l| l.starts_with("    ")) {
        let names = line.trim().split("   ").next().unwrap_or_default();
        let mut names = names.to_string();
        while let (Some(a), Some(b)) = (names.find('('), names.find(')')) {
            names.replace_range(a..=b, "");
        }
        order.extend(names.split([',', '→']).map(str::trim).filter(|n| !n.is_empty()).map(String::from));
    }
    order
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate modules a source file names.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let head = item.trim().split("::").next().unwrap_or_default();
                out.insert(head.to_string());
            }
        } else {
            out.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    out
}

#[test]
fn every_module_uses_only_modules_above_it_in_the_layering() {
    let order = layering();
    let mut files = Vec::new();
    for dir in ["src", "crates/core/src"] {
        let src = repo().join(dir);
        let mut found = Vec::new();
        rust_files(&src, &mut found);
        files.extend(found.into_iter().map(|f| (src.clone(), f)));
    }
    let mut modules = BTreeSet::new();
    let mut wrong = Vec::new();
    for (src, file) in files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if ["lib", "main"].contains(&module.as_str()) {
            continue;
        }
        modules.insert(module.clone());
        let Some(level) = order.iter().position(|m| *m == module) else {
            wrong.push(format!("src/{module} is not in ARCHITECTURE.md's layering"));
            continue;
        };
        for used in named(&std::fs::read_to_string(&file).unwrap()) {
            match order.iter().position(|m| *m == used) {
                Some(l) if l > level => {
                    wrong.push(format!("{} uses {used}, listed after {module}", rel.display()))
                }
                _ => {}
            }
        }
    }
    assert!(modules.len() > 20, "the modules were found: {modules:?}");
    assert!(order.len() >= modules.len(), "the layering lists every module: {order:?}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

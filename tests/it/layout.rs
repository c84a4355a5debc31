//! The source layout keeps its imports pointing one way: no top-level module imports one that
//! imports it back, and no file imports a sibling file that imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// A file's code without comments and without its unit tests (tests may use anything).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module names that follow `prefix` in `code` (`crate::config::Job` → `config`).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            // `crate::` itself, not the end of a longer path such as `restore_drill::crate::`.
            *at == 0 || !code[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            code[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The imports between top-level modules, and between sibling files of one folder.
fn graphs(src: &Path) -> (Graph, Graph) {
    let mut modules = Graph::new();
    let mut siblings = Graph::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap();
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
            continue;
        }
        let code = code(&file);
        let module = &parts[0];
        let uses = modules.entry(module.clone()).or_default();
        uses.extend(
            names_after(&code, "crate::")
                .into_iter()
                .filter(|m| m != module),
        );
        if parts.len() == 2 && parts[1] != "mod" {
            let folder = src.join(module);
            let names: BTreeSet<String> = std::fs::read_dir(&folder)
                .unwrap()
                .map(|e| {
                    e.unwrap()
                        .file_name()
                        .to_string_lossy()
                        .trim_end_matches(".rs")
                        .to_string()
                })
                .filter(|n| n != "mod")
                .collect();
            let me = format!("{module}/{}", parts[1]);
            let mut used = names_after(&code, "super::");
            used.extend(names_after(&code, &format!("crate::{module}::")));
            let uses = siblings.entry(me.clone()).or_default();
            uses.extend(
                used.into_iter()
                    .filter(|n| names.contains(n) && *n != parts[1])
                    .map(|n| format!("{module}/{n}")),
            );
        }
    }
    (modules, siblings)
}

/// A cycle in the graph, as the path that closes it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (modules, siblings) = graphs(&src);
    assert!(
        modules.contains_key("drill") && modules["drill"].contains("verify"),
        "the import graph was not read: {modules:?}"
    );
    if let Some(cycle) = find_cycle(&modules) {
        panic!("top-level modules import each other: {}", cycle.join(" → "));
    }
    if let Some(cycle) = find_cycle(&siblings) {
        panic!(
            "files of one folder import each other: {}",
            cycle.join(" → ")
        );
    }
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn a_family_of_data_imports_no_other_family() {
    let kinds = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kinds");
    let families: Vec<String> = std::fs::read_dir(&kinds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        families.contains(&"delta".to_string()) && families.contains(&"postgres".to_string()),
        "the families were not read: {families:?}"
    );
    for family in &families {
        for file in rust_files(&kinds.join(family)) {
            let code = code(&file);
            for other in families.iter().filter(|o| *o != family) {
                assert!(
                    !code.contains(&format!("kinds::{other}::"))
                        && !code.contains(&format!("super::{other}::")),
                    "{} imports the family `{other}`; what families share belongs in src/kinds/",
                    file.display()
                );
            }
        }
    }
}

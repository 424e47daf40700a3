//! The floors of `shared/src`, held against the code: every top-level module
//! stands on one floor, its `crate::` paths point only to its own floor or
//! lower ones, and no set of modules imports each other in a circle. Test
//! modules (`#[cfg(test)]`) are left out: a test may reach anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// From the ground up. The README's architecture section names the same.
const FLOORS: &[(&str, &[&str])] = &[
    ("ground", &["types", "error", "telemetry"]),
    (
        "infrastructure",
        &[
            "secrets",
            "sealing",
            "tls",
            "outbound",
            "ssh_identity",
            "ssh_masters",
            "config",
            "db",
            "kv",
            "webhooks",
            "ratelimit",
            "dispatch",
        ],
    ),
    ("audit log", &["audit_log"]),
    ("identity", &["auth"]),
    ("state", &["state"]),
    ("http kit", &["http"]),
    (
        "capabilities",
        &[
            "jobs",
            "catalog",
            "customers",
            "servers",
            "users",
            "tenants",
            "audit",
            "certificates",
            "provision",
            "subscriptions",
            "orders",
            "engine",
            "login",
            "demo",
        ],
    ),
    ("openapi", &["openapi"]),
    ("composition", &["app"]),
    ("edges", &["lambda", "cli", "lib"]),
];

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn modules_stand_on_their_floors_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &src, &mut files);
    assert!(files.len() > 20, "read {} files under {}", files.len(), src.display());
    let graph = imports(&files);
    let problems = check(&graph);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_names_a_cycle_and_an_upward_import() {
    let files = vec![
        ("db.rs".to_string(), "use crate::error::AppResult;".to_string()),
        ("error.rs".to_string(), "fn f() { crate::db::constraint_field(\"x\"); }".to_string()),
        ("http/mod.rs".to_string(), "use crate::{orders::api, state::AppState};".to_string()),
        ("orders/mod.rs".to_string(), "use crate::http::routes::ApiRoutes;".to_string()),
    ];
    let problems = check(&imports(&files));
    let text = problems.join("\n");
    assert!(text.contains("error -> db"), "{text}");
    assert!(text.contains("http -> orders"), "{text}");
    assert!(text.contains("cycle: db -> error -> db") || text.contains("cycle: error -> db -> error"), "{text}");
}

#[test]
fn comments_strings_and_test_modules_are_not_imports() {
    let source = r##"
        // use crate::app::Function;
        /* crate::app */
        const SQL: &str = "crate::app";
        const RAW: &str = r#"crate::app"#;
        fn f<'a>(x: &'a str) -> char { '"' }
        use crate::error::AppError;
        #[cfg(test)]
        mod tests { use crate::app::all_routes; fn g() { let _ = "}"; } }
        use crate::db::DbPool;
    "##;
    let targets: BTreeSet<String> = imports(&[("kv.rs".to_string(), source.to_string())])
        .get("kv")
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(targets, BTreeSet::from(["db".to_string(), "error".to_string()]));
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            // The CLI binary is its own crate root; it reaches the library by name.
            if !rel.starts_with("bin/") {
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
}

/// module -> imported module -> files that import it.
fn imports(files: &[(String, String)]) -> Graph {
    let mut graph = Graph::new();
    for (rel, text) in files {
        let top = rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs").to_string();
        let code = without_test_items(&strip_comments_and_strings(text));
        for target in crate_paths(&code) {
            if target != top {
                graph.entry(top.clone()).or_default().entry(target).or_default().insert(rel.clone());
            }
        }
        graph.entry(top).or_default();
    }
    graph
}

fn check(graph: &Graph) -> Vec<String> {
    let floor_of = |module: &str| FLOORS.iter().position(|(_, modules)| modules.contains(&module));
    let mut problems = Vec::new();
    for (module, targets) in graph {
        let Some(floor) = floor_of(module) else {
            problems.push(format!("{module}: on no floor; add it to FLOORS (and the README)"));
            continue;
        };
        for (target, files) in targets {
            match floor_of(target) {
                Some(target_floor) if target_floor > floor => problems.push(format!(
                    "{module} -> {target}: the {} floor imports the {} floor above it (in {})",
                    FLOORS[floor].0,
                    FLOORS[target_floor].0,
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                )),
                _ => {}
            }
        }
    }
    for cycle in cycles(graph) {
        problems.push(format!("cycle: {}", cycle.join(" -> ")));
    }
    problems
}

/// One named cycle per strongly connected component of more than one module.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        if let Some(path) = path_back(graph, start) {
            seen.extend(path.iter().cloned());
            found.push(path);
        }
    }
    found
}

/// A shortest path from `start` back to itself, if there is one.
fn path_back(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut previous: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(&node).map(|t| t.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            if next == start {
                let mut path = vec![start.to_string()];
                let mut at = node.clone();
                while at != start {
                    path.insert(1, at.clone());
                    at = previous[&at].clone();
                }
                path.push(start.to_string());
                return Some(path);
            }
            if !previous.contains_key(&next) {
                previous.insert(next.clone(), node.clone());
                queue.push_back(next);
            }
        }
    }
    None
}

/// The first segment of every `crate::` path, `use crate::{a::b, c}` included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        // `mpanel_crate::` or `my_crate::` are not ours.
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (c == ',' && depth == 1) {
                    out.extend(first_ident(&item));
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            out.extend(first_ident(rest));
        }
    }
    out
}

fn first_ident(text: &str) -> Option<String> {
    let ident: String = text.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

/// Comments and string/char literals become spaces (a `"}"` would upset the
/// brace matching, a commented-out import is not one).
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let rest: String = chars[j..].iter().collect();
            let len = rest.find(&closing).map_or(rest.chars().count(), |end| rest[..end].chars().count());
            i = j + len + closing.chars().count();
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('x' or an escape), not a lifetime.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_')
}

/// Drops every item marked `#[cfg(test)]` (a module, a function, a `use`).
fn without_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let brace = item.find('{');
        let semicolon = item.find(';');
        let end = match (brace, semicolon) {
            (Some(b), Some(s)) if s < b => s + 1,
            (Some(b), _) => {
                let mut depth = 0;
                let mut end = item.len();
                for (offset, c) in item[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + offset + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(s)) => s + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

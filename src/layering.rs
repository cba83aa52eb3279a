//! The layers, checked: every `crate::…` path in `src/` must point to a module its
//! own module may depend on. See ARCHITECTURE.md for the picture.
//!
//! | module                          | may use                                        |
//! |---------------------------------|------------------------------------------------|
//! | `domain`                        | nothing                                        |
//! | `config`                        | `domain`                                       |
//! | `store`, `mail`, `security`, `social` | `config`, `domain`                       |
//! | `service`, `error`              | the above                                      |
//! | `graphql`                       | `service`, `error`, `config`, `domain`         |
//! | `http`                          | `graphql`, `service`, `error`, `config`, `domain` |
//! | `app`, `cli` (composition root) | everything                                     |
//!
//! `clock` and `metrics` are leaves every layer may use (time and counters are
//! injected everywhere); `telemetry` sits with the adapters. Reading the source as
//! text keeps the check free of a parser dependency: comments and string literals are
//! blanked first, then each `crate::` path (also inside `use crate::{…}` groups) is
//! resolved to its first segment.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Modules every layer may use.
const LEAVES: &[&str] = &["clock", "metrics"];

/// The allowed table: module → modules it may use (besides itself and `LEAVES`).
fn allowed(module: &str) -> Option<&'static [&'static str]> {
    const ADAPTER: &[&str] = &["config", "domain"];
    const SERVICE: &[&str] = &[
        "error",
        "service",
        "store",
        "mail",
        "security",
        "social",
        "telemetry",
        "config",
        "domain",
    ];
    Some(match module {
        "domain" | "clock" | "metrics" => &[],
        "config" => &["domain"],
        "store" | "mail" | "security" | "social" | "telemetry" => ADAPTER,
        "service" | "error" => SERVICE,
        "graphql" => &["service", "error", "config", "domain"],
        "http" => &["graphql", "service", "error", "config", "domain"],
        "app" | "cli" | "lib" | "main" | "layering" => return None,
        _ => &[],
    })
}

/// Blanks comments, string and char literals so only code is searched.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && !is_ident(chars.get(i.wrapping_sub(1)))
        {
            // raw string r"…" / r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
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
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next.is_some_and(|n| n != '\\') && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
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

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The first segment of every `crate::` path in `code`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if is_ident(before.as_ref()) || before == Some('$') {
            continue; // `$crate::` in a macro, or part of a longer name
        }
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            for path in top_level_items(group) {
                found.insert(path);
            }
        } else {
            let name: String = trimmed.chars().take_while(|c| is_ident(Some(c))).collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The first segment of each comma-separated item of a `{…}` group (its text after `{`).
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                at_item_start = true;
                continue;
            }
            _ => {}
        }
        if depth == 0 && at_item_start {
            if is_ident(Some(&c)) {
                current.push(c);
                continue;
            }
            if !current.is_empty() {
                items.push(std::mem::take(&mut current));
                at_item_start = false;
            }
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items.retain(|i| i != "self");
    items
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/store/users.rs` → `store`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file);
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

/// Module → the modules it uses, read from the tree under `src`.
fn dependency_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let module = module_of(src, &file);
        let source = std::fs::read_to_string(&file).unwrap_or_default();
        for used in crate_paths(&code_only(&source)) {
            if used != module {
                let shown = file
                    .strip_prefix(src)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                graph
                    .entry(module.clone())
                    .or_default()
                    .entry(used)
                    .or_default()
                    .insert(shown);
            }
        }
    }
    graph
}

fn violations(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<String> {
    let mut found = Vec::new();
    for (module, uses) in graph {
        let Some(allowed) = allowed(module) else {
            continue;
        };
        for (used, files) in uses {
            if !allowed.contains(&used.as_str()) && !LEAVES.contains(&used.as_str()) {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                found.push(format!(
                    "{module} -> {used} (in {}): {module} may use only {allowed:?} and {LEAVES:?}",
                    files.join(", ")
                ));
            }
        }
    }
    found
}

#[test]
fn every_import_follows_the_layer_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = dependency_graph(&src);
    assert!(graph.contains_key("service"), "read nothing from {src:?}");
    if std::env::var_os("PRINT_LAYERS").is_some() {
        for (module, uses) in &graph {
            let used: Vec<&str> = uses.keys().map(String::as_str).collect();
            println!("{module} -> {}", used.join(", "));
        }
    }
    let found = violations(&graph);
    assert!(
        found.is_empty(),
        "imports across the layer table:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_check_sees_grouped_and_nested_imports() {
    let code = code_only(
        "use crate::{config::{A, B}, security::jwt, self};\n\
         // crate::mail in a comment\n\
         let s = \"crate::store in a string\";\n\
         fn f() { crate::domain::x(); $crate::http::y(); }",
    );
    let found: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(found, ["config", "domain", "security"]);
}

#[test]
fn the_check_fails_the_old_cycle() {
    let mut graph = BTreeMap::new();
    let mut uses = BTreeMap::new();
    uses.insert(
        "security".to_owned(),
        BTreeSet::from(["config/keys.rs".to_owned()]),
    );
    graph.insert("config".to_owned(), uses);
    let found = violations(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("config -> security (in config/keys.rs)"));
}

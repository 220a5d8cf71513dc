//! The module layering of `docs/architecture.md`, kept true.
//!
//! The document's table names every module of `src/`, its layer and the
//! modules it may import. These tests read the sources, collect every
//! `crate::` path outside comments (grouped `use crate::{...}` items and
//! paths written inline included, names re-exported at the crate root
//! resolved to their module), and fail when a module imports one the table
//! does not allow, when a module is missing from the table, or when the
//! table lets the engine import the reader, the service, the client or the
//! binary.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// What the engine must never import: the dump reader, the service, the
/// client and the binary.
const OUTSIDE_THE_ENGINE: [&str; 5] = ["dump", "http", "jobs", "client", "cli"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One row of the document's table.
#[derive(Debug)]
struct Row {
    layer: String,
    may_import: BTreeSet<String>,
}

/// The table rows: `| `module` | layer | what it is | may import |`.
fn documented() -> BTreeMap<String, Row> {
    let text = fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if cells.len() != 4 {
            continue;
        }
        let name = cells[0].trim();
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        let may_import = cells[3]
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_owned())
            .filter(|m| !m.is_empty() && m != "nothing")
            .collect();
        let row = Row {
            layer: cells[1].trim().to_owned(),
            may_import,
        };
        assert!(
            rows.insert(name.to_owned(), row).is_none(),
            "{name} listed twice"
        );
    }
    rows
}

/// The top-level module a source file belongs to (`main.rs` and `cli/` are
/// the binary, `cli`).
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(root().join("src")).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    let first = first.to_str().unwrap();
    match first.strip_suffix(".rs") {
        Some("main") => "cli".to_owned(),
        Some(name) => name.to_owned(),
        None => first.to_owned(),
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The text of a source file without its comments (doc comments included),
/// so that a doc link is not taken for an import.
fn without_comments(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let mut cut = line.len();
        let mut in_string = false;
        let bytes = line.as_bytes();
        for i in 0..bytes.len() {
            match bytes[i] {
                b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
                b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                    cut = i;
                    break;
                }
                _ => {}
            }
        }
        code.push_str(&line[..cut]);
        code.push('\n');
    }
    code
}

/// The first segment of every path after `prefix` (`crate::` in the
/// library, `batch_export::` in the binary), grouped items included.
fn first_segments(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if c == ',' && depth == 1 {
                    items.push(std::mem::take(&mut item));
                } else {
                    item.push(c);
                }
            }
            items.push(item);
            for item in items {
                found.extend(identifier(item.trim()));
            }
        } else {
            found.extend(identifier(rest));
        }
    }
    found
}

fn identifier(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Names the crate root re-exports (`pub use module::{A, B}`), by the
/// module they come from.
fn root_reexports() -> BTreeMap<String, String> {
    let lib = without_comments(&fs::read_to_string(root().join("src/lib.rs")).unwrap());
    let mut names = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = item.trim().rsplit("::").next().unwrap().trim();
            if !name.is_empty() {
                names.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    names
}

/// The modules each top-level module imports, from its code.
fn actual_imports(code_of: impl Fn(&Path) -> String) -> BTreeMap<String, BTreeSet<String>> {
    let reexports = root_reexports();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&file);
        let code = without_comments(&code_of(&file));
        let mut segments = first_segments(&code, "crate::");
        if module == "cli" {
            segments.extend(first_segments(&code, "batch_export::"));
        }
        let entry = imports.entry(module.clone()).or_default();
        for segment in segments {
            // A capitalised name is an item re-exported at the root.
            let target = match reexports.get(&segment) {
                Some(from) => from.clone(),
                None => segment,
            };
            if target != module && target != "lib" {
                entry.insert(target);
            }
        }
    }
    imports.remove("lib");
    imports
}

fn violations(
    documented: &BTreeMap<String, Row>,
    imports: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut found = Vec::new();
    for (module, used) in imports {
        let Some(row) = documented.get(module) else {
            found.push(format!("{module} is not in docs/architecture.md"));
            continue;
        };
        for target in used.difference(&row.may_import) {
            found.push(format!(
                "{module} imports {target}, which docs/architecture.md does not allow"
            ));
        }
    }
    found
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn every_module_imports_only_what_the_architecture_allows() {
    let found = violations(&documented(), &actual_imports(read));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_table_lists_only_modules_that_exist_and_what_they_import() {
    let imports = actual_imports(read);
    for (module, row) in documented() {
        assert!(
            imports.contains_key(&module),
            "{module} has no source in src/"
        );
        // A permission no code uses is a claim the document cannot back.
        let unused: Vec<&String> = row.may_import.difference(&imports[&module]).collect();
        assert!(
            unused.is_empty(),
            "{module} is allowed {unused:?} but does not import it"
        );
    }
}

#[test]
fn no_engine_module_imports_the_reader_the_service_the_client_or_the_cli() {
    let rows = documented();
    let engine: Vec<(&String, &Row)> = rows.iter().filter(|(_, r)| r.layer == "engine").collect();
    for name in [
        "model", "validate", "pivot", "naming", "archive", "verify", "options", "blob",
    ] {
        assert!(
            engine.iter().any(|(m, _)| *m == name),
            "{name} is not in the engine layer"
        );
    }
    for (module, row) in engine {
        for outside in OUTSIDE_THE_ENGINE {
            assert!(
                !row.may_import.contains(outside),
                "the engine's {module} may import {outside}"
            );
        }
    }
}

#[test]
fn the_scanner_finds_grouped_inline_and_reexported_imports_and_skips_comments() {
    let sources: BTreeMap<&str, &str> = [
        ("src/pivot.rs", "use crate::dump::fields;\n"),
        (
            "src/naming.rs",
            "use crate::{hash::HashMap, jobs::{Job, Jobs}};\n",
        ),
        ("src/validate.rs", "fn f() { crate::http::serve() }\n"),
        ("src/blob.rs", "use crate::Dump;\n"),
        (
            "src/options.rs",
            "//! See [`crate::client`].\nlet url = \"a//b\"; // crate::cli\n",
        ),
    ]
    .into_iter()
    .collect();
    let mut rows = documented();
    for (path, code) in &sources {
        let module = module_of(&root().join(path));
        let imports = actual_imports(|file| {
            if file == root().join(path) {
                code.to_string()
            } else {
                read(file)
            }
        });
        let found = violations(&rows, &imports);
        let expected = match module.as_str() {
            "pivot" => Some("pivot imports dump"),
            "naming" => Some("naming imports jobs"),
            "validate" => Some("validate imports http"),
            "blob" => Some("blob imports dump"),
            _ => None,
        };
        match expected {
            Some(message) => assert!(
                found.iter().any(|f| f.starts_with(message)),
                "{path}: {found:?}"
            ),
            None => assert!(
                !found.iter().any(|f| f.starts_with(&module)),
                "{path}: comments are not imports: {found:?}"
            ),
        }
    }
    rows.remove("pivot");
    let found = violations(&rows, &actual_imports(read));
    assert!(
        found.contains(&"pivot is not in docs/architecture.md".to_owned()),
        "{found:?}"
    );
}

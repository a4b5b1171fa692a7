//! Tests of the source tree's layout, so that the module map in `lib.rs` cannot drift from the
//! code: the map's `uses` column must be exactly the `crate::` paths each module's code names
//! (comments and tests aside), and those arrows must form no circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Arrows = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level module a file belongs to (`None` for `lib.rs` and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The modules named as `crate::<module>` in code: comments and the test module left out.
fn named(text: &str) -> BTreeSet<String> {
    let code = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 {
                out.insert(rest[..end].to_owned());
            }
        }
    }
    out
}

/// Each top-level module -> the other top-level modules its code names.
fn arrows(src: &Path) -> Arrows {
    let mut out = Arrows::new();
    for file in sources(src) {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let used = out.entry(module.clone()).or_default();
        used.extend(named(&text).into_iter().filter(|m| *m != module));
    }
    out
}

/// The map's rows: `//! | [`module`] | owns | uses |`.
fn map(lib: &str) -> Arrows {
    let mut out = Arrows::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! | [`") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').collect();
        let (Some(name), Some(uses)) = (cells.first(), cells.get(2)) else {
            continue;
        };
        let name = name.trim().trim_end_matches("`]").to_owned();
        let uses = uses
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        out.insert(name, uses);
    }
    out
}

/// A circle among the arrows, if there is one.
fn circle(arrows: &Arrows) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        arrows: &Arrows,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut found = path[i..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in arrows.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, arrows, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    arrows
        .keys()
        .find_map(|m| visit(m, arrows, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn the_module_map_lists_every_arrow_of_the_code() {
        let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
        let mut code = arrows(&src());
        let mut listed = map(&lib);
        // A module without arrows is listed with an empty cell.
        code.retain(|_, uses| !uses.is_empty());
        listed.retain(|_, uses| !uses.is_empty());
        assert_eq!(
            listed, code,
            "the module map in lib.rs (left) against the code (right)"
        );
    }

    #[test]
    fn no_module_imports_in_a_circle() {
        assert_eq!(circle(&arrows(&src())), None);
        let mut looped = Arrows::new();
        looped.insert("a".into(), ["b".to_owned()].into());
        looped.insert("b".into(), ["a".to_owned()].into());
        assert_eq!(
            circle(&looped),
            Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
        );
    }

    #[test]
    fn comments_and_tests_are_not_arrows() {
        let text = "//! see [`crate::exec`]\nuse crate::plan::{Planned, Step};\n\
                    fn f() { crate::report::human(); }\n#[cfg(test)]\nmod tests {\n    use crate::state;\n}\n";
        let want: BTreeSet<String> = ["plan".to_owned(), "report".to_owned()].into();
        assert_eq!(named(text), want);
    }
}

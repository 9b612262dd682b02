//! The modules of `crates/optsync/src` import each other without cycles: read from the
//! source's own `crate::…`, `super::…` and `self::…` paths (test modules left out), at the
//! granularity of the top-level modules and of the modules inside each folder module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            source_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `console/pages.rs` → `[console, pages]`; `console/mod.rs` → `[console]`; `lib.rs` → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut segs: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        segs.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segs.pop();
    }
    segs
}

/// The code without comments and without its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a use tree (or an inline path) starting at `s` names: `a::{b, c::d}` →
/// `[a, b]`, `[a, c, d]`.
fn tree(s: &[u8], i: &mut usize) -> Vec<Vec<String>> {
    let ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    ws(i);
    if s.get(*i) == Some(&b'{') {
        *i += 1;
        let mut out = Vec::new();
        loop {
            ws(i);
            match s.get(*i) {
                None => return out,
                Some(b'}') => {
                    *i += 1;
                    return out;
                }
                _ => out.extend(tree(s, i)),
            }
            // Past an `as name` to the next entry.
            while *i < s.len() && s[*i] != b',' && s[*i] != b'}' {
                *i += 1;
            }
            if s.get(*i) == Some(&b',') {
                *i += 1;
            }
        }
    }
    let start = *i;
    while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_' || s[*i] == b'*') {
        *i += 1;
    }
    let ident = String::from_utf8_lossy(&s[start..*i]).into_owned();
    if ident.is_empty() {
        return vec![Vec::new()];
    }
    if s[*i..].starts_with(b"::") {
        *i += 2;
        return tree(s, i)
            .into_iter()
            .map(|mut rest| {
                rest.insert(0, ident.clone());
                rest
            })
            .collect();
    }
    vec![vec![ident]]
}

/// Every module path a file's code names, resolved against the file's own module.
fn references(code: &str, own: &[String]) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let starts = ["crate::", "super::", "self::"].map(|p| code.match_indices(p));
    for (at, _) in starts.into_iter().flatten() {
        let before = at.checked_sub(1).map(|j| b[j]);
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':') {
            continue;
        }
        let mut base: Vec<String> = if code[at..].starts_with("crate::") {
            Vec::new()
        } else {
            own.to_vec()
        };
        let mut i = at;
        while code[i..].starts_with("super::") {
            base.pop();
            i += "super::".len();
        }
        for prefix in ["crate::", "self::"] {
            if code[i..].starts_with(prefix) {
                i += prefix.len();
            }
        }
        for rest in tree(b, &mut i) {
            out.push(base.iter().cloned().chain(rest).collect());
        }
    }
    out
}

/// Edges between the top-level modules, and between the children of each folder module.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    source_files(src, &mut files);
    let folders: BTreeSet<String> = files
        .iter()
        .map(|f| module_path(src, f))
        .filter(|m| m.len() >= 2)
        .map(|m| m[0].clone())
        .collect();
    let mut g = Graph::new();
    for f in &files {
        let own = module_path(src, f);
        let Some(top) = own.first() else { continue };
        for r in references(&code(&std::fs::read_to_string(f).unwrap()), &own) {
            let Some(to) = r.first() else { continue };
            if to != top {
                g.entry(top.clone()).or_default().insert(to.clone());
            } else if own.len() >= 2 && r.len() >= 2 && r[1] != own[1] && folders.contains(top) {
                g.entry(format!("{top}::{}", own[1]))
                    .or_default()
                    .insert(format!("{top}::{}", r[1]));
            }
        }
    }
    g
}

/// A cycle through `start`, if there is one.
fn cycle_from(g: &Graph, start: &str) -> Option<Vec<String>> {
    fn walk(
        g: &Graph,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(g, start, start, &mut path, &mut BTreeSet::new()).then(|| {
        path.push(start.to_string());
        path
    })
}

fn cycles(g: &Graph) -> Vec<String> {
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    let mut out = Vec::new();
    for start in g.keys() {
        if let Some(c) = cycle_from(g, start) {
            let members: BTreeSet<String> = c.iter().cloned().collect();
            if !found.contains(&members) {
                out.push(c.join(" -> "));
                found.push(members);
            }
        }
    }
    out
}

#[test]
fn the_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(
        g.get("cli").is_some_and(|t| t.contains("app")) && g.contains_key("console::pages"),
        "the reader finds imports: {g:?}"
    );
    let found = cycles(&g);
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn the_reader_sees_a_cycle() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycles(&g)[0], "a -> b -> c -> a");
    let code = "use crate::{app::App, console::{auth, views as v}};\nuse super::pages::when;";
    let refs = references(code, &["console".into(), "tenant".into()]);
    let refs: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(
        refs,
        [
            "app::App",
            "console::auth",
            "console::views",
            "console::pages::when"
        ]
    );
}

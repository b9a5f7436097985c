//! STYLE.md rule 1: module import rules, checked on the source text (cheap, no compiler).
//! Every `.rs` file under `src/` must start with a `//!` header, and each layer may only
//! reach the layers below it (see the diagram in `src/lib.rs`):
//! - `ldap/`, `kdc/`: not `store`, not `redb`, not `backend` (except `ldap` may use the value
//!   type `crate::backend::Scope`);
//! - `directory/`: not `store`, `ldap` (except the message type `directory::relay` carries),
//!   `kdc`, `redb`;
//! - `model/`: not `tokio`, `redb`, `store`, `backend`, `directory`, `ldap`, `kdc`;
//! - `store/`: not `backend`, `directory`, `ldap`, `kdc`;
//! - `mfa/`: not `ldap`, `kdc`, `directory`, `backend`, `store`, `redb` (front-end neutral);
//! - `dns/`: none of `store`, `backend`, `directory`, `ldap`, `kdc`, `redb` (a leaf front-end);
//! - only `store/` names `redb` in code.
//!
//! The check strips comments and string literals, expands `use` trees (`use crate::{a::b,
//! c::{d, e}}`), resolves `super::`/`self::` against the file's module path, and then looks at
//! every path in the code, so grouped imports and fully qualified calls are both caught.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// A module-level rule: files under `src/<module>/` must not reach `banned` paths.
struct Rule {
    module: &'static str,
    /// absolute crate paths (`crate::store`) or extern crate names (`redb`)
    banned: &'static [&'static str],
    /// exact paths allowed even though a banned prefix covers them
    allowed: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        module: "ldap",
        banned: &["crate::store", "crate::backend", "crate::kdc", "redb"],
        allowed: &["crate::backend::Scope"],
    },
    Rule {
        module: "kdc",
        banned: &["crate::store", "crate::backend", "crate::ldap", "redb"],
        allowed: &[],
    },
    Rule {
        module: "directory",
        banned: &["crate::store", "crate::ldap", "crate::kdc", "redb"],
        // `directory::relay` carries LDAP messages between the front-end and a relaying
        // backend (connector mode) without looking into them.
        allowed: &["crate::ldap::proto::LdapMessage"],
    },
    Rule {
        module: "model",
        banned: &[
            "tokio",
            "redb",
            "crate::store",
            "crate::backend",
            "crate::directory",
            "crate::ldap",
            "crate::kdc",
        ],
        allowed: &[],
    },
    Rule {
        module: "mfa",
        banned: &[
            "crate::ldap",
            "crate::kdc",
            "crate::directory",
            "crate::backend",
            "crate::store",
            "redb",
        ],
        allowed: &[],
    },
    Rule {
        module: "dns",
        banned: &[
            "crate::store",
            "crate::backend",
            "crate::directory",
            "crate::ldap",
            "crate::kdc",
            "redb",
        ],
        allowed: &[],
    },
    Rule {
        module: "cluster",
        banned: &["crate::ldap", "crate::kdc", "crate::directory", "redb"],
        // `cluster::shared` implements the lockout and replay-cache storage traits on etcd.
        allowed: &[
            "crate::directory::lockout::FailureCounter",
            "crate::directory::lockout::Lockout",
            "crate::directory::lockout::Outcome",
            "crate::kdc::replay::ReplayError",
            "crate::kdc::replay::ReplayKey",
            "crate::kdc::replay::ReplayStore",
        ],
    },
    Rule {
        module: "store",
        banned: &[
            "crate::backend",
            "crate::directory",
            "crate::ldap",
            "crate::kdc",
            "crate::cluster",
            "etcd_client",
        ],
        allowed: &[],
    },
];

#[test]
fn every_source_file_starts_with_a_module_header() {
    let mut missing = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.starts_with("//!") {
            missing.push(file.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` header on their first line:\n{}",
        missing.join("\n")
    );
}

#[test]
fn layers_only_reach_down() {
    let mut violations = Vec::new();
    for rule in RULES {
        let dir = src().join(rule.module);
        assert!(dir.is_dir(), "{} is missing", dir.display());
        for file in rust_files(&dir) {
            let module = module_path(&file);
            let code = strip(&std::fs::read_to_string(&file).unwrap());
            for path in paths(&code, &module) {
                if rule.allowed.iter().any(|a| path == *a) {
                    continue;
                }
                if let Some(b) = rule.banned.iter().find(|b| covers(b, &path)) {
                    violations.push(format!("{}: `{path}` ({b} is off limits)", rel(&file)));
                }
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn only_the_store_names_redb() {
    let mut violations = Vec::new();
    for file in rust_files(&src()) {
        if file.starts_with(src().join("store")) {
            continue;
        }
        let module = module_path(&file);
        let code = strip(&std::fs::read_to_string(&file).unwrap());
        for path in paths(&code, &module) {
            if covers("redb", &path) {
                violations.push(format!("{}: `{path}`", rel(&file)));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "redb named outside src/store:\n{}",
        violations.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests: it must see through grouping, comments, strings and `super`.

#[test]
fn checker_expands_use_trees_and_resolves_super() {
    let code = strip(
        r##"
//! crate::store in a doc comment is fine
use crate::{backend::{Scope, Backend}, model::Dn};
use super::super::store::Store as S; // crate::kdc in a comment
use redb::{Database, TableDefinition};
/* crate::ldap
   in a block comment /* nested crate::kdc */ */
fn f() -> u32 {
    let s = "crate::store::Store in a string";
    let r = r#"crate::directory"#;
    let c = '"';
    crate::directory::access::check(s);
    self::inner::g();
    'outer: loop { break 'outer; }
    7
}
"##,
    );
    let module = vec!["ldap".to_string(), "ops".to_string(), "search".to_string()];
    let mut got = paths(&code, &module);
    got.sort();
    got.dedup();
    assert_eq!(
        got,
        [
            "crate::backend::Backend",
            "crate::backend::Scope",
            "crate::directory::access::check",
            "crate::ldap::ops::search::inner::g",
            "crate::ldap::store::Store",
            "crate::model::Dn",
            "redb::Database",
            "redb::TableDefinition",
        ]
    );
    // `super::super` from ldap/ops/search.rs is crate::ldap: above resolves to crate::ldap::store,
    // and from a file one level higher it would reach crate::store.
    // Inline modules: `super` inside `mod tests` is the file's module.
    let code = strip(
        "mod tests { use super::super::store::X; let b = br\"crate::kdc\"; } fn g() { ::redb::Y; }",
    );
    let module = vec!["ldap".to_string(), "codec".to_string()];
    let mut got = paths(&code, &module);
    got.sort();
    assert_eq!(got, ["crate::ldap::store::X", "redb::Y"]);
    let module = vec!["ldap".to_string(), "request".to_string()];
    assert!(paths(&strip("use super::super::store::Store;"), &module)
        .contains(&"crate::store::Store".to_string()));
}

#[test]
fn checker_allows_exactly_scope() {
    let ldap = &RULES[0];
    assert_eq!(ldap.module, "ldap");
    let flagged = |p: &str| !ldap.allowed.contains(&p) && ldap.banned.iter().any(|b| covers(b, p));
    assert!(!flagged("crate::backend::Scope"));
    assert!(flagged("crate::backend::Backend"));
    assert!(flagged("crate::backend::Scope::Base")); // only the type itself is allowed in
    assert!(flagged("crate::backend"));
    assert!(!flagged("crate::backendx::Y"));
    assert!(flagged("redb::Database"));
    assert!(!flagged("redbx::Y"));
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rel(file: &Path) -> String {
    file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(file)
        .display()
        .to_string()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The module path of a file under `src/` (`src/ldap/ops/mod.rs` → `["ldap", "ops"]`).
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

/// Whether banned prefix `b` covers `path` at a segment boundary.
fn covers(b: &str, path: &str) -> bool {
    path == b || path.starts_with(&format!("{b}::"))
}

/// The source without comments, string literals and char literals (each replaced by a space
/// or an empty literal), so that only code remains.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
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
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && !ident_before(b, i)
        {
            // raw string r"..." / r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '"') or a lifetime/label ('a, 'outer).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else {
                // one UTF-8 character then a quote
                let ch = src[i + 1..].chars().next();
                ch.and_then(|ch| {
                    let after = i + 1 + ch.len_utf8();
                    (b.get(after) == Some(&b'\'')).then_some(after)
                })
            };
            match end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            // Copy one whole UTF-8 character.
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Whether the byte before `i` continues an identifier (so `r` there is not a raw-string
/// prefix); `br"…"` counts as a raw byte string.
fn ident_before(b: &[u8], i: usize) -> bool {
    let word = |x: &u8| x.is_ascii_alphanumeric() || *x == b'_';
    match i.checked_sub(1).map(|p| b[p]) {
        Some(b'b') => i >= 2 && word(&b[i - 2]),
        Some(p) => word(&p),
        None => false,
    }
}

/// Every path in `code`, absolute where it can be resolved: `use` trees are expanded,
/// `crate::`, `super::` and `self::` are resolved against `module`; other multi-segment
/// paths (extern crates such as `redb::Database`, or local ones) are kept as written.
fn paths(code: &str, module: &[String]) -> Vec<String> {
    let tokens = tokenize(code);
    // (path, module it appears in): inline `mod name { … }` blocks extend the file's module.
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let here = |inline: &[(String, usize)]| {
        let mut m = module.to_vec();
        m.extend(inline.iter().map(|(n, _)| n.clone()));
        m
    };
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((tokens[i + 1].clone(), depth));
            }
            _ => {}
        }
        let path_start = i == 0
            || tokens[i - 1] != "::"
            || (i >= 2 && !is_ident(&tokens[i - 2]) && tokens[i - 2] != ">");
        if tokens[i] == "use" && path_start {
            let mut j = i + 1;
            let mut prefix = Vec::new();
            let mut leaves = Vec::new();
            expand_use(&tokens, &mut j, &mut prefix, &mut leaves);
            let m = here(&inline);
            out.extend(leaves.into_iter().map(|p| (p, m.clone())));
            i = j;
            continue;
        }
        if is_ident(&tokens[i]) && path_start {
            let mut segs = vec![tokens[i].clone()];
            let mut j = i + 1;
            while j + 1 < tokens.len() && tokens[j] == "::" && is_ident(&tokens[j + 1]) {
                segs.push(tokens[j + 1].clone());
                j += 2;
            }
            if segs.len() > 1 {
                out.push((segs.join("::"), here(&inline)));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out.into_iter()
        .filter_map(|(p, m)| resolve(&p, &m))
        .collect()
}

/// Parses one use tree starting at `tokens[*j]`, pushing every leaf path (with `prefix`).
fn expand_use(tokens: &[String], j: &mut usize, prefix: &mut Vec<String>, out: &mut Vec<String>) {
    let depth = prefix.len();
    if tokens.get(*j).is_some_and(|t| t == "::") {
        *j += 1; // leading `::` (2015-style absolute path)
    }
    loop {
        match tokens.get(*j).map(String::as_str) {
            Some("{") => {
                *j += 1;
                loop {
                    if tokens.get(*j).is_some_and(|t| t == "}") {
                        *j += 1;
                        break;
                    }
                    expand_use(tokens, j, prefix, out);
                    match tokens.get(*j).map(String::as_str) {
                        Some(",") => *j += 1,
                        Some("}") => {
                            *j += 1;
                            break;
                        }
                        _ => break,
                    }
                }
                break;
            }
            Some("*") => {
                *j += 1;
                out.push(prefix.join("::"));
                break;
            }
            Some(t) if is_ident(t) => {
                prefix.push(t.to_string());
                *j += 1;
                if tokens.get(*j).is_some_and(|t| t == "::") {
                    *j += 1;
                    continue;
                }
                // `self` inside a group means the prefix itself.
                if prefix.last().is_some_and(|l| l == "self") && prefix.len() > 1 {
                    prefix.pop();
                }
                out.push(prefix.join("::"));
                if tokens.get(*j).is_some_and(|t| t == "as") {
                    *j += 2;
                }
                break;
            }
            _ => break,
        }
    }
    prefix.truncate(depth);
    if depth == 0 {
        // end of the whole `use` statement
        while tokens.get(*j).is_some_and(|t| t != ";") {
            *j += 1;
        }
    }
}

/// `crate::…` as is; `super::`/`self::` against `module`; other paths as written.
fn resolve(path: &str, module: &[String]) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String> = module.to_vec();
    let mut rest = &segs[..];
    match rest.first() {
        Some(&"crate") => return Some(path.to_string()),
        Some(&"self") => rest = &rest[1..],
        Some(&"super") => {
            while rest.first() == Some(&"super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return Some(path.to_string()),
    }
    let mut full = vec!["crate".to_string()];
    full.extend(base);
    full.extend(rest.iter().map(|s| s.to_string()));
    Some(full.join("::"))
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers (including keywords), `::`, and single punctuation characters.
fn tokenize(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(code[i..end].to_string());
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            chars.next();
            out.push("::".into());
        } else if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    out
}

//! The conf file front end: YAML → serde with every error reported as
//! `file:line:column: field.path: message`.
//!
//! serde's derived impls stop at the first error, so [`from_str`] deserializes repeatedly: each
//! failure is recorded, the failing node is pruned from a working copy of the tree, and the next
//! attempt finds the next error. Unknown keys are recorded without failing a pass.
//!
//! Conf types must not use `#[serde(flatten)]`: a flattened struct is read as a plain map, which
//! skips the unknown-key check. Untagged and internally tagged enums work, but errors inside them
//! are reported at the enum's node with serde's generic message.

mod de;
mod error;
mod message;
mod path;
#[cfg(test)]
mod tests;
mod tree;

use path::{Seg, Trail};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use tree::Node;

/// After this many failed passes the rest of the file is not examined.
const MAX_ATTEMPTS: usize = 500;

/// A position in a conf file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One problem in a conf file, printed as `file:line:column: path: message`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The field path (`routes[2].policy.allow[0]`); empty for problems with the whole file.
    pub path: String,
    /// What was found and what was expected.
    pub message: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfError {}

/// The parsed file, kept to place errors found after deserialization (semantic checks).
#[derive(Debug, Clone)]
pub struct Document {
    file: String,
    root: Node,
}

impl Document {
    /// The file name errors are reported against.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Position of the node at a field path like `routes[2].policy.allow[0].groups` (map keys
    /// joined by `.`, sequence indices in brackets). A path that does not exist (a missing
    /// field) resolves to its nearest existing ancestor; the empty path to where the document's
    /// content starts.
    pub fn locate(&self, path: &str) -> Location {
        let mut node = &self.root;
        for seg in path::parse(path) {
            match node.child(&seg) {
                Some(child) => node = child,
                None => break,
            }
        }
        node.loc
    }

    /// A problem found after parsing, placed at `path` in this file.
    pub fn error(&self, path: &str, message: impl Into<String>) -> ConfError {
        let loc = self.locate(path);
        ConfError {
            file: self.file.clone(),
            line: loc.line,
            column: loc.column,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// Parses `src` (read from `file`, used in messages) and deserializes it into `T`.
///
/// On failure returns every error found, sorted by position. An empty file reads as an empty
/// map, so a conf whose fields all have defaults may be empty.
pub fn from_str<T: DeserializeOwned>(
    src: &str,
    file: &str,
) -> Result<(T, Document), Vec<ConfError>> {
    let parsed = tree::parse(src, file)?;
    let doc = Document {
        file: file.to_string(),
        root: parsed.root,
    };
    let mut found = Found::new(file);
    for e in parsed.errors {
        found.push(e);
    }

    // Pruned children per parent path: errors they cause are consequences, not new problems.
    let mut pruned: HashMap<Vec<Seg>, Vec<Seg>> = HashMap::new();
    let mut typos: HashSet<(Vec<Seg>, &'static str)> = HashSet::new();
    // Cloned on the first failure; a valid file is read straight from the document.
    let mut work: Option<Node> = None;
    for _ in 0..MAX_ATTEMPTS {
        let ctx = de::Ctx::default();
        let root = de::De::new(work.as_ref().unwrap_or(&doc.root), &Trail::Root, &ctx);
        let result = root.seed(PhantomData::<T>);
        for e in ctx.unknown.into_inner() {
            found.push_de(e, doc.root.loc);
        }
        typos.extend(ctx.typos.into_inner());
        let e = match result {
            Ok(value) if found.is_empty() => return Ok((value, doc)),
            Ok(_) => return Err(found.into_sorted()),
            Err(e) => e,
        };
        let path = e.at.as_ref().map(|at| at.path.clone()).unwrap_or_default();
        let consequence = match e.missing_field {
            Some(field) => {
                typos.contains(&(path.clone(), field))
                    || pruned
                        .get(&path)
                        .is_some_and(|children| children.contains(&Seg::Key(field.to_string())))
            }
            None => pruned.contains_key(&path),
        };
        if !consequence {
            found.push_de(e, doc.root.loc);
        }
        let work = work.get_or_insert_with(|| doc.root.clone());
        let Some((last, parent)) = path.split_last() else {
            return Err(found.into_sorted());
        };
        if !work.remove(&path) {
            return Err(found.into_sorted());
        }
        pruned
            .entry(parent.to_vec())
            .or_default()
            .push(last.clone());
    }
    let last = found.last_loc().unwrap_or(doc.root.loc);
    found.push(ConfError {
        file: file.to_string(),
        line: last.line,
        column: last.column,
        path: String::new(),
        message: "too many errors; stopping".into(),
    });
    Err(found.into_sorted())
}

/// Errors found so far, without repeats: every pass reports the unknown keys again.
struct Found {
    file: String,
    seen: HashSet<ConfError>,
    errors: Vec<ConfError>,
}

impl Found {
    fn new(file: &str) -> Self {
        Found {
            file: file.to_string(),
            seen: HashSet::new(),
            errors: Vec::new(),
        }
    }

    fn push(&mut self, e: ConfError) {
        if self.seen.insert(e.clone()) {
            self.errors.push(e);
        }
    }

    fn push_de(&mut self, e: error::Error, root: Location) {
        let (loc, path) = match e.at {
            Some(at) => (at.loc, path::render(&at.path)),
            None => (root, String::new()),
        };
        self.push(ConfError {
            file: self.file.clone(),
            line: loc.line,
            column: loc.column,
            path,
            message: e.message,
        });
    }

    fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    fn last_loc(&self) -> Option<Location> {
        self.errors.last().map(|e| Location {
            line: e.line,
            column: e.column,
        })
    }

    fn into_sorted(mut self) -> Vec<ConfError> {
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors
    }
}

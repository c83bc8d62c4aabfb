//! The marked node tree: every YAML node with its position, built from yaml-rust2's events.
//!
//! Map entries and sequence items keep the key text and original index they had in the file, so
//! errors found after nodes were pruned from a working copy still name the field the user wrote.

use super::path::{self, Seg};
use super::{ConfError, Location};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deeper nesting than this is refused so that the recursive deserializer cannot overflow the
/// stack on a hostile file.
const MAX_DEPTH: usize = 128;

/// Alias expansion clones nodes; this bounds the total so that "billion laughs" files fail fast.
const MAX_NODES: usize = 2_000_000;

/// Maps with more entries than this detect duplicate keys with a hash map instead of a scan.
const SCAN_LIMIT: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub loc: Location,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Item>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Item {
    /// Position in the file's sequence, kept when earlier items are pruned.
    pub index: usize,
    pub node: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    /// Always a scalar: the builder refuses collection keys.
    pub key: Node,
    pub value: Node,
}

impl Entry {
    pub fn key_text(&self) -> &str {
        match &self.key.kind {
            Kind::Scalar { text, .. } => text,
            // The builder only stores scalar keys.
            Kind::Seq(_) | Kind::Map(_) => "",
        }
    }
}

impl Node {
    pub fn empty_map(loc: Location) -> Self {
        Node {
            loc,
            kind: Kind::Map(Vec::new()),
        }
    }

    pub fn child(&self, seg: &Seg) -> Option<&Node> {
        match (&self.kind, seg) {
            (Kind::Map(entries), Seg::Key(k)) => {
                entries.iter().find(|e| e.key_text() == k).map(|e| &e.value)
            }
            (Kind::Seq(items), Seg::Index(i)) => items
                .binary_search_by_key(i, |it| it.index)
                .ok()
                .map(|pos| &items[pos].node),
            _ => None,
        }
    }

    fn child_mut(&mut self, seg: &Seg) -> Option<&mut Node> {
        match (&mut self.kind, seg) {
            (Kind::Map(entries), Seg::Key(k)) => entries
                .iter_mut()
                .find(|e| e.key_text() == k)
                .map(|e| &mut e.value),
            (Kind::Seq(items), Seg::Index(i)) => match items.binary_search_by_key(i, |it| it.index)
            {
                Ok(pos) => Some(&mut items[pos].node),
                Err(_) => None,
            },
            _ => None,
        }
    }

    /// Removes the node at `path` (relative to `self`); false when there is no such node.
    pub fn remove(&mut self, path: &[Seg]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for seg in parents {
            match node.child_mut(seg) {
                Some(child) => node = child,
                None => return false,
            }
        }
        match (&mut node.kind, last) {
            (Kind::Map(entries), Seg::Key(k)) => {
                let before = entries.len();
                entries.retain(|e| e.key_text() != k);
                entries.len() != before
            }
            (Kind::Seq(items), Seg::Index(i)) => {
                match items.binary_search_by_key(i, |it| it.index) {
                    Ok(pos) => {
                        items.remove(pos);
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }

    fn count(&self) -> usize {
        match &self.kind {
            Kind::Scalar { .. } => 1,
            Kind::Seq(items) => 1 + items.iter().map(|it| it.node.count()).sum::<usize>(),
            Kind::Map(entries) => 1 + entries.iter().map(|e| 1 + e.value.count()).sum::<usize>(),
        }
    }
}

/// A parsed file: the root node and the errors that did not stop parsing (duplicate keys).
pub(super) struct Parsed {
    pub root: Node,
    pub errors: Vec<ConfError>,
}

enum Frame {
    Seq {
        loc: Location,
        anchor: usize,
        items: Vec<Item>,
    },
    Map {
        loc: Location,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<Key>,
        /// Key positions, built once the map outgrows a linear duplicate scan.
        seen: Option<HashMap<String, Location>>,
    },
}

enum Key {
    Valid(Node),
    /// A collection used as a key: already reported; its value is dropped.
    Refused,
}

fn location(m: Marker) -> Location {
    Location {
        line: m.line(),
        column: m.col() + 1,
    }
}

struct Builder<'f> {
    file: &'f str,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    root: Option<Node>,
    errors: Vec<ConfError>,
}

/// Parses `src` into a node tree. Fatal problems (syntax errors, several documents, hostile
/// nesting or alias expansion) return a single error; duplicate keys are collected and parsing
/// goes on with the first occurrence.
pub(super) fn parse(src: &str, file: &str) -> Result<Parsed, Vec<ConfError>> {
    let mut b = Builder {
        file,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
        errors: Vec::new(),
    };
    let mut parser = Parser::new_from_str(src);
    let mut documents = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            vec![b.error_at(location(*e.marker()), String::new(), e.info().to_string())]
        })?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(vec![b.error_at(
                        location(mark),
                        String::new(),
                        "a conf file holds a single YAML document; found a second one".into(),
                    )]);
                }
            }
            event => b.event(event, mark).map_err(|e| vec![e])?,
        }
    }
    // A file without content (nothing, comments, a bare `---`) is an empty map, so that confs
    // whose fields all have defaults may be empty.
    let root = match b.root.take() {
        Some(node) if !is_empty_scalar(&node) => node,
        Some(node) => Node::empty_map(node.loc),
        None => Node::empty_map(Location { line: 1, column: 1 }),
    };
    Ok(Parsed {
        root,
        errors: b.errors,
    })
}

impl Builder<'_> {
    fn error_at(&self, loc: Location, path: String, message: String) -> ConfError {
        ConfError {
            file: self.file.to_string(),
            line: loc.line,
            column: loc.column,
            path,
            message,
        }
    }

    /// The path of the collection at `depth` in the stack of open collections; `stack.len()`
    /// gives the path of the node about to be attached to the innermost one.
    fn path_to(&self, depth: usize) -> Vec<Seg> {
        self.stack[..depth]
            .iter()
            .map(|frame| match frame {
                Frame::Seq { items, .. } => Seg::Index(items.len()),
                Frame::Map { key, .. } => match key {
                    Some(Key::Valid(k)) => Seg::Key(scalar_text(k).to_string()),
                    _ => Seg::Key(String::new()),
                },
            })
            .collect()
    }

    fn event(&mut self, event: Event, mark: Marker) -> Result<(), ConfError> {
        let loc = location(mark);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.finish(
                    Node {
                        loc,
                        kind: Kind::Scalar { text, plain },
                    },
                    anchor,
                )?;
            }
            Event::Alias(id) => {
                let Some(anchored) = self.anchors.get(&id) else {
                    return Err(self.error_at(loc, String::new(), "unknown alias".into()));
                };
                let mut node = anchored.clone();
                node.loc = loc;
                self.nodes += node.count();
                if self.nodes > MAX_NODES {
                    return Err(self.error_at(
                        loc,
                        String::new(),
                        "aliases expand to too many nodes".into(),
                    ));
                }
                self.finish(node, 0)?;
            }
            Event::SequenceStart(anchor, _tag) => {
                self.open(loc)?;
                self.stack.push(Frame::Seq {
                    loc,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _tag) => {
                self.open(loc)?;
                self.stack.push(Frame::Map {
                    loc,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    seen: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { loc, anchor, items }) => (
                        Node {
                            loc,
                            kind: Kind::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        loc,
                        anchor,
                        entries,
                        ..
                    }) => {
                        // A block map's start marker sits one column right of its first key.
                        let loc = entries.first().map_or(loc, |e| loc.min(e.key.loc));
                        (
                            Node {
                                loc,
                                kind: Kind::Map(entries),
                            },
                            anchor,
                        )
                    }
                    None => return Ok(()),
                };
                self.finish(node, anchor)?;
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn open(&mut self, loc: Location) -> Result<(), ConfError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error_at(
                loc,
                path::render(&self.path_to(self.stack.len())),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// Attaches a complete node to the innermost open collection (or makes it the root).
    fn finish(&mut self, mut node: Node, anchor: usize) -> Result<(), ConfError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.error_at(node.loc, String::new(), "too many nodes".into()));
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let depth = self.stack.len().saturating_sub(1);
        // (position, last path segment, message) of a problem that drops this node.
        let mut problem: Option<(Location, Option<Seg>, String)> = None;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => {
                let index = items.len();
                items.push(Item { index, node });
            }
            Some(Frame::Map {
                entries, key, seen, ..
            }) => match key.take() {
                None => {
                    if matches!(node.kind, Kind::Scalar { .. }) {
                        *key = Some(Key::Valid(node));
                    } else {
                        *key = Some(Key::Refused);
                        let message = format!(
                            "a map key must be a string, found {}",
                            super::message::describe(&node)
                        );
                        problem = Some((node.loc, None, message));
                    }
                }
                Some(Key::Refused) => {}
                Some(Key::Valid(k)) => {
                    let text = scalar_text(&k);
                    let first = if entries.len() < SCAN_LIMIT {
                        entries
                            .iter()
                            .find(|e| e.key_text() == text)
                            .map(|e| e.key.loc)
                    } else {
                        let seen = seen.get_or_insert_with(|| {
                            entries
                                .iter()
                                .map(|e| (e.key_text().to_string(), e.key.loc))
                                .collect()
                        });
                        let first = seen.get(text).copied();
                        if first.is_none() {
                            seen.insert(text.to_string(), k.loc);
                        }
                        first
                    };
                    if let Some(first) = first {
                        let message = format!(
                            "duplicate key `{text}` (first defined at line {})",
                            first.line
                        );
                        problem = Some((k.loc, Some(Seg::Key(text.to_string())), message));
                    } else {
                        // Values that start on a later line (block collections, empty values,
                        // block scalars) are reported at their key, where the reader looks.
                        if node.loc.line != k.loc.line || is_empty_scalar(&node) {
                            node.loc = k.loc;
                        }
                        entries.push(Entry {
                            key: k,
                            value: node,
                        });
                    }
                }
            },
        }
        if let Some((loc, last, message)) = problem {
            let mut path = self.path_to(depth);
            path.extend(last);
            let error = self.error_at(loc, path::render(&path), message);
            self.errors.push(error);
        }
        Ok(())
    }
}

fn scalar_text(node: &Node) -> &str {
    match &node.kind {
        Kind::Scalar { text, .. } => text,
        Kind::Seq(_) | Kind::Map(_) => "",
    }
}

fn is_empty_scalar(node: &Node) -> bool {
    matches!(&node.kind, Kind::Scalar { text, plain: true } if text.is_empty())
}

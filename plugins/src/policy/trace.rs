//! The human-readable trace `explain` returns: one line per rule, combinator and test, with
//! what the request showed and whether it matched.
//!
//! ```text
//! deny[0]: deny rule => no match
//!   deny[0].path_prefix: path is at or below any of /admin => no match (path /docs)
//! allow[0]: allow rule `staff` => match [decides]
//!   allow[0].email_domain: email domain is any of example.com => match (email `a@example.com`)
//! ```

use super::criteria::Ctx;
use super::decision::{Decision, RuleKind};
use super::eval::{Step, Tracer};
use crate::conf::join_path;
use std::fmt;

/// One line of an evaluation trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// Nesting level (0 for top-level rules).
    pub depth: usize,
    /// Field path of the rule or test in the policy (`allow[1].and[0].groups`).
    pub path: String,
    /// The test in words.
    pub test: String,
    /// What the request, caller or clock showed, for tests.
    pub observed: Option<String>,
    pub matched: bool,
    /// `decides` on the deciding rule; `not reached` on rules after it.
    pub note: Option<&'static str>,
}

pub(crate) const DECIDES: &str = "decides";
pub(crate) const NOT_REACHED: &str = "not reached: an earlier rule decided";

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.matched { "match" } else { "no match" };
        write!(
            f,
            "{:indent$}{}: {} => {verdict}",
            "",
            self.path,
            self.test,
            indent = self.depth * 2
        )?;
        if let Some(o) = &self.observed {
            write!(f, " ({o})")?;
        }
        if let Some(n) = self.note {
            write!(f, " [{n}]")?;
        }
        Ok(())
    }
}

/// The tracer of `explain`.
#[derive(Default)]
pub(crate) struct Trace {
    pub lines: Vec<TraceLine>,
    /// Lines of the steps currently open.
    open: Vec<usize>,
}

fn named(what: &str, name: &Option<std::sync::Arc<str>>) -> String {
    match name {
        Some(n) => format!("{what} `{n}`"),
        None => what.to_string(),
    }
}

impl Trace {
    /// Marks the deciding rule, or adds the default deny.
    pub(crate) fn finish(&mut self, decision: &Decision) {
        let rule = &decision.rule;
        if rule.kind == RuleKind::Default {
            self.lines.push(TraceLine {
                depth: 0,
                path: "default".into(),
                test: "no deny or allow rule matched: deny".into(),
                observed: None,
                matched: true,
                note: Some(DECIDES),
            });
            return;
        }
        let path = format!("{}[{}]", rule.kind.as_str(), rule.index);
        if let Some(line) = self
            .lines
            .iter_mut()
            .find(|l| l.depth == 0 && l.path == path)
        {
            line.note = Some(DECIDES);
        }
    }
}

impl Tracer for Trace {
    const FULL: bool = true;

    fn enter(&mut self, step: Step<'_>, ctx: &Ctx<'_>) -> usize {
        let parent = self
            .open
            .last()
            .map_or("", |i| self.lines[*i].path.as_str());
        let (path, test, observed, note) = match step {
            Step::Rule {
                kind,
                index,
                rule,
                reached,
            } => (
                format!("{}[{index}]", kind.as_str()),
                named(&format!("{} rule", kind.as_str()), &rule.name),
                None,
                (!reached).then_some(NOT_REACHED),
            ),
            Step::Child { index, rule } => (
                join_path(parent, &format!("[{index}]")),
                named("rule", &rule.name),
                None,
                None,
            ),
            Step::And => (join_path(parent, "and"), "all of".into(), None, None),
            Step::Or => (join_path(parent, "or"), "any of".into(), None, None),
            Step::Not => (join_path(parent, "not"), "not all of".into(), None, None),
            Step::Leaf(c) => (
                join_path(parent, c.key()),
                c.to_string(),
                Some(c.observed(ctx)),
                None,
            ),
        };
        self.lines.push(TraceLine {
            depth: self.open.len(),
            path,
            test,
            observed,
            matched: false,
            note,
        });
        let token = self.lines.len() - 1;
        self.open.push(token);
        token
    }

    fn exit(&mut self, token: usize, matched: bool) {
        self.open.pop();
        if let Some(line) = self.lines.get_mut(token) {
            line.matched = matched;
        }
    }
}

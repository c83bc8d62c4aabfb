//! Evaluation: deny rules in order (the first match denies), then allow rules in order (the
//! first match allows), else default deny.
//!
//! One generic walk serves both `evaluate` (no tracer: short-circuits, allocates nothing) and
//! `explain` (a tracer recording every test, evaluated in full so the trace shows all of them).

use super::compile::{CompiledPolicy, Node, Rule};
use super::criteria::{Criterion, Ctx};
use super::decision::{Decision, RuleKind};
use super::intern::GroupIdsRef;
use super::trace::{Trace, TraceLine};
use super::RequestFacts;
use crate::identity::Identity;

/// Where the walk is, for a tracer to name it.
pub(crate) enum Step<'n> {
    /// A top-level rule; `reached` is false once an earlier rule has decided.
    Rule {
        kind: RuleKind,
        index: usize,
        rule: &'n Rule,
        reached: bool,
    },
    /// The `index`th rule of an `and` / `or`.
    Child {
        index: usize,
        rule: &'n Rule,
    },
    And,
    Or,
    Not,
    Leaf(&'n Criterion),
}

/// Observes the walk. `FULL` asks for every test to be evaluated (no short-circuit).
pub(crate) trait Tracer {
    const FULL: bool;
    /// Opens a step; the returned token closes it.
    fn enter(&mut self, step: Step<'_>, ctx: &Ctx<'_>) -> usize;
    fn exit(&mut self, token: usize, matched: bool);
}

/// The tracer of `evaluate`: nothing, compiled away.
struct NoTrace;

impl Tracer for NoTrace {
    const FULL: bool = false;
    #[inline(always)]
    fn enter(&mut self, _: Step<'_>, _: &Ctx<'_>) -> usize {
        0
    }
    #[inline(always)]
    fn exit(&mut self, _: usize, _: bool) {}
}

impl CompiledPolicy {
    /// Decides one request. Synchronous, and allocation-free (the first evaluation for an
    /// identity after new groups entered the interner computes its group ids once).
    ///
    /// Criteria about the caller never match when `identity` is `None`.
    pub fn evaluate(&self, facts: &RequestFacts<'_>, identity: Option<&Identity>) -> Decision {
        self.run(facts, identity, &mut NoTrace)
    }

    /// Decides like `evaluate` and records a human-readable trace of every rule and test, for
    /// `warden explain`. Rules after the deciding one are evaluated too and marked not reached.
    pub fn explain(
        &self,
        facts: &RequestFacts<'_>,
        identity: Option<&Identity>,
    ) -> (Decision, Vec<TraceLine>) {
        let mut trace = Trace::default();
        let decision = self.run(facts, identity, &mut trace);
        trace.finish(&decision);
        (decision, trace.lines)
    }

    fn run<T: Tracer>(
        &self,
        facts: &RequestFacts<'_>,
        identity: Option<&Identity>,
        tracer: &mut T,
    ) -> Decision {
        let ids: Option<GroupIdsRef> = match identity {
            Some(i) if self.uses_groups => {
                Some(i.policy_group_ids.get(&i.groups, self.group_generation))
            }
            _ => None,
        };
        let ctx = Ctx {
            facts,
            identity,
            group_ids: ids.as_ref().map_or(&[], |g| g.ids()),
        };

        let mut decision = None;
        for (kind, rules) in [(RuleKind::Deny, &self.deny), (RuleKind::Allow, &self.allow)] {
            for (index, rule) in rules.iter().enumerate() {
                let step = Step::Rule {
                    kind,
                    index,
                    rule,
                    reached: decision.is_none(),
                };
                let token = tracer.enter(step, &ctx);
                let matched = all(&rule.parts, &ctx, tracer);
                tracer.exit(token, matched);
                if matched && decision.is_none() {
                    let d = match kind {
                        RuleKind::Deny => Decision::deny(index, &rule.name),
                        _ => Decision::allow(index, &rule.name),
                    };
                    if !T::FULL {
                        return d;
                    }
                    decision = Some(d);
                }
            }
        }
        decision.unwrap_or_else(Decision::default_deny)
    }
}

/// Whether every part holds.
fn all<T: Tracer>(parts: &[Node], ctx: &Ctx<'_>, tracer: &mut T) -> bool {
    let mut result = true;
    for part in parts {
        if !node(part, ctx, tracer) {
            result = false;
            if !T::FULL {
                break;
            }
        }
    }
    result
}

fn node<T: Tracer>(n: &Node, ctx: &Ctx<'_>, tracer: &mut T) -> bool {
    match n {
        Node::Leaf(c) => {
            let token = tracer.enter(Step::Leaf(c), ctx);
            let matched = c.matches(ctx);
            tracer.exit(token, matched);
            matched
        }
        Node::And(rules) => combine(Step::And, rules, true, ctx, tracer),
        Node::Or(rules) => combine(Step::Or, rules, false, ctx, tracer),
        Node::Not(rule) => {
            let token = tracer.enter(Step::Not, ctx);
            let result = !all(&rule.parts, ctx, tracer);
            tracer.exit(token, result);
            result
        }
    }
}

/// `and` (`conjunction`) holds unless a child fails; `or` fails unless a child holds.
fn combine<T: Tracer>(
    step: Step<'_>,
    rules: &[Rule],
    conjunction: bool,
    ctx: &Ctx<'_>,
    tracer: &mut T,
) -> bool {
    let token = tracer.enter(step, ctx);
    let mut result = conjunction;
    for (index, rule) in rules.iter().enumerate() {
        if child(index, rule, ctx, tracer) != conjunction {
            result = !conjunction;
            if !T::FULL {
                break;
            }
        }
    }
    tracer.exit(token, result);
    result
}

fn child<T: Tracer>(index: usize, rule: &Rule, ctx: &Ctx<'_>, tracer: &mut T) -> bool {
    let token = tracer.enter(Step::Child { index, rule }, ctx);
    let matched = all(&rule.parts, ctx, tracer);
    tracer.exit(token, matched);
    matched
}

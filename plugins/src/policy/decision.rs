//! The outcome of evaluating a policy: allow or deny, the rule that decided, and a stable
//! reason code for responses, metrics and audit events.

use std::fmt;
use std::sync::Arc;

/// Which list a deciding rule came from; `Default` when no rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Allow,
    Deny,
    Default,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
            RuleKind::Default => "default",
        }
    }
}

/// The rule that decided: `allow[index]` or `deny[index]` with its `name`, or the default deny
/// (index 0, no name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub kind: RuleKind,
    pub index: usize,
    pub name: Option<Arc<str>>,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RuleKind::Default => f.write_str("default deny"),
            kind => {
                write!(f, "{}[{}]", kind.as_str(), self.index)?;
                match &self.name {
                    Some(n) => write!(f, " `{n}`"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why the decision was taken; the codes are stable (responses, logs and metrics carry them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An allow rule matched and no deny rule did.
    AllowRule,
    /// A deny rule matched.
    DenyRule,
    /// Nothing matched: default deny.
    NoMatchingAllow,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AllowRule => "allow_rule",
            Reason::DenyRule => "deny_rule",
            Reason::NoMatchingAllow => "no_matching_allow",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rule: RuleRef,
    pub reason: Reason,
}

impl Decision {
    pub(crate) fn allow(index: usize, name: &Option<Arc<str>>) -> Self {
        Self {
            allowed: true,
            rule: RuleRef {
                kind: RuleKind::Allow,
                index,
                name: name.clone(),
            },
            reason: Reason::AllowRule,
        }
    }

    pub(crate) fn deny(index: usize, name: &Option<Arc<str>>) -> Self {
        Self {
            allowed: false,
            rule: RuleRef {
                kind: RuleKind::Deny,
                index,
                name: name.clone(),
            },
            reason: Reason::DenyRule,
        }
    }

    pub(crate) fn default_deny() -> Self {
        Self {
            allowed: false,
            rule: RuleRef {
                kind: RuleKind::Default,
                index: 0,
                name: None,
            },
            reason: Reason::NoMatchingAllow,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allow" } else { "deny" };
        write!(f, "{verdict} ({}) by {}", self.reason, self.rule)
    }
}

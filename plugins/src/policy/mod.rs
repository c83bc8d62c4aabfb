//! Warden's policy language: which callers may make which requests.
//!
//! A policy has `deny` and `allow` rules. Deny rules are checked first, in order, and the first
//! that matches denies; then allow rules, in order, and the first that matches allows; when
//! nothing matches the request is denied (`no_matching_allow`). Every `Decision` names the rule
//! that took it and carries a stable reason code.
//!
//! A rule is a map of criteria that must all hold, with optional `name` and the combinators
//! `and: [rules]`, `or: [rules]` and `not: rule`:
//!
//! ```yaml
//! allow:
//!   - { groups: [sre] }
//!   - name: readonly-staff
//!     and: [{ email_domain: example.com }, { method: [GET, HEAD] }]
//! deny:
//!   - { path_prefix: /admin, not: { groups: [admins] } }
//! ```
//!
//! Criteria about the caller (`user`/`sub`, `email`, `email_domain`, `groups`, `groups_all`,
//! `claim`, `issuer`, `provider`, `namespace`, `service_account`) never match a request without
//! an identity. So `not: { groups: [admins] }` matches an anonymous request, which is what a deny
//! rule wants. `authenticated: false` asks for "no identity" explicitly.
//!
//! `source_ip` narrows access but never grants it: an allow rule that mentions it must also
//! require an identity criterion, or the policy is refused (network location is not identity).
//!
//! Policies are compiled once per conf version (`CompiledPolicy::compile`,
//! `NamedPolicies::compile`) into a tree evaluated without parsing or allocation
//! (`CompiledPolicy::evaluate`); `CompiledPolicy::explain` evaluates the same tree and records a
//! trace for `warden explain`.

mod compile;
mod conf;
mod criteria;
mod decision;
mod eval;
mod facts;
mod glob;
mod intern;
mod schedule;
mod trace;

#[cfg(test)]
mod tests;

pub use compile::{CompiledPolicies, CompiledPolicy};
pub use conf::{
    ClaimConf, ClientCertConf, NamedPolicies, PolicyConf, PolicyRef, RuleConf, StringList,
};
pub use decision::{Decision, Reason, RuleKind, RuleRef};
pub use facts::{ClientCert, RequestFacts};
pub use intern::GroupIdCache;
pub use trace::TraceLine;

//! What an expression depends on, and how to split an eligibility rule into the part that
//! depends only on the agent and the part that needs the item.

use std::collections::BTreeSet;

use super::ast::{Expr, Path};

/// One top-level conjunct of an expression, with what it depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause<'a> {
    /// The conjunct.
    pub expr: &'a Expr,
    /// The roots of the paths it reads (`agent`, `item`, `queue`, …), sorted.
    pub roots: BTreeSet<&'a str>,
    /// The functions it calls (name, or `name.member`), sorted. A function may read state of
    /// its own (a clock, a calendar), so a clause that calls one is not a function of its
    /// paths alone.
    pub functions: BTreeSet<String>,
}

impl Clause<'_> {
    /// Whether the clause reads only paths under `roots` and calls no function.
    pub fn depends_only_on(&self, roots: &[&str]) -> bool {
        self.functions.is_empty() && self.roots.iter().all(|r| roots.contains(r))
    }
}

/// An expression split in two conjunctions: `selected and rest` means the same as the original.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The clauses that were selected (`None`: no clause was).
    pub selected: Option<Expr>,
    /// The other clauses (`None`: every clause was selected).
    pub rest: Option<Expr>,
}

fn visit<'a>(e: &'a Expr, f: &mut impl FnMut(&'a Expr)) {
    f(e);
    for c in e.children() {
        visit(c, f);
    }
}

fn conjoin(mut parts: Vec<Expr>) -> Option<Expr> {
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Expr::And(parts)),
    }
}

impl Expr {
    /// Every path the expression reads (including inside `has()` and function arguments), in
    /// order of first appearance, without repeats.
    ///
    /// ```
    /// use touchpoint::routing::expr::Expr;
    /// let e = Expr::parse("item.priority >= 2 or (has(agent.skills.vip) and item.priority >= 1)").unwrap();
    /// let paths: Vec<String> = e.referenced_paths().iter().map(|p| p.to_string()).collect();
    /// assert_eq!(paths, ["item.priority", "agent.skills.vip"]);
    /// ```
    pub fn referenced_paths(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        visit(self, &mut |e| {
            if let Expr::Path(p) | Expr::Has(p) = e
                && !out.contains(&p)
            {
                out.push(p);
            }
        });
        out
    }

    /// The roots of the paths the expression reads, sorted.
    pub fn roots(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        visit(self, &mut |e| {
            if let Expr::Path(p) | Expr::Has(p) = e {
                out.insert(p.root());
            }
        });
        out
    }

    /// The functions the expression calls (`name` or `name.member`), sorted.
    pub fn functions(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        visit(self, &mut |e| {
            if let Expr::Call(c) = e {
                out.insert(match &c.member {
                    Some(m) => format!("{}.{m}", c.name),
                    None => c.name.clone(),
                });
            }
        });
        out
    }

    /// The top-level conjuncts (nested `and`s flattened), each with its roots and functions.
    /// An expression that is not an `and` is a single clause.
    ///
    /// ```
    /// use touchpoint::routing::expr::Expr;
    /// let e = Expr::parse(r#"agent.skills.billing >= 3 and item.language in agent.languages and schedule("support").open"#).unwrap();
    /// let clauses = e.clauses();
    /// assert_eq!(clauses.len(), 3);
    /// assert_eq!(clauses[0].roots.iter().copied().collect::<Vec<_>>(), ["agent"]);
    /// assert_eq!(clauses[1].roots.iter().copied().collect::<Vec<_>>(), ["agent", "item"]);
    /// assert!(clauses[2].roots.is_empty() && clauses[2].functions.contains("schedule.open"));
    /// ```
    pub fn clauses(&self) -> Vec<Clause<'_>> {
        let mut flat = Vec::new();
        flatten_and(self, &mut flat);
        flat.into_iter().map(|expr| Clause { expr, roots: expr.roots(), functions: expr.functions() }).collect()
    }

    /// Splits the expression into the conjunction of the clauses for which `select` is true and
    /// the conjunction of the others. Under the crate's three-valued logic `a and b` holds
    /// exactly when both hold, so a router may test `selected` once per agent (grouping agents
    /// by the outcome) and `rest` per item.
    pub fn split_clauses(&self, mut select: impl FnMut(&Clause<'_>) -> bool) -> Split {
        let (mut selected, mut rest) = (Vec::new(), Vec::new());
        for c in self.clauses() {
            if select(&c) { selected.push(c.expr.clone()) } else { rest.push(c.expr.clone()) }
        }
        Split { selected: conjoin(selected), rest: conjoin(rest) }
    }

    /// [`split_clauses`](Self::split_clauses) selecting the clauses that read only paths under
    /// `roots` and call no function — e.g. `split_by_roots(&["agent"])` gives the agent-only
    /// part of an eligibility rule (its *eligibility profile*) and the part that needs the item.
    ///
    /// ```
    /// use touchpoint::routing::expr::Expr;
    /// let e = Expr::parse(r#"agent.skills.billing >= 3 and item.language in agent.languages and agent.team == "tier2""#).unwrap();
    /// let split = e.split_by_roots(&["agent"]);
    /// assert_eq!(split.selected.unwrap().to_string(), r#"agent.skills.billing >= 3 and agent.team == "tier2""#);
    /// assert_eq!(split.rest.unwrap().to_string(), "item.language in agent.languages");
    /// ```
    pub fn split_by_roots(&self, roots: &[&str]) -> Split {
        self.split_clauses(|c| c.depends_only_on(roots))
    }
}

fn flatten_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::And(items) if !items.is_empty() => {
            for i in items {
                flatten_and(i, out);
            }
        }
        other => out.push(other),
    }
}

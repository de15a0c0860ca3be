//! From pest's pairs to the AST: every node with its span, offset to the
//! file when the text parsed is a part of it (`parse::parts`), and the
//! errors pest cannot see (bad escapes, numbers out of range, conditions
//! nested or sized past crate::limits), all collected.

use super::{PolicyParser, Rule, unescape};
use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;
use crate::source::{FileId, Span};
use pest::Parser as _;
use pest::iterators::Pair;

/// The items of `text`, which starts at byte `offset` of the file, and the
/// errors found building them; a syntax error as pest gives it.
pub(super) fn parse_items(
    file: FileId,
    text: &str,
    offset: usize,
) -> Result<(Vec<Item>, Vec<Diagnostic>), pest::error::Error<Rule>> {
    let mut pairs = PolicyParser::parse(Rule::file, text)?;
    let mut b = Builder {
        file,
        offset,
        errors: Vec::new(),
        terms: 0,
    };
    let root = pairs.next().expect("grammar: file is the root");
    let mut items = Vec::new();
    for pair in root.into_inner() {
        match pair.as_rule() {
            Rule::default_decl => items.push(Item::Default(b.default_decl(pair))),
            Rule::records_decl => items.push(Item::Records(b.records(pair))),
            Rule::annotation_decl => items.push(Item::Annotation(b.annotation(pair))),
            Rule::rule_decl => items.push(Item::Rule(b.rule(pair))),
            Rule::EOI => {}
            r => unreachable!("grammar: unexpected {r:?} in file"),
        }
    }
    Ok((items, b.errors))
}

struct Builder {
    file: FileId,
    /// Where the text being parsed starts in the file (a part's start).
    offset: usize,
    errors: Vec<Diagnostic>,
    /// Tests seen so far in the condition being built (crate::limits).
    terms: usize,
}

impl Builder {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.offset + s.start(), self.offset + s.end())
    }

    fn default_decl(&mut self, pair: Pair<'_, Rule>) -> DefaultDecl {
        let span = self.span(&pair);
        let effect_pair = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::default_effect)
            .expect("grammar: default has an effect");
        let effect = match effect_pair.as_str() {
            "allow" => Effect::Allow,
            _ => Effect::Deny,
        };
        DefaultDecl { effect, span }
    }

    fn rule(&mut self, pair: Pair<'_, Rule>) -> crate::ast::Rule {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let kind_pair = inner.next().expect("grammar: rule kind");
        let kind = match kind_pair.as_str() {
            "allow" => RuleKind::Allow,
            "deny" => RuleKind::Deny,
            "require-confirm" => RuleKind::RequireConfirm,
            "cap-consecutive" => RuleKind::CapConsecutive,
            "budget" => RuleKind::Budget,
            "label" => RuleKind::Label,
            _ => RuleKind::RateLimit,
        };
        let kind = Spanned::new(kind, self.span(&kind_pair));
        let name_pair = inner.next().expect("grammar: rule name");
        let name = Spanned::new(name_pair.as_str().to_string(), self.span(&name_pair));
        let clauses = inner.map(|c| self.clause(c)).collect();
        crate::ast::Rule {
            kind,
            name,
            clauses,
            span,
        }
    }

    fn annotation(&mut self, pair: Pair<'_, Rule>) -> AnnotationDecl {
        let span = self.span(&pair);
        let mut lists = Vec::new();
        let mut claims = Vec::new();
        for p in pair.into_inner().filter(|p| !is_keyword(p.as_rule())) {
            match p.as_rule() {
                Rule::pattern_list => {
                    let pspan = self.span(&p);
                    lists.push(self.pattern_list(p, pspan));
                }
                Rule::claim => {
                    let cspan = self.span(&p);
                    let mut value = true;
                    let mut flag = ToolFlag::OpenWorld;
                    for part in p.into_inner() {
                        match part.as_rule() {
                            Rule::not_op => value = false,
                            _ => {
                                flag = match part.as_str() {
                                    "read-only" | "read_only" => ToolFlag::ReadOnly,
                                    "destructive" => ToolFlag::Destructive,
                                    "idempotent" => ToolFlag::Idempotent,
                                    _ => ToolFlag::OpenWorld,
                                }
                            }
                        }
                    }
                    claims.push(Claim {
                        flag,
                        value,
                        span: cspan,
                    });
                }
                r => unreachable!("grammar: unexpected {r:?} in an annotation"),
            }
        }
        let mut lists = lists.into_iter();
        let tools = lists.next().expect("grammar: tool patterns");
        let servers = lists.next();
        // Pest keeps the whitespace after the last repeated claim.
        let end = claims.last().map_or(span.end, |c| c.span.end);
        AnnotationDecl {
            tools,
            servers,
            claims,
            span: Span::new(span.file, span.start, end),
        }
    }

    fn records(&mut self, pair: Pair<'_, Rule>) -> RecordsDecl {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
        let name_pair = inner.next().expect("grammar: records name");
        let name = Spanned::new(name_pair.as_str().to_string(), self.span(&name_pair));
        let clauses = inner
            .map(|c| {
                let cspan = self.span(&c);
                match c.as_rule() {
                    Rule::server_clause => {
                        let list = c
                            .into_inner()
                            .find(|p| p.as_rule() == Rule::pattern_list)
                            .expect("grammar: patterns");
                        RecordsClause::Server(self.pattern_list(list, cspan))
                    }
                    Rule::created_clause => {
                        let mut strings = c.into_inner().filter(|p| p.as_rule() == Rule::string);
                        let tool = self.string(strings.next().expect("grammar: tool"));
                        let pointer = self.string(strings.next().expect("grammar: pointer"));
                        RecordsClause::CreatedBy(CreatedBy {
                            tool,
                            pointer,
                            span: cspan,
                        })
                    }
                    r => unreachable!("grammar: unexpected records clause {r:?}"),
                }
            })
            .collect();
        RecordsDecl {
            name,
            clauses,
            span,
        }
    }

    fn clause(&mut self, pair: Pair<'_, Rule>) -> Clause {
        let span = self.span(&pair);
        let kind = pair.as_rule();
        let mut inner = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
        match kind {
            Rule::server_clause | Rule::tool_clause => {
                let list = self.pattern_list(inner.next().expect("grammar: patterns"), span);
                if kind == Rule::server_clause {
                    Clause::Server(list)
                } else {
                    Clause::Tool(list)
                }
            }
            Rule::when_clause => {
                self.terms = 0;
                Clause::When(self.expr(inner.next().expect("grammar: expr"), 0))
            }
            Rule::reason_clause => Clause::Reason(self.string(inner.next().expect("grammar: str"))),
            Rule::mode_clause => {
                let m = inner.next().expect("grammar: mode");
                let mode = if m.as_str() == "shadow" {
                    Mode::Shadow
                } else {
                    Mode::Enforce
                };
                Clause::Mode(Spanned::new(mode, self.span(&m)))
            }
            Rule::limit_clause => {
                let max_pair = inner.next().expect("grammar: max");
                let max = Spanned::new(max_pair.as_str().to_string(), self.span(&max_pair));
                let mut window = None;
                let mut scopes = Vec::new();
                for p in inner {
                    match p.as_rule() {
                        Rule::duration => window = Some(self.duration(&p)),
                        Rule::scope => {
                            let s = match p.as_str() {
                                "user" => Scope::User,
                                "agent" => Scope::Agent,
                                "model" => Scope::Model,
                                "tool" => Scope::Tool,
                                _ => Scope::Session,
                            };
                            scopes.push(Spanned::new(s, self.span(&p)));
                        }
                        r => unreachable!("grammar: {r:?} in limit"),
                    }
                }
                // Pest keeps the whitespace (and comments) after the last
                // repetition of `(per scope)+` in the clause's pair: the
                // clause ends where its last scope does.
                let end = scopes.last().map_or(span.end, |s| s.span.end);
                Clause::Limit(Limit {
                    max,
                    window,
                    scopes,
                    span: Span::new(span.file, span.start, end),
                })
            }
            Rule::sum_clause => Clause::Sum(self.arg_path(inner.next().expect("grammar: path"))),
            Rule::approver_clause => {
                let kind = match inner.next().expect("grammar: approver kind").as_str() {
                    "group" => ApproverKind::Group,
                    _ => ApproverKind::User,
                };
                let name = self.string(inner.next().expect("grammar: approver"));
                Clause::Approver(Approver {
                    kind,
                    span: Span::new(span.file, span.start, name.span.end),
                    name,
                })
            }
            Rule::grant_clause => {
                let scope_pair = inner.next().expect("grammar: grant scope");
                let scope = self.grant_scope(scope_pair);
                let within: Vec<ArgPath> = inner
                    .next()
                    .map(|w| {
                        w.into_inner()
                            .filter(|p| p.as_rule() == Rule::arg_path)
                            .map(|p| self.arg_path(p))
                            .collect()
                    })
                    .unwrap_or_default();
                // The clause ends where its last part does (pest keeps the
                // whitespace after an optional tail in the pair).
                let end = within.last().map_or(scope.span.end, |p| p.span.end);
                Clause::Grant(Grant {
                    scope,
                    within,
                    span: Span::new(span.file, span.start, end),
                })
            }
            Rule::keep_clause => {
                // `for session` leaves nothing once the keywords are
                // filtered out; `for 8h` its duration.
                let keep = match inner.next() {
                    Some(d) => Keep::For(self.duration(&d).node),
                    None => Keep::Session,
                };
                Clause::Keep(Spanned::new(keep, span))
            }
            r => unreachable!("grammar: unexpected clause {r:?}"),
        }
    }

    /// `once`, `for 30m`, `for session`, `for 5 calls`.
    fn grant_scope(&mut self, pair: Pair<'_, Rule>) -> Spanned<GrantScope> {
        let span = self.span(&pair);
        let mut scope = GrantScope::Once;
        let mut end = span.end;
        for p in pair.into_inner() {
            end = self.span(&p).end;
            match p.as_rule() {
                Rule::kw_session => scope = GrantScope::Session,
                Rule::duration => scope = GrantScope::For(self.duration(&p).node),
                Rule::grant_calls => {
                    let n = p.into_inner().next().expect("grammar: count");
                    scope = GrantScope::Calls(self.integer(&n));
                }
                _ => {}
            }
        }
        Spanned::new(scope, Span::new(span.file, span.start, end))
    }

    fn pattern_list(&mut self, pair: Pair<'_, Rule>, clause_span: Span) -> PatternList {
        let bracketed = pair.as_str().starts_with('[');
        let patterns = pair.into_inner().map(|p| self.string(p)).collect();
        PatternList {
            patterns,
            bracketed,
            span: clause_span,
        }
    }

    fn integer(&mut self, pair: &Pair<'_, Rule>) -> u64 {
        pair.as_str().parse().unwrap_or_else(|_| {
            self.errors
                .push(lints::number_out_of_range(self.span(pair), pair.as_str()));
            0
        })
    }

    fn duration(&mut self, pair: &Pair<'_, Rule>) -> Spanned<Duration> {
        let text = pair.as_str();
        let (digits, unit) = text.split_at(text.len() - 1);
        let unit = match unit {
            "s" => DurationUnit::Seconds,
            "m" => DurationUnit::Minutes,
            "h" => DurationUnit::Hours,
            _ => DurationUnit::Days,
        };
        let amount = digits.parse().unwrap_or_else(|_| {
            self.errors
                .push(lints::number_out_of_range(self.span(pair), text));
            0
        });
        Spanned::new(Duration { amount, unit }, self.span(pair))
    }

    fn string(&mut self, pair: Pair<'_, Rule>) -> Spanned<String> {
        debug_assert_eq!(pair.as_rule(), Rule::string);
        let span = self.span(&pair);
        let raw = pair
            .into_inner()
            .next()
            .map(|p| p.as_str())
            .unwrap_or_default();
        match unescape(raw) {
            Ok(s) => Spanned::new(s, span),
            Err((offset, len)) => {
                let at = Span::new(
                    self.file,
                    span.start + 1 + offset,
                    span.start + 1 + offset + len,
                );
                self.errors.push(lints::invalid_string(at));
                Spanned::new(String::new(), span)
            }
        }
    }

    /// `depth` counts the `(` and `not` levels around `pair`; past
    /// [`crate::limits::MAX_NESTING`] a placeholder stands in (an error is
    /// reported), so no deeper tree is ever built.
    fn expr(&mut self, pair: Pair<'_, Rule>, depth: usize) -> Expr {
        let mut span = self.span(&pair);
        span.end = self.offset + expr_end(&pair);
        // The recursive path stays in small functions with plain loops:
        // every frame on it counts against a small stack (crate::limits),
        // so the leaves and the error paths live out of line.
        match pair.as_rule() {
            Rule::expr | Rule::and_expr => self.nary_expr(pair, depth, span),
            Rule::unary => self.unary(pair, depth, span),
            _ => self.leaf(pair, span),
        }
    }

    fn nary_expr(&mut self, pair: Pair<'_, Rule>, depth: usize, span: Span) -> Expr {
        let is_or = pair.as_rule() == Rule::expr;
        let mut parts = Vec::new();
        for p in pair.into_inner() {
            if !matches!(p.as_rule(), Rule::kw_or | Rule::kw_and) {
                parts.push(self.expr(p, depth));
            }
        }
        nary(parts, span, is_or)
    }

    fn unary(&mut self, pair: Pair<'_, Rule>, depth: usize, span: Span) -> Expr {
        let mut nots = Vec::new();
        let mut operand = None;
        for p in pair.into_inner() {
            if p.as_rule() == Rule::not_op {
                if depth + nots.len() == crate::limits::MAX_NESTING {
                    return self.too_deep(self.span(&p), span);
                }
                nots.push(self.span(&p));
            } else if p.as_rule() == Rule::expr {
                // A parenthesised condition: one level deeper.
                let inner = depth + nots.len() + 1;
                if inner > crate::limits::MAX_NESTING {
                    let at = self.span(&p);
                    let open = Span::new(self.file, at.start.saturating_sub(1), at.start);
                    return self.too_deep(open, span);
                }
                operand = Some(self.expr(p, inner));
            } else {
                operand = Some(self.expr(p, depth + nots.len()));
            }
        }
        let mut e = operand.expect("grammar: unary has an operand");
        for not_span in nots.into_iter().rev() {
            let s = not_span.to(e.span());
            e = Expr::Not(Box::new(e), s);
        }
        e
    }

    /// Reports nesting past the limit; a placeholder stands in for the
    /// part not built (the file is refused anyway).
    #[inline(never)]
    fn too_deep(&mut self, at: Span, span: Span) -> Expr {
        self.errors.push(lints::nesting_too_deep(at));
        Expr::Atom(Atom::Bool(false), span)
    }

    #[inline(never)]
    fn leaf(&mut self, pair: Pair<'_, Rule>, span: Span) -> Expr {
        let atom = self.atom(pair);
        let before = self.terms;
        self.terms += match &atom {
            Atom::In(_, lits) => lits.len().max(1),
            _ => 1,
        };
        if before <= crate::limits::MAX_TERMS && self.terms > crate::limits::MAX_TERMS {
            self.errors.push(lints::condition_too_large(span));
        }
        Expr::Atom(atom, span)
    }

    fn atom(&mut self, pair: Pair<'_, Rule>) -> Atom {
        let kind = pair.as_rule();
        let text = pair.as_str();
        let mut inner = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
        match kind {
            Rule::bool_lit => Atom::Bool(text == "true"),
            Rule::via_agent => Atom::ViaAgent,
            Rule::session_label => {
                let name = inner.next().expect("grammar: label name");
                Atom::SessionLabel(Spanned::new(name.as_str().to_string(), self.span(&name)))
            }
            Rule::via_server => Atom::ViaServer(self.string(inner.next().expect("grammar"))),
            Rule::tool_flag => {
                let f = inner.next().expect("grammar: flag name");
                Atom::ToolFlag(match f.as_str() {
                    "read_only" => ToolFlag::ReadOnly,
                    "destructive" => ToolFlag::Destructive,
                    "idempotent" => ToolFlag::Idempotent,
                    _ => ToolFlag::OpenWorld,
                })
            }
            Rule::in_group => Atom::InGroup(self.string(inner.next().expect("grammar"))),
            Rule::exists => Atom::Exists(self.arg_path(inner.next().expect("grammar"))),
            Rule::under => {
                let path = self.arg_path(inner.next().expect("grammar: path"));
                Atom::Under(path, self.string(inner.next().expect("grammar: prefix")))
            }
            Rule::created_by => {
                let path = self.arg_path(inner.next().expect("grammar"));
                let kind = inner
                    .next()
                    .map(|k| Spanned::new(k.as_str().to_string(), self.span(&k)));
                Atom::CreatedByAgent(path, kind)
            }
            Rule::verified => {
                let f = inner.next().expect("grammar: verified field");
                Atom::Verified(match f.as_str() {
                    "user" => VerifiedField::User,
                    "groups" => VerifiedField::Groups,
                    "agent" => VerifiedField::Agent,
                    _ => VerifiedField::Model,
                })
            }
            Rule::quantified => {
                let q = inner.next().expect("grammar: quantifier");
                let quantifier = if q.as_str() == "any" {
                    Quantifier::Any
                } else {
                    Quantifier::All
                };
                let q = Spanned::new(quantifier, self.span(&q));
                let test = self.atom(inner.next().expect("grammar: quantified test"));
                Atom::Each(q, Box::new(test))
            }
            Rule::folded_comparison => Atom::IgnoringCase(Box::new(self.comparison(inner))),
            Rule::during => self.during(inner),
            Rule::comparison => self.comparison(inner),
            r => unreachable!("grammar: unexpected atom {r:?}"),
        }
    }

    fn during<'i>(&mut self, parts: impl Iterator<Item = Pair<'i, Rule>>) -> Atom {
        let mut days = None;
        let mut hours = None;
        let mut zone = None;
        for p in parts {
            match p.as_rule() {
                Rule::day_set => {
                    let span = self.span(&p);
                    let d = match p.as_str() {
                        "weekdays" => Days::Weekdays,
                        "weekends" => Days::Weekends,
                        _ => Days::List(
                            p.into_inner()
                                .filter(|r| r.as_rule() == Rule::day_range)
                                .map(|r| {
                                    let mut names = r
                                        .into_inner()
                                        .filter_map(|n| Weekday::from_keyword(n.as_str()));
                                    let from = names.next().expect("grammar: a day");
                                    DayRange {
                                        from,
                                        to: names.next().unwrap_or(from),
                                    }
                                })
                                .collect(),
                        ),
                    };
                    days = Some(Spanned::new(d, span));
                }
                Rule::hours => {
                    let span = self.span(&p);
                    let mut minutes = p.into_inner().map(|t| {
                        let (h, m) = t.as_str().split_once(':').unwrap_or(("0", "0"));
                        h.parse::<u16>().unwrap_or(0) * 60 + m.parse::<u16>().unwrap_or(0)
                    });
                    let from = minutes.next().unwrap_or(0);
                    let to = minutes.next().unwrap_or(0);
                    hours = Some(Spanned::new((from, to), span));
                }
                Rule::string => zone = Some(self.string(p)),
                r => unreachable!("grammar: {r:?} in during"),
            }
        }
        let zone = zone.expect("grammar: during names a zone");
        let start = days
            .as_ref()
            .map(|d| d.span)
            .or(hours.as_ref().map(|h| h.span))
            .unwrap_or(zone.span);
        Atom::During(During {
            days,
            hours,
            span: start.to(zone.span),
            zone,
        })
    }

    fn comparison<'i>(&mut self, mut inner: impl Iterator<Item = Pair<'i, Rule>>) -> Atom {
        {
            {
                let subject = self.subject(inner.next().expect("grammar: subject"));
                let tail = inner.next().expect("grammar: tail");
                let tail_rule = tail.as_rule();
                let mut parts = tail.into_inner().filter(|p| !is_keyword(p.as_rule()));
                match tail_rule {
                    Rule::cmp_tail => {
                        let op_pair = parts.next().expect("grammar: op");
                        let op = match op_pair.as_str() {
                            "==" => CmpOp::Eq,
                            "!=" => CmpOp::Ne,
                            "<=" => CmpOp::Le,
                            ">=" => CmpOp::Ge,
                            "<" => CmpOp::Lt,
                            _ => CmpOp::Gt,
                        };
                        let op = Spanned::new(op, self.span(&op_pair));
                        let lit = self.literal(parts.next().expect("grammar: literal"));
                        Atom::Compare(subject, op, lit)
                    }
                    Rule::in_tail => Atom::In(subject, parts.map(|p| self.literal(p)).collect()),
                    Rule::matches_tail => {
                        Atom::Matches(subject, self.string(parts.next().expect("grammar")))
                    }
                    r => unreachable!("grammar: {r:?} as comparison tail"),
                }
            }
        }
    }

    fn subject(&mut self, pair: Pair<'_, Rule>) -> Subject {
        let inner = pair.into_inner().next().expect("grammar: subject");
        match inner.as_rule() {
            Rule::arg_path => Subject::Arg(self.arg_path(inner)),
            Rule::length_of | Rule::size_of => {
                let span = self.span(&inner);
                let rule = inner.as_rule();
                let path = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::arg_path)
                    .expect("grammar: path");
                let path = self.arg_path(path);
                if rule == Rule::length_of {
                    Subject::Length(path, span)
                } else {
                    Subject::Size(path, span)
                }
            }
            _ => {
                let field = match inner.as_str() {
                    "user" => IdentityField::User,
                    "agent" => IdentityField::Agent,
                    _ => IdentityField::Model,
                };
                Subject::Identity(Spanned::new(field, self.span(&inner)))
            }
        }
    }

    fn arg_path(&mut self, pair: Pair<'_, Rule>) -> ArgPath {
        let span = self.span(&pair);
        let mut segments = Vec::new();
        for seg in pair
            .into_inner()
            .filter(|p| p.as_rule() == Rule::path_segment)
        {
            let text = seg.as_str();
            if let Some(quoted) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                match unescape(quoted) {
                    Ok(s) => segments.push(s),
                    Err((offset, len)) => {
                        let start = self.span(&seg).start + 1 + offset;
                        self.errors.push(lints::invalid_string(Span::new(
                            self.file,
                            start,
                            start + len,
                        )));
                    }
                }
            } else {
                segments.push(text.to_string());
            }
        }
        ArgPath { segments, span }
    }

    fn literal(&mut self, pair: Pair<'_, Rule>) -> Literal {
        let span = self.span(&pair);
        let value = match pair.as_rule() {
            Rule::string => Value::String(self.string(pair).node),
            Rule::bool_lit => Value::Bool(pair.as_str() == "true"),
            Rule::number => {
                let text = pair.as_str();
                if text.contains('.') {
                    Value::Decimal(text.to_string())
                } else {
                    match text.parse::<i64>() {
                        Ok(n) => Value::Int(n),
                        Err(_) => {
                            self.errors.push(lints::number_out_of_range(span, text));
                            Value::Int(0)
                        }
                    }
                }
            }
            Rule::byte_size => {
                let mut parts = pair.into_inner();
                let amount_pair = parts.next().expect("grammar: amount");
                let amount = self.integer(&amount_pair);
                let unit = parts
                    .next()
                    .and_then(|u| SizeUnit::from_keyword(u.as_str()))
                    .unwrap_or(SizeUnit::B);
                Value::Size(ByteSize { amount, unit })
            }
            r => unreachable!("grammar: {r:?} as literal"),
        };
        Literal { value, span }
    }
}

/// Where a condition ends. Pest lets `a ~ (op ~ b)*` consume the
/// whitespace and comments after its last operand, so the pair of an
/// `expr` or `and_expr` may run past it (into the next line, over a comment
/// the formatter must keep in place); its last operand's end is the real one.
fn expr_end(pair: &Pair<'_, Rule>) -> usize {
    match pair.as_rule() {
        Rule::expr | Rule::and_expr => match pair.clone().into_inner().last() {
            Some(last) => expr_end(&last),
            None => pair.as_span().end(),
        },
        _ => pair.as_span().end(),
    }
}

/// Builds an n-ary node, splicing children of the same kind (from
/// parentheses) so the tree is canonical; a single part is returned as is.
fn nary(parts: Vec<Expr>, span: Span, is_or: bool) -> Expr {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    let mut flat = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Expr::Or(children, _) if is_or => flat.extend(children),
            Expr::And(children, _) if !is_or => flat.extend(children),
            other => flat.push(other),
        }
    }
    if is_or {
        Expr::Or(flat, span)
    } else {
        Expr::And(flat, span)
    }
}

fn is_keyword(r: Rule) -> bool {
    matches!(
        r,
        Rule::kw_default
            | Rule::kw_allow
            | Rule::kw_deny
            | Rule::kw_require_confirm
            | Rule::kw_cap_consecutive
            | Rule::kw_rate_limit
            | Rule::kw_server
            | Rule::kw_tool
            | Rule::kw_when
            | Rule::kw_reason
            | Rule::kw_mode
            | Rule::kw_shadow
            | Rule::kw_enforce
            | Rule::kw_max
            | Rule::kw_per
            | Rule::kw_session
            | Rule::kw_user
            | Rule::kw_agent
            | Rule::kw_model
            | Rule::kw_via
            | Rule::kw_in
            | Rule::kw_group
            | Rule::kw_exists
            | Rule::kw_matches
            | Rule::kw_under
            | Rule::kw_and
            | Rule::kw_or
            | Rule::kw_not
            | Rule::kw_true
            | Rule::kw_false
            | Rule::kw_args
            | Rule::kw_records
            | Rule::kw_created
            | Rule::kw_by
            | Rule::kw_at
            | Rule::kw_as
            | Rule::kw_verified
            | Rule::kw_budget
            | Rule::kw_sum
            | Rule::kw_ignoring
            | Rule::kw_case
            | Rule::kw_during
            | Rule::kw_length
            | Rule::kw_size
            | Rule::kw_of
            | Rule::kw_grant
            | Rule::kw_once
            | Rule::kw_for
            | Rule::kw_within
            | Rule::kw_calls
            | Rule::kw_label
            | Rule::kw_has
            | Rule::kw_is
            | Rule::kw_on
    )
}

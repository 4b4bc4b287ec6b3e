//! The parser: pest grammar (`grammar.pest`) to our own AST. pest pairs never
//! leave this module. Lines the grammar could only take as `bad_line` become
//! located errors and parsing goes on, so one file reports all its syntax
//! errors; pest's own errors are rewritten so that no raw rule name shows.

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::expr::{BinOp, UnOp};
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct HwmParser;

type P<'i> = Pair<'i, Rule>;

/// Deepest nesting of brackets, and longest operator chain or prefix
/// chain, accepted. Far beyond any real target file; they keep the
/// recursive passes (sema, printer, evaluator) within a small stack.
pub const MAX_NESTING: usize = 64;
pub const MAX_EXPR_DEPTH: usize = 256;
const PEST_CALL_LIMIT: usize = 50_000_000;

/// Rejects files whose brackets nest deeper than [`MAX_NESTING`], before
/// the recursive descent sees them.
fn check_nesting(source: &str) -> Option<Diagnostic> {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b'(' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::new(Span::new(i, i + 1), "brackets nested too deeply")
                            .label(format!("more than {MAX_NESTING} levels"))
                            .help("split the expression with `def` helpers"),
                    );
                }
            }
            b')' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses a whole file. Returns the AST (when the file's outline could be
/// read) and every syntax error found.
pub fn parse(source: &str) -> (Option<File>, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    if let Some(d) = check_nesting(source) {
        return (None, vec![d]);
    }
    // Bounds the work of one parse whatever the input (fuzzing found no
    // exponential case after the grammar fix above `primary`; this is the
    // belt to those braces).
    pest::set_call_limit(std::num::NonZeroUsize::new(PEST_CALL_LIMIT));
    let pairs = match HwmParser::parse(Rule::file, source) {
        Ok(p) => p,
        Err(e) => {
            errors.push(from_pest_error(source, e));
            return (None, errors);
        }
    };
    let mut b = Builder { source, errors: &mut errors, depth: 0, too_deep_reported: false, recoveries: 0 };
    let file_pair = pairs.into_iter().next();
    let mut target = None;
    let mut close = None;
    if let Some(file_pair) = file_pair {
        for p in file_pair.into_inner() {
            match p.as_rule() {
                Rule::target => {
                    close = p.clone().into_inner().find(|c| c.as_rule() == Rule::close).map(|c| span_of(&c));
                    target = Some(b.target(p));
                }
                Rule::trailing => {
                    let span = span_of(&p);
                    let d = Diagnostic::new(
                        Span::new(span.start, span.start + 1),
                        "unexpected text after the target",
                    )
                    .label("a file holds one target");
                    let d = match close {
                        Some(c) => d.secondary(c, "the target ends with this `}`").help(
                            "remove this, or move it inside the target's braces (if it belongs there, \
                             look for an extra `}` above)",
                        ),
                        None => d.help("remove this, or move it inside the target's braces"),
                    };
                    b.errors.push(d);
                }
                _ => {}
            }
        }
    }
    (target.map(|target| File { target }), errors)
}

fn span_of(p: &P) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

struct Builder<'s, 'e> {
    source: &'s str,
    errors: &'e mut Vec<Diagnostic>,
    /// Current expression depth, counting each operand of a chain.
    depth: usize,
    too_deep_reported: bool,
    /// Properties rebuilt from lines with a syntax error (bounded: each
    /// costs a pass over the text before the line).
    recoveries: usize,
}

impl Builder<'_, '_> {
    fn ident(&self, p: P) -> Ident {
        Ident { name: p.as_str().to_string(), span: span_of(&p) }
    }

    fn target(&mut self, p: P) -> Target {
        let span = span_of(&p);
        let mut name = Ident { name: String::new(), span };
        let mut items = Vec::new();
        let mut open = span;
        let mut closed = false;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => name = self.ident(c),
                Rule::open => open = span_of(&c),
                Rule::close => closed = true,
                _ => {
                    if let Some(item) = self.item(c) {
                        items.push(item);
                    }
                }
            }
        }
        if !closed {
            let d = match unclosed_block(self.source, &items) {
                Some(d) => d,
                None => {
                    let end = self.source.len();
                    Diagnostic::new(
                        Span::new(end, end),
                        format!("missing `}}` to close `target {}`", name.name),
                    )
                    .label("the file ends here")
                    .secondary(open, "opened here")
                }
            };
            self.errors.push(d);
        }
        Target { name, items, span }
    }

    /// One item of a body; `None` for a line that did not parse (reported).
    fn item(&mut self, p: P) -> Option<Item> {
        Some(match p.as_rule() {
            Rule::prop => Item::Prop(self.prop(p)),
            Rule::block => Item::Block(self.block(p)),
            Rule::pattern_decl => Item::Pattern(self.pattern(p)),
            Rule::offload_decl => Item::Offload(self.offload(p)),
            Rule::def_decl => Item::Def(self.def(p)),
            Rule::bad_line => return self.bad_line(p).map(Item::Prop),
            _ => return None,
        })
    }

    fn block(&mut self, p: P) -> Block {
        let span = span_of(&p);
        let mut inner = p.into_inner();
        let kind = self.ident(inner.next().expect("grammar: block kind"));
        let mut name = None;
        let mut link = None;
        let mut open = span;
        let mut close = None;
        let mut items = Vec::new();
        for c in inner {
            match c.as_rule() {
                Rule::block_head => {
                    let mut h = c.into_inner();
                    name = h.next().map(|i| self.ident(i));
                    if let (Some(arrow), Some(to)) = (h.next(), h.next()) {
                        let a = if arrow.as_str() == "->" { Arrow::Forward } else { Arrow::Both };
                        link = Some((a, self.ident(to)));
                    }
                }
                Rule::open => open = span_of(&c),
                Rule::close => close = Some(span_of(&c)),
                _ => {
                    if let Some(item) = self.item(c) {
                        items.push(item);
                    }
                }
            }
        }
        Block { kind, name, link, items, open, close, span }
    }

    fn prop(&mut self, p: P) -> Prop {
        let span = span_of(&p);
        let mut inner = p.into_inner();
        let key = self.ident(inner.next().expect("grammar: prop key"));
        let value = match inner.next() {
            None => PropValue::Flag,
            Some(v) => match v.as_rule() {
                Rule::flag => PropValue::Flag,
                Rule::expr_value => PropValue::Expr(self.expr(v.into_inner().next().expect("grammar: expr"))),
                Rule::named_expr => {
                    let mut i = v.into_inner();
                    let name = self.ident(i.next().expect("grammar: name"));
                    PropValue::Named(name, self.expr(i.next().expect("grammar: expr")))
                }
                Rule::value_list | Rule::step_list => {
                    PropValue::Values(v.into_inner().map(|x| self.value(x)).collect())
                }
                _ => PropValue::Flag,
            },
        };
        Prop { key, value, span }
    }

    fn value(&mut self, p: P) -> Value {
        match p.as_rule() {
            Rule::quantity => Value::Quantity(self.quantity(p)),
            Rule::string => Value::Str(self.string(p)),
            Rule::ident => Value::Ident(self.ident(p)),
            Rule::labeled => {
                let mut i = p.into_inner();
                let label = i.next().expect("grammar: label");
                let label = Ident { name: label.as_str().to_string(), span: span_of(&label) };
                Value::Labeled(label, self.quantity(i.next().expect("grammar: quantity")))
            }
            Rule::step => {
                let span = span_of(&p);
                let mut i = p.into_inner();
                let name = self.ident(i.next().expect("grammar: step name"));
                let args = i.map(|a| self.value(a)).collect();
                Value::Step(Step { name, args, span })
            }
            _ => Value::Ident(Ident { name: p.as_str().to_string(), span: span_of(&p) }),
        }
    }

    fn quantity(&mut self, p: P) -> Quantity {
        let span = span_of(&p);
        let mut i = p.into_inner();
        let num = i.next().expect("grammar: number");
        let text = num.as_str().to_string();
        let value = self.number(&num);
        let unit = i.next().map(|u| Ident { name: u.as_str().to_string(), span: span_of(&u) });
        Quantity { value, text, unit, span }
    }

    fn number(&mut self, p: &P) -> f64 {
        match p.as_str().parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                self.errors.push(Diagnostic::new(span_of(p), "number out of range"));
                0.0
            }
        }
    }

    fn string(&mut self, p: P) -> Str {
        let span = span_of(&p);
        let raw = p.into_inner().next().map_or("", |i| i.as_str());
        let mut value = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    value.push(n);
                }
            } else {
                value.push(c);
            }
        }
        Str { value, span }
    }

    fn pattern(&mut self, p: P) -> PatternDecl {
        let span = span_of(&p);
        let mut name = None;
        let mut body = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => name = Some(self.ident(c)),
                Rule::pat_alt => body = Some(self.pat_alt(c)),
                _ => {}
            }
        }
        PatternDecl {
            name: name.expect("grammar: pattern name"),
            body: body.expect("grammar: pattern body"),
            span,
        }
    }

    fn pat_alt(&mut self, p: P) -> PatAlt {
        // Pattern groups nest only through brackets, bounded by check_nesting.
        let span = span_of(&p);
        PatAlt { options: p.into_inner().map(|s| self.pat_seq(s)).collect(), span }
    }

    fn pat_seq(&mut self, p: P) -> PatSeq {
        let span = span_of(&p);
        PatSeq { steps: p.into_inner().map(|s| self.pat_step(s)).collect(), span }
    }

    fn pat_step(&mut self, p: P) -> PatStep {
        let span = span_of(&p);
        let mut atom = None;
        let mut optional = false;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => atom = Some(PatAtom::Name(self.ident(c))),
                Rule::pat_alt => atom = Some(PatAtom::Group(self.pat_alt(c))),
                Rule::optional_mark => optional = true,
                _ => {}
            }
        }
        PatStep { atom: atom.expect("grammar: pattern atom"), optional, span }
    }

    fn offload(&mut self, p: P) -> OffloadDecl {
        let span = span_of(&p);
        let mut idents = Vec::new();
        let mut condition = None;
        let mut kernel = None;
        let mut clauses = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => idents.push(self.ident(c)),
                Rule::expr => condition = Some(self.expr(c)),
                Rule::string => kernel = Some(self.string(c)),
                Rule::clause => clauses.push(self.prop(c)),
                Rule::bad_clause => clauses.extend(self.report_bad_line(c, Rule::clause_only)),
                _ => {}
            }
        }
        let mut idents = idents.into_iter();
        OffloadDecl {
            pattern: idents.next().expect("grammar: offload pattern"),
            unit: idents.next().expect("grammar: offload unit"),
            condition,
            kernel: kernel.expect("grammar: offload kernel"),
            clauses,
            span,
        }
    }

    fn def(&mut self, p: P) -> DefDecl {
        let span = span_of(&p);
        let mut name = None;
        let mut params = Vec::new();
        let mut body = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => name = Some(self.ident(c)),
                Rule::params => params = c.into_inner().map(|i| self.ident(i)).collect(),
                Rule::expr => body = Some(self.expr(c)),
                _ => {}
            }
        }
        DefDecl {
            name: name.expect("grammar: def name"),
            params,
            body: body.expect("grammar: def body"),
            span,
        }
    }

    fn expr(&mut self, p: P) -> Expr {
        let span = span_of(&p);
        if self.depth > MAX_EXPR_DEPTH {
            return self.too_deep(span);
        }
        self.depth += 1;
        let e = self.expr_inner(p, span);
        self.depth -= 1;
        e
    }

    fn too_deep(&mut self, span: Span) -> Expr {
        // Report once per file: every deep operand would say the same.
        if !std::mem::replace(&mut self.too_deep_reported, true) {
            self.errors.push(
                Diagnostic::new(span, "expression nested too deeply")
                    .label(format!("more than {MAX_EXPR_DEPTH} levels of operators"))
                    .help("split the expression with `def` helpers"),
            );
        }
        Expr { kind: ExprKind::Num(0.0, "0".into()), span }
    }

    fn expr_inner(&mut self, p: P, span: Span) -> Expr {
        match p.as_rule() {
            Rule::expr => {
                let inner = p.into_inner().next().expect("grammar: expr");
                self.expr(inner)
            }
            Rule::if_expr => {
                let mut parts = p.into_inner().filter(|c| c.as_rule() == Rule::expr).map(|c| self.expr(c));
                let (c, a, b) = (parts.next(), parts.next(), parts.next());
                match (c, a, b) {
                    (Some(c), Some(a), Some(b)) => {
                        Expr { kind: ExprKind::If(Box::new(c), Box::new(a), Box::new(b)), span }
                    }
                    _ => unreachable!("grammar: if has three parts"),
                }
            }
            Rule::or_expr | Rule::and_expr | Rule::add_expr | Rule::mul_expr => self.binary_chain(p),
            Rule::not_expr => {
                let mut inner = p.into_inner();
                let first = inner.next().expect("grammar: not_expr");
                if first.as_rule() == Rule::not_op {
                    let x = self.expr(inner.next().expect("grammar: not operand"));
                    Expr { kind: ExprKind::Unary(UnOp::Not, Box::new(x)), span }
                } else {
                    self.expr(first)
                }
            }
            Rule::cmp_expr => {
                let mut inner = p.into_inner();
                let lhs = self.expr(inner.next().expect("grammar: cmp lhs"));
                match inner.next() {
                    None => lhs,
                    Some(op) if op.as_rule() == Rule::cmp_op => {
                        let rhs = self.expr(inner.next().expect("grammar: cmp rhs"));
                        Expr {
                            kind: ExprKind::Binary(bin_op(op.as_str()), Box::new(lhs), Box::new(rhs)),
                            span,
                        }
                    }
                    Some(_kw_in) => {
                        let set = inner.next().expect("grammar: set");
                        let members = set.into_inner().map(|m| self.expr(m)).collect();
                        Expr { kind: ExprKind::In(Box::new(lhs), members), span }
                    }
                }
            }
            Rule::unary => {
                let mut inner = p.into_inner();
                let first = inner.next().expect("grammar: unary");
                if first.as_rule() == Rule::neg_op {
                    let x = self.expr(inner.next().expect("grammar: neg operand"));
                    Expr { kind: ExprKind::Unary(UnOp::Neg, Box::new(x)), span }
                } else {
                    self.expr(first)
                }
            }
            Rule::number => {
                let v = self.number(&p);
                Expr { kind: ExprKind::Num(v, p.as_str().to_string()), span }
            }
            Rule::pair => {
                let (a, b) = p.as_str().split_once('x').unwrap_or(("0", "0"));
                match (a.parse::<i64>(), b.parse::<i64>()) {
                    (Ok(a), Ok(b)) => Expr { kind: ExprKind::Pair(a, b), span },
                    _ => {
                        self.errors.push(Diagnostic::new(span, "number out of range"));
                        Expr { kind: ExprKind::Pair(0, 0), span }
                    }
                }
            }
            Rule::ident => Expr { kind: ExprKind::Var(self.ident(p)), span },
            Rule::call => {
                let mut inner = p.into_inner();
                let name = self.ident(inner.next().expect("grammar: call name"));
                let args = inner.map(|a| self.expr(a)).collect();
                Expr { kind: ExprKind::Call(name, args), span }
            }
            Rule::sum_expr => {
                let mut var = None;
                let mut parts = Vec::new();
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::ident => var = Some(self.ident(c)),
                        Rule::expr => parts.push(self.expr(c)),
                        _ => {}
                    }
                }
                let mut parts = parts.into_iter().map(Box::new);
                match (var, parts.next(), parts.next(), parts.next()) {
                    (Some(v), Some(lo), Some(hi), Some(body)) => {
                        Expr { kind: ExprKind::Sum(v, lo, hi, body), span }
                    }
                    _ => unreachable!("grammar: sum has a variable and three expressions"),
                }
            }
            other => unreachable!("grammar: unexpected rule {other:?} in an expression"),
        }
    }

    /// `a op b op c`, left-associative.
    fn binary_chain(&mut self, p: P) -> Expr {
        let span = span_of(&p);
        let operands = p.clone().into_inner().count().div_ceil(2);
        if self.depth + operands > MAX_EXPR_DEPTH {
            return self.too_deep(span);
        }
        let saved = self.depth;
        // A left-deep chain is as deep as it is long for the passes after us.
        self.depth += operands;
        let mut inner = p.into_inner();
        let mut lhs = self.expr(inner.next().expect("grammar: operand"));
        while let Some(op) = inner.next() {
            let rhs = self.expr(inner.next().expect("grammar: operand"));
            let span = lhs.span.to(rhs.span);
            lhs = Expr { kind: ExprKind::Binary(bin_op(op.as_str()), Box::new(lhs), Box::new(rhs)), span };
        }
        self.depth = saved;
        lhs
    }

    /// Explains a line that matched nothing: re-parses it with the rule it
    /// looks like, to point at the exact place it goes wrong.
    /// Reports a line that did not parse and, when the mistake is one of the
    /// simple ones below, returns the property it evidently meant, so that
    /// the checker does not also report that property missing.
    fn bad_line(&mut self, p: P) -> Option<Prop> {
        let rule = match first_word(p.as_str()).as_str() {
            "pattern" => Rule::pattern_only,
            "offload" => Rule::offload_only,
            "def" => Rule::def_only,
            _ => Rule::prop_only,
        };
        self.report_bad_line(p, rule)
    }

    /// Reports a line that did not parse, re-parsed alone with `rule` (an
    /// `*_only` entry point); returns the property it evidently meant, if
    /// any (see [`Builder::bad_line`]). Also used for the clause lines of an
    /// offload rule.
    fn report_bad_line(&mut self, p: P, rule: Rule) -> Option<Prop> {
        let span = span_of(&p);
        let text = p.as_str();
        let first_word = first_word(text);
        let trimmed = text.trim_end();
        let diag = match HwmParser::parse(rule, trimmed) {
            Ok(_) => Diagnostic::new(span, "cannot parse this line"),
            Err(e) => {
                let mut d = from_pest_error(trimmed, e);
                // The line was re-parsed alone: its end is the end of a line.
                d.message = d.message.replace("end of file", "end of line");
                d.primary.span =
                    Span::new(span.start + d.primary.span.start, span.start + d.primary.span.end);
                for l in &mut d.secondary {
                    l.span = Span::new(span.start + l.span.start, span.start + l.span.end);
                }
                d
            }
        };
        let diag = refine_bad_line(diag, &first_word, trimmed, span);
        let fixed = meant_line(&diag.message, &first_word, trimmed, span, &diag);
        self.errors.push(diag);
        self.recover_prop(fixed?, span.start)
    }

    /// Parses `line` (which starts at byte `start` of the file) as a
    /// property, with the file's spans, without reporting anything.
    fn recover_prop(&mut self, line: String, start: usize) -> Option<Prop> {
        const MAX_RECOVERIES: usize = 64;
        if self.recoveries >= MAX_RECOVERIES {
            return None;
        }
        self.recoveries += 1;
        let padded = format!("{}{line}", " ".repeat(start));
        let parsed = HwmParser::parse(Rule::prop_only, &padded).ok()?;
        let prop = parsed.flatten().find(|p| p.as_rule() == Rule::prop)?;
        let before = self.errors.len();
        let prop = self.prop(prop);
        self.errors.truncate(before);
        Some(prop)
    }
}

/// The word a line starts with (a key or a keyword).
fn first_word(text: &str) -> String {
    text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// When the target's `}` is missing, the block that most likely lost its
/// own `}`: the innermost one the file ends inside, or else one whose `}`
/// sits left of the block's own indentation (so it is really the target's).
fn unclosed_block(source: &str, items: &[Item]) -> Option<Diagnostic> {
    let indent = |offset: usize| {
        let start = source[..offset.min(source.len())].rfind('\n').map_or(0, |i| i + 1);
        source[start..].chars().take_while(|c| *c == ' ' || *c == '\t').count()
    };
    let column = |offset: usize| {
        let start = source[..offset.min(source.len())].rfind('\n').map_or(0, |i| i + 1);
        source[start..offset].chars().count()
    };
    for item in items {
        let Item::Block(b) = item else { continue };
        if let Some(d) = unclosed_block(source, &b.items) {
            return Some(d);
        }
        let what = match &b.name {
            Some(n) => format!("{} {}", b.kind.name, n.name),
            None => b.kind.name.clone(),
        };
        let own = indent(b.kind.span.start);
        match b.close {
            None => {
                let end = source.len();
                return Some(
                    Diagnostic::new(Span::new(end, end), format!("missing `}}` to close `{what}`"))
                        .label("the file ends here")
                        .secondary(b.open, "opened here"),
                );
            }
            Some(close) if column(close.start) < own => {
                let stray =
                    b.items.iter().find(|i| indent(i.span().start) <= own && column(i.span().start) <= own);
                let d = match stray {
                    Some(i) => {
                        let s = i.span();
                        let word_end = source[s.start..].find(|c: char| !(c.is_alphanumeric() || c == '_'));
                        let end = word_end.map_or(s.end, |w| s.start + w.max(1));
                        Diagnostic::new(Span::new(s.start, end), format!("missing `}}` to close `{what}`"))
                            .label(format!("this is read as part of `{what}`"))
                            .secondary(b.open, "opened here")
                            .secondary(close, "this `}` then closes it, and the target is left open")
                            .help(format!("add `}}` at the end of `{what}`, before this line"))
                    }
                    None => Diagnostic::new(close, format!("missing `}}` to close `{what}`"))
                        .label("this `}` closes it, and the target is left open")
                        .secondary(b.open, "opened here")
                        .help(format!("add `}}` at the end of `{what}`")),
                };
                return Some(d);
            }
            Some(_) => {}
        }
    }
    None
}

/// Specific messages for common mistakes on a line that did not parse.
fn refine_bad_line(mut d: Diagnostic, first_word: &str, text: &str, span: Span) -> Diagnostic {
    let rest = text[first_word.len()..].trim_start();
    let rest_at = span.start + (text.len() - rest.len());
    let at = |i: usize| Span::new(span.start + i, span.start + i + 1);
    let end = Span::new(span.start + text.len(), span.start + text.len());
    let scan = scan_line(text);
    if let Some(quote) = scan.open_quote {
        d.message = "unterminated string".into();
        d.primary = crate::diag::Label {
            span: Span::new(span.start + quote, span.start + text.len()),
            text: "this string has no closing `\"`".into(),
        };
        d.help = Some("a string ends with `\"` on the same line".into());
        return d;
    }
    if let Some(i) = scan.unmatched_close.filter(|i| span.start + i <= d.primary.span.start) {
        d.message = "unmatched `)`".into();
        d.primary = crate::diag::Label { span: at(i), text: "no `(` before it on this line".into() };
        d.help = None;
        return d;
    }
    if let Some(i) = scan.unclosed_open.filter(|_| d.primary.span.start >= end.start) {
        d.message = "missing `)`".into();
        d.primary = crate::diag::Label { span: end, text: "expected `)` before the end of the line".into() };
        d.secondary.push(crate::diag::Label { span: at(i), text: "this `(` is not closed".into() });
        d.help = None;
        return d;
    }
    if let Some(value) = rest.strip_prefix('=').map(str::trim_start) {
        // `bandwidth = 8 B/cycle`: a plain value written like an expression.
        let plain = format!("{first_word} {value}");
        if !value.is_empty()
            && !matches!(first_word, "pattern" | "offload" | "def" | "cycles")
            && HwmParser::parse(Rule::prop_only, &plain).is_ok()
        {
            d.message = format!("`{first_word}` takes its value without `=`");
            d.primary = crate::diag::Label { span: Span::new(rest_at, rest_at + 1), text: String::new() };
            d.help = Some(format!("write `{plain}`; `=` introduces an expression, as in `cycles = ...`"));
            return d;
        }
    }
    if first_word == "pattern" && !rest.contains('=') {
        let name_len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let after = rest[name_len..].trim_start();
        let after_at = rest_at + (rest.len() - after.len());
        if name_len > 0 {
            let found_len =
                after.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(after.len()).max(1);
            let found = if after.is_empty() {
                "end of line".to_string()
            } else {
                format!("`{}`", &after[..found_len.min(after.len())])
            };
            d.message = format!("expected `=` after `pattern {}`, found {found}", &rest[..name_len]);
            d.primary = crate::diag::Label {
                span: Span::new(after_at, after_at + if after.is_empty() { 0 } else { found_len }),
                text: String::new(),
            };
        }
        d.help = Some("a pattern is `pattern NAME = op >> op? >> (op | op)`".into());
        return d;
    }
    if first_word == "cycles" && !rest.starts_with('=') {
        // A clause of an offload rule (a property would have parsed).
        let found = rest.split_whitespace().next().map_or("end of line".to_string(), |w| format!("`{w}`"));
        d.message = format!("expected `=` after `cycles`, found {found}");
        d.primary = crate::diag::Label { span: Span::new(rest_at, rest_at), text: String::new() };
        d.help = Some("write `cycles = EXPR`, the cycles of one kernel call".into());
        return d;
    }
    if first_word == "activation_layout" && rest.split_whitespace().next() == Some("any") {
        // A unit's `activation_layout any` parses as a property: here it is
        // an offload rule's clause.
        d.message = "`activation_layout any` is a unit property, not an offload clause".into();
        d.primary = crate::diag::Label { span: Span::new(rest_at, rest_at + 3), text: String::new() };
        d.help = Some(
            "write `activation_layout any` in the unit's block; a rule's `activation_layout` clause takes layout steps"
                .into(),
        );
        return d;
    }
    if matches!(first_word, "weight_layout" | "activation_layout") && d.help.is_none() {
        d.help = Some(format!("`{first_word}` takes layout steps: e.g. `{first_word} pad(C, 16), pack(2)`"));
        return d;
    }
    if first_word == "offload" {
        if let Some(end) = after_call(text).filter(|e| d.primary.span.start >= span.start + e) {
            // The rule is complete up to its kernel: what follows is no clause.
            let extra = text[end..].trim_start();
            let at = span.start + (text.len() - extra.len());
            let word_len = extra.find(char::is_whitespace).unwrap_or(extra.len()).max(1);
            d.message = format!("unexpected `{}` after the kernel name", &extra[..word_len.min(extra.len())]);
            d.primary = crate::diag::Label {
                span: Span::new(at, at + word_len.min(extra.len())),
                text: String::new(),
            };
            d.help = Some(
                "after `call \"c_kernel\"` an offload rule takes only the clauses \
                 `weight_layout STEPS`, `activation_layout STEPS` and `cycles = EXPR`"
                    .into(),
            );
            return d;
        }
    }
    if matches!(first_word, "memory" | "unit" | "dma" | "api") && !text.contains('{') {
        d.message = format!("`{first_word}` block without `{{`");
        d.primary = crate::diag::Label { span, text: format!("a `{first_word}` needs a body in braces") };
        d.help = Some(format!("write `{first_word} NAME {{ ... }}`"));
    } else if first_word == "offload" && !text.contains(" call ") && !text.contains("call\"") {
        d.help =
            Some("an offload rule is `offload PATTERN to UNIT [where CONDITION] call \"c_kernel\"`".into());
    } else if d.message.starts_with("expected `else`") {
        d.help = Some("an `if` needs both branches: `if CONDITION then A else B`".into());
    } else if d.message.starts_with("expected `then`") {
        d.help = Some("write `if CONDITION then A else B`".into());
    } else if let Some(value) = rest.strip_prefix(':') {
        d.message = format!("`{first_word}` takes its value without `:`");
        d.help = Some(format!("write `{first_word} {}`", value.trim_start()));
    } else if rest.starts_with('{') {
        d.help = Some(format!("`{first_word}` is not a kind of block: blocks are memory, dma, unit and api"));
    }
    d
}

/// The offset just after the string of `call "..."` in an offload line.
fn after_call(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("call") {
        let at = from + i;
        from = at + 4;
        let before_ok = at == 0 || text[..at].ends_with([' ', '\t']);
        let rest = &text[from..];
        let quote = rest.trim_start();
        if !before_ok || !quote.starts_with('"') {
            continue;
        }
        let open = from + (rest.len() - quote.len());
        let bytes = text.as_bytes();
        let mut j = open + 1;
        while j < bytes.len() && bytes[j] != b'"' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        return (j < bytes.len()).then_some(j + 1);
    }
    None
}

/// The line as the user evidently meant it, for the mistakes
/// [`refine_bad_line`] names: same length up to the fix, so spans still hold.
fn meant_line(message: &str, first_word: &str, text: &str, span: Span, d: &Diagnostic) -> Option<String> {
    if matches!(first_word, "pattern" | "offload" | "def" | "") {
        return None;
    }
    let at = d.primary.span.start.checked_sub(span.start)?;
    let mut line = text.to_string();
    if message.ends_with("without `:`") || message.ends_with("without `=`") {
        line.replace_range(at..at + 1, " ");
    } else if message == "unterminated string" {
        line.push('"');
    } else if message == "unmatched `)`" {
        line.replace_range(at..at + 1, " ");
    } else if message == "missing `)`" {
        line.push(')');
    } else {
        return None;
    }
    Some(line)
}

/// Quotes and parentheses of one line, outside strings and comments.
struct LineScan {
    /// Byte offset of a `"` that opens a string the line never closes.
    open_quote: Option<usize>,
    /// The first `)` with no `(` before it.
    unmatched_close: Option<usize>,
    /// The innermost `(` still open at the end of the line.
    unclosed_open: Option<usize>,
}

fn scan_line(text: &str) -> LineScan {
    let bytes = text.as_bytes();
    let mut scan = LineScan { open_quote: None, unmatched_close: None, unclosed_open: None };
    let mut opens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i >= bytes.len() {
                    scan.open_quote = Some(start);
                    break;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => break,
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map_or(bytes.len(), |j| i + 2 + j + 1);
            }
            b'(' => opens.push(i),
            b')' => {
                let matched = opens.pop().is_some();
                if !matched && scan.unmatched_close.is_none() {
                    scan.unmatched_close = Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    scan.unclosed_open = opens.last().copied();
    scan
}

fn bin_op(s: &str) -> BinOp {
    match s.trim() {
        "+" => BinOp::Add,
        "-" => BinOp::Sub,
        "*" => BinOp::Mul,
        "/" => BinOp::Div,
        "%" => BinOp::Mod,
        "==" => BinOp::Eq,
        "!=" => BinOp::Ne,
        "<" => BinOp::Lt,
        "<=" => BinOp::Le,
        ">" => BinOp::Gt,
        ">=" => BinOp::Ge,
        "and" | "&&" => BinOp::And,
        _ => BinOp::Or,
    }
}

/// What a user calls the thing a rule stands for. Rules mapped to `None`
/// are plumbing and are left out of "expected ..." lists.
fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::ident | Rule::block_head => "a name",
        Rule::number | Rule::quantity => "a number",
        Rule::pair => "a pair such as 3x3",
        Rule::string | Rule::string_inner => "a string in double quotes",
        Rule::open => "`{`",
        Rule::close => "`}`",
        Rule::arrow => "`->` or `<->`",
        Rule::kw_target => "`target`",
        Rule::kw_to => "`to`",
        Rule::kw_where => "`where`",
        Rule::kw_call => "`call`",
        Rule::kw_then => "`then`",
        Rule::kw_else => "`else`",
        Rule::kw_in => "`in`",
        Rule::set => "a set such as {1, 3}",
        Rule::expr
        | Rule::if_expr
        | Rule::or_expr
        | Rule::and_expr
        | Rule::not_expr
        | Rule::cmp_expr
        | Rule::add_expr
        | Rule::mul_expr
        | Rule::unary
        | Rule::call
        | Rule::sum_expr => "an expression",
        Rule::or_op | Rule::and_op | Rule::cmp_op | Rule::add_op | Rule::mul_op => "an operator",
        Rule::not_op | Rule::neg_op => "an operand",
        Rule::pat_alt | Rule::pat_seq | Rule::pat_step => "an operator name",
        Rule::optional_mark => "`?`",
        Rule::value_list | Rule::labeled | Rule::step => "a value",
        Rule::step_list => "a layout step",
        Rule::expr_value | Rule::named_expr => "`=`",
        Rule::suffix => "a unit",
        Rule::params => "`(`",
        Rule::prop
        | Rule::block
        | Rule::pattern_decl
        | Rule::offload_decl
        | Rule::def_decl
        | Rule::target => "a property or block",
        _ => return None,
    })
}

/// Rewrites a pest error into our diagnostic, with user-facing names.
fn from_pest_error(source: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = describe_found(source, pos);
    let end = (pos + found.1).min(source.len()).max(pos);
    let span = Span::new(pos, end);
    match e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort();
            names.dedup();
            if names.contains(&"an operator") {
                // `x in {..}` is one more operator after an operand.
                names.retain(|n| *n != "`in`");
            }
            if positives.contains(&Rule::kw_target) {
                return Diagnostic::new(span, format!("expected `target`, found {}", found.0))
                    .label("a .hwm file starts with `target NAME {`");
            }
            let expected = match names.len() {
                0 => "something else".to_string(),
                1 => names[0].to_string(),
                _ => {
                    let (last, rest) = names.split_last().expect("two or more");
                    format!("{} or {}", rest.join(", "), last)
                }
            };
            Diagnostic::new(span, format!("expected {expected}, found {}", found.0))
        }
        ErrorVariant::CustomError { message } => Diagnostic::new(span, message),
    }
}

/// A short description of the text at `pos`, and its length in bytes.
fn describe_found(source: &str, pos: usize) -> (String, usize) {
    let rest = &source[pos.min(source.len())..];
    match rest.chars().next() {
        None => ("end of file".into(), 0),
        Some('\n') | Some('\r') => ("end of line".into(), 1),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            let w: String =
                rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').collect();
            (format!("`{w}`"), w.len())
        }
        Some(c) => (format!("`{c}`"), c.len_utf8()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> File {
        let (f, errs) = parse(src);
        assert!(errs.is_empty(), "{errs:?}");
        f.expect("file")
    }

    #[test]
    fn parses_every_construct() {
        let f = ok(r#"
target t {
    clock 370 MHz
    platform "t"
    memory L1 { size 128 KiB; reserve 11072 B; double_buffer }
    dma L2 <-> L1 {
        bandwidth 8 B/cycle
        overhead 1d 27 cycles, 2d 43 cycles
        start "dma_start"
    }
    unit ne16 {
        spatial K 32, C 16
        weight_layout offset(128), pad(C, 16), split(C, 16, c)
        scratch im2col = 2 * FY * FX * C
        cycles = if depthwise then ceil(OY / 3) * 2
                 else sum(i in 0..K, i) + max(1, 2, 3)
    }
    pattern conv = conv2d >> bias? >> requant >> (relu | clip)?
    offload conv to ne16
        where kernel in {1x1, 3x3} and not (C % 16 != 0) or -K < 2
        call "ne16_conv"
    def load(k) = 10 + k
}
"#);
        assert_eq!(f.target.name.name, "t");
        assert_eq!(f.target.items.len(), 8);
    }

    #[test]
    fn bad_lines_are_all_reported() {
        let (f, errs) =
            parse("target t {\n    size 12 KiB )\n    clock = \n    memory L1 { ports 2 ] }\n}\n");
        assert!(f.is_some());
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn missing_close_brace_is_located() {
        let (_, errs) = parse("target t {\n    clock 1 MHz\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("missing `}`"), "{:?}", errs[0]);
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_hang() {
        let calls = format!("target t {{\n cycles = {}\n}}", "f(".repeat(40));
        let parens = format!("target t {{\n cycles = {}1\n}}", "(".repeat(10_000));
        let chain = format!("target t {{\n cycles = 1{}\n}}", " + 1".repeat(10_000));
        let prefix = format!("target t {{\n cycles = {}1\n}}", "- ".repeat(10_000));
        for src in [calls, parens, chain, prefix] {
            let started = std::time::Instant::now();
            let (_, errs) = parse(&src);
            assert!(!errs.is_empty());
            assert!(started.elapsed().as_secs() < 5, "took {:?}", started.elapsed());
        }
    }

    #[test]
    fn simple_mistakes_are_named_and_recovered() {
        let src = "target t {\n    memory M {\n        size: 1 KiB\n        bandwidth = 4 B/cycle\n    }\n    dma M -> N { start \"go; wait \"w\" }\n}\n";
        let (f, errs) = parse(src);
        let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "`size` takes its value without `:`",
                "`bandwidth` takes its value without `=`",
                "unterminated string"
            ]
        );
        // The properties are kept, so the checker does not call them missing.
        let Item::Block(m) = &f.expect("file").target.items[0] else { panic!("memory block") };
        let keys: Vec<&str> = m
            .items
            .iter()
            .filter_map(|i| if let Item::Prop(p) = i { Some(p.key.name.as_str()) } else { None })
            .collect();
        assert_eq!(keys, ["size", "bandwidth"]);
        let Item::Prop(size) = &m.items[0] else { panic!() };
        assert_eq!(&src[size.key.span.start..size.key.span.end], "size");
    }

    #[test]
    fn unclosed_inner_block_is_named() {
        let (_, errs) = parse("target t {\n    memory M {\n        size 1 KiB\n    unit u { host }\n}\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "missing `}` to close `memory M`");
    }

    #[test]
    fn no_raw_rule_names() {
        for src in
            ["targt x {}", "target {", "target t { pattern p = }", "target t { offload a to }", "\u{0}"]
        {
            let (_, errs) = parse(src);
            for e in errs {
                assert!(!e.message.contains('_'), "raw rule name in {:?}", e.message);
            }
        }
    }
}

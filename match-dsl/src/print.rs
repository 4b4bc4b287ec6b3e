//! The canonical printer behind `matchc fmt`, and the source-syntax
//! rendering of checked expressions (`impl Display for expr::Expr`).
//!
//! The printer writes the AST back in one canonical layout (four-space
//! indentation, one property per line, normalized numbers, minimal
//! parentheses except around `and` inside `or`, lines broken past 100
//! columns) and keeps every comment of the source. Comments are not in
//! the AST: they are recovered by scanning the source text, then placed by
//! position. An own-line comment goes before the item that follows it; a
//! comment after code on the same line trails the item that precedes it; a
//! comment inside a one-line item moves above that item; comments at the end
//! of a block stay before its `}`. Blank lines between items are kept (at
//! most one), except right after `{` and right before `}`.
//!
//! The output re-parses to the same AST up to spans, so formatting is
//! idempotent and never changes the checked model.

use crate::ast::{self, Item, PatAlt, PatAtom, PropValue, Value};
use crate::expr::{BinOp, Expr, UnOp};
use std::fmt;

/// Lines longer than this are broken where the grammar allows: before
/// `where` / `call`, before binary operators and `else`, after commas.
const MAX_WIDTH: usize = 100;
const INDENT: &str = "    ";

/// Prints a parsed file canonically. `source` is the text it was parsed
/// from: comments and blank lines are taken from it.
pub fn print_file(file: &ast::File, source: &str) -> String {
    let mut p = Printer {
        src: source,
        comments: scan_comments(source),
        next: 0,
        out: String::new(),
        open_line: false,
        prev_end: 0,
        at_block_start: true,
    };
    p.target(&file.target);
    p.out
}

/// A number as the printer writes it: integers without a fraction.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Writes a checked expression in source syntax, parenthesized if its
/// precedence is below `prec` (0 for a whole expression).
pub fn write_model_expr(f: &mut fmt::Formatter<'_>, e: &Expr, prec: u8) -> fmt::Result {
    write_expr(f, e, prec)
}

// ---------------------------------------------------------------------------
// Expressions: one writer for both the AST and the checked model.

// Binding strengths, loosest first; binary operators use BinOp::precedence.
const PREC_IF: u8 = 0;
const PREC_NOT: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_ADD: u8 = 5;
const PREC_NEG: u8 = 7;
const PREC_ATOM: u8 = 8;

/// What the writer needs to know of one expression node.
enum Node<'a, E> {
    Num(f64),
    Bool(bool),
    Pair(i64, i64),
    Name(&'a str),
    Unary(UnOp, &'a E),
    Binary(BinOp, &'a E, &'a E),
    Call(&'a str, &'a [E]),
    If(&'a E, &'a E, &'a E),
    Sum(&'a str, &'a E, &'a E, &'a E),
    In(&'a E, &'a [E]),
}

trait ExprView: Sized {
    fn node(&self) -> Node<'_, Self>;
}

impl ExprView for Expr {
    fn node(&self) -> Node<'_, Self> {
        match self {
            Expr::Num(n) => Node::Num(*n),
            Expr::Bool(b) => Node::Bool(*b),
            Expr::Pair(a, b) => Node::Pair(*a, *b),
            Expr::Attr(n) | Expr::Local(n) => Node::Name(n),
            Expr::Unary(op, x) => Node::Unary(*op, x),
            Expr::Binary(op, l, r) => Node::Binary(*op, l, r),
            Expr::Builtin(b, args) => Node::Call(b.name(), args),
            Expr::Call(n, args) => Node::Call(n, args),
            Expr::If(c, a, b) => Node::If(c, a, b),
            Expr::Sum(v, lo, hi, body) => Node::Sum(v, lo, hi, body),
            Expr::In(x, set) => Node::In(x, set),
        }
    }
}

impl ExprView for ast::Expr {
    fn node(&self) -> Node<'_, Self> {
        match &self.kind {
            ast::ExprKind::Num(v, text) => Node::Num(number_value(text, *v)),
            ast::ExprKind::Pair(a, b) => Node::Pair(*a, *b),
            ast::ExprKind::Var(i) => Node::Name(&i.name),
            ast::ExprKind::Unary(op, x) => Node::Unary(*op, x),
            ast::ExprKind::Binary(op, l, r) => Node::Binary(*op, l, r),
            ast::ExprKind::Call(n, args) => Node::Call(&n.name, args),
            ast::ExprKind::If(c, a, b) => Node::If(c, a, b),
            ast::ExprKind::Sum(v, lo, hi, body) => Node::Sum(&v.name, lo, hi, body),
            ast::ExprKind::In(x, set) => Node::In(x, set),
        }
    }
}

fn node_prec<E>(n: &Node<'_, E>) -> u8 {
    match n {
        Node::If(..) => PREC_IF,
        Node::Binary(op, ..) => op.precedence(),
        Node::In(..) => PREC_CMP,
        Node::Unary(UnOp::Not, _) => PREC_NOT,
        Node::Unary(UnOp::Neg, _) => PREC_NEG,
        // Printed with a leading `-`, which reads back as a negation.
        Node::Num(v) if *v < 0.0 => PREC_NEG,
        _ => PREC_ATOM,
    }
}

/// Writes `e`, in parentheses when it binds looser than `min`.
fn write_expr<E: ExprView, W: fmt::Write>(w: &mut W, e: &E, min: u8) -> fmt::Result {
    let node = e.node();
    let prec = node_prec(&node);
    let paren = prec < min;
    if paren {
        w.write_char('(')?;
    }
    match node {
        Node::Num(v) => w.write_str(&format_number(v))?,
        Node::Bool(b) => write!(w, "{b}")?,
        Node::Pair(a, b) => write!(w, "{a}x{b}")?,
        Node::Name(n) => w.write_str(n)?,
        Node::Unary(UnOp::Not, x) => {
            w.write_str("not ")?;
            write_expr(w, x, PREC_NOT)?;
        }
        Node::Unary(UnOp::Neg, x) => {
            w.write_char('-')?;
            write_expr(w, x, PREC_NEG)?;
        }
        Node::Binary(op, l, r) => {
            // Comparisons do not chain: both sides are sums.
            let (lmin, rmin) = operand_mins(op);
            write_expr(w, l, clarify(op, l, lmin))?;
            write!(w, " {} ", op.symbol())?;
            write_expr(w, r, clarify(op, r, rmin))?;
        }
        Node::In(x, set) => {
            write_expr(w, x, PREC_ADD)?;
            w.write_str(" in {")?;
            write_list(w, set)?;
            w.write_char('}')?;
        }
        Node::Call(name, args) => {
            write!(w, "{name}(")?;
            write_list(w, args)?;
            w.write_char(')')?;
        }
        Node::If(c, a, b) => {
            w.write_str("if ")?;
            write_expr(w, c, PREC_IF)?;
            w.write_str(" then ")?;
            write_expr(w, a, PREC_IF)?;
            w.write_str(" else ")?;
            write_expr(w, b, PREC_IF)?;
        }
        Node::Sum(var, lo, hi, body) => {
            write!(w, "sum({var} in ")?;
            write_expr(w, lo, PREC_IF)?;
            w.write_str("..")?;
            write_expr(w, hi, PREC_IF)?;
            w.write_str(", ")?;
            write_expr(w, body, PREC_IF)?;
            w.write_char(')')?;
        }
    }
    if paren {
        w.write_char(')')?;
    }
    Ok(())
}

/// The least precedence the grammar accepts for the operands of `op`.
/// Comparisons do not chain: both sides are sums. Elsewhere a right operand
/// of the same precedence keeps its parentheses for every operator (not
/// just `-`, `/`, `%`), so the text parses back to the same tree.
fn operand_mins(op: BinOp) -> (u8, u8) {
    let prec = op.precedence();
    if prec == PREC_CMP {
        (PREC_ADD, PREC_ADD)
    } else {
        (prec, prec + 1)
    }
}

/// `a or (b and c)` keeps its parentheses, though `and` binds tighter:
/// mixed `and` / `or` is easy to misread without them.
fn clarify<E: ExprView>(op: BinOp, operand: &E, min: u8) -> u8 {
    match (op, operand.node()) {
        (BinOp::Or, Node::Binary(BinOp::And, ..)) => PREC_NOT,
        _ => min,
    }
}

fn write_list<E: ExprView, W: fmt::Write>(w: &mut W, items: &[E]) -> fmt::Result {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        write_expr(w, x, PREC_IF)?;
    }
    Ok(())
}

fn expr_text<E: ExprView>(e: &E, min: u8) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_expr(&mut s, e, min);
    s
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// The column after `s` printed from column `col`.
fn end_col(s: &str, col: usize) -> usize {
    match s.rfind('\n') {
        Some(i) => width(&s[i + 1..]),
        None => col + width(s),
    }
}

fn newline_at(out: &mut String, col: usize) {
    out.push('\n');
    out.push_str(&" ".repeat(col));
}

/// `e` printed from column `col`, on several lines if one would pass
/// MAX_WIDTH. The grammar allows a newline before a binary operator and
/// before `else`; continuation lines align with the start of the chain or
/// of the `if`.
fn layout<E: ExprView>(e: &E, col: usize, min: u8) -> String {
    let flat = expr_text(e, min);
    if col + width(&flat) <= MAX_WIDTH {
        return flat;
    }
    let node = e.node();
    let prec = node_prec(&node);
    if prec < min {
        return format!("({})", layout(e, col + 1, PREC_IF));
    }
    match node {
        Node::If(..) => layout_if(e, col),
        Node::Binary(op, ..) if prec != PREC_CMP => layout_chain(e, op.precedence(), col),
        _ => flat,
    }
}

/// `if c then a` / `else if c then a` / `else b`, each `else` under the `if`.
fn layout_if<E: ExprView>(e: &E, col: usize) -> String {
    let mut out = String::new();
    let mut cur = e;
    loop {
        let Node::If(c, a, b) = cur.node() else {
            let start = end_col(&out, col);
            out.push_str(&layout(cur, start, PREC_IF));
            return out;
        };
        out.push_str("if ");
        out.push_str(&layout(c, end_col(&out, col), PREC_IF));
        let then_branch = expr_text(a, PREC_IF);
        if end_col(&out, col) + 6 + width(&then_branch) > MAX_WIDTH {
            newline_at(&mut out, col);
        } else {
            out.push(' ');
        }
        out.push_str("then ");
        out.push_str(&layout(a, end_col(&out, col), PREC_IF));
        newline_at(&mut out, col);
        out.push_str("else ");
        cur = b;
    }
}

/// A chain of operators of one precedence, broken before operators: one
/// operand per line for `and` / `or`, as many as fit for arithmetic.
fn layout_chain<E: ExprView>(e: &E, prec: u8, col: usize) -> String {
    let mut rest = Vec::new();
    let mut first = e;
    while let Node::Binary(op, l, r) = first.node() {
        if op.precedence() != prec {
            break;
        }
        rest.push((op, r));
        first = l;
    }
    rest.reverse();
    let one_per_line = prec <= BinOp::And.precedence();
    let mut out = match rest.first() {
        Some((op, _)) => layout(first, col, clarify(*op, first, operand_mins(*op).0)),
        None => layout(first, col, prec),
    };
    for (op, r) in rest {
        let sym = op.symbol();
        let rmin = clarify(op, r, operand_mins(op).1);
        let piece = expr_text(r, rmin);
        let at = end_col(&out, col);
        if !one_per_line && at + sym.len() + 2 + width(&piece) <= MAX_WIDTH {
            out.push(' ');
            out.push_str(sym);
            out.push(' ');
            out.push_str(&piece);
        } else {
            newline_at(&mut out, col);
            out.push_str(sym);
            out.push(' ');
            out.push_str(&layout(r, col + sym.len() + 1, rmin));
        }
    }
    out
}

/// The value of a number literal, from its text so that `0128` and `128`
/// print alike; the parsed value if the text is unusable.
fn number_value(text: &str, value: f64) -> f64 {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite()).unwrap_or(value)
}

// ---------------------------------------------------------------------------
// Items and values.

fn string_lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn quantity_text(q: &ast::Quantity) -> String {
    let n = format_number(number_value(&q.text, q.value));
    match &q.unit {
        None => n,
        // A rate is written attached: `32/cycle`.
        Some(u) if u.name.starts_with('/') => format!("{n}{}", u.name),
        Some(u) => format!("{n} {}", u.name),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Quantity(q) => quantity_text(q),
        Value::Str(s) => string_lit(&s.value),
        Value::Ident(i) => i.name.clone(),
        Value::Labeled(l, q) => format!("{} {}", l.name, quantity_text(q)),
        Value::Step(s) => {
            let args: Vec<String> = s.args.iter().map(value_text).collect();
            format!("{}({})", s.name.name, args.join(", "))
        }
    }
}

fn prop_text(p: &ast::Prop, depth: usize) -> String {
    let key = &p.key.name;
    let col = depth * INDENT.len();
    match &p.value {
        PropValue::Flag => key.clone(),
        PropValue::Values(vs) if vs.is_empty() => key.clone(),
        PropValue::Values(vs) => {
            // As many values per line as fit; continuation lines align with
            // the first value (the grammar allows a newline after a comma).
            let first_col = col + width(key) + 1;
            let mut out = format!("{key} ");
            for (i, v) in vs.iter().enumerate() {
                let mut text = value_text(v);
                if i + 1 < vs.len() {
                    text.push(',');
                }
                if i > 0 {
                    if end_col(&out, col) + 1 + width(&text) <= MAX_WIDTH {
                        out.push(' ');
                    } else {
                        newline_at(&mut out, first_col);
                    }
                }
                out.push_str(&text);
            }
            out
        }
        PropValue::Expr(e) => {
            let head = format!("{key} = ");
            let body = layout(e, col + width(&head), PREC_IF);
            head + &body
        }
        PropValue::Named(n, e) => {
            let head = format!("{key} {} = ", n.name);
            let body = layout(e, col + width(&head), PREC_IF);
            head + &body
        }
    }
}

/// Groups are kept as written: they are nodes of the AST, so dropping one
/// would change what the file means to the checker.
fn pat_alt_text(alt: &PatAlt) -> String {
    let options: Vec<String> = alt
        .options
        .iter()
        .map(|seq| {
            let steps: Vec<String> = seq
                .steps
                .iter()
                .map(|step| {
                    let mut s = match &step.atom {
                        PatAtom::Name(n) => n.name.clone(),
                        PatAtom::Group(inner) => format!("({})", pat_alt_text(inner)),
                    };
                    if step.optional {
                        s.push('?');
                    }
                    s
                })
                .collect();
            steps.join(" >> ")
        })
        .collect();
    options.join(" | ")
}

fn offload_text(o: &ast::OffloadDecl, depth: usize) -> String {
    let head = format!("offload {} to {}", o.pattern.name, o.unit.name);
    let call = format!("call {}", string_lit(&o.kernel.value));
    let col = depth * INDENT.len();
    // Continuation lines (before `where`, `call` and each clause) are
    // indented twice.
    let cont = col + 2 * INDENT.len();
    let cond = o.condition.as_ref().map(|c| format!("where {}", expr_text(c, PREC_IF)));
    let clauses: Vec<String> = o.clauses.iter().map(|p| prop_text(p, depth + 2)).collect();
    let mut parts = vec![head.clone()];
    parts.extend(cond);
    parts.push(call.clone());
    parts.extend(clauses.iter().cloned());
    let one_line = parts.join(" ");
    if !one_line.contains('\n') && col + width(&one_line) <= MAX_WIDTH {
        return one_line;
    }
    // The grammar allows a newline before `where`, `call` and each clause.
    let mut out = head;
    if let Some(c) = &o.condition {
        newline_at(&mut out, cont);
        out.push_str("where ");
        out.push_str(&layout(c, cont + "where ".len(), PREC_IF));
    }
    newline_at(&mut out, cont);
    out.push_str(&call);
    for clause in &clauses {
        newline_at(&mut out, cont);
        out.push_str(clause);
    }
    out
}

fn def_text(d: &ast::DefDecl, depth: usize) -> String {
    let params: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
    // `def f = ...` and `def f() = ...` parse alike; calls are written `f()`.
    let head = format!("def {}({}) = ", d.name.name, params.join(", "));
    let body = layout(&d.body, depth * INDENT.len() + width(&head), PREC_IF);
    head + &body
}

fn block_head_text(b: &ast::Block) -> String {
    let mut s = b.kind.name.clone();
    if let Some(n) = &b.name {
        s.push(' ');
        s.push_str(&n.name);
    }
    if let Some((arrow, to)) = &b.link {
        s.push_str(match arrow {
            ast::Arrow::Forward => " -> ",
            ast::Arrow::Both => " <-> ",
        });
        s.push_str(&to.name);
    }
    s
}

// ---------------------------------------------------------------------------
// Comments.

#[derive(Debug, Clone, PartialEq)]
struct Comment {
    start: usize,
    /// End of the comment text (a `//` comment without trailing blanks).
    end: usize,
    text: String,
    /// Code precedes it on its line.
    trailing: bool,
}

/// Finds the comments of `src`, skipping string literals, as the grammar's
/// COMMENT rule reads them.
fn scan_comments(src: &str) -> Vec<Comment> {
    let b = src.as_bytes();
    let len = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line_has_code = false;
    while i < len {
        match b[i] {
            b'\n' | b'\r' => {
                line_has_code = false;
                i += 1;
            }
            b' ' | b'\t' => i += 1,
            b'"' => {
                line_has_code = true;
                i += 1;
                while i < len {
                    match b[i] {
                        b'\\' if i + 1 < len && (b[i + 1] == b'"' || b[i + 1] == b'\\') => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        // An unterminated string ends at the line.
                        b'\n' | b'\r' => break,
                        _ => i += 1,
                    }
                }
            }
            b'/' if i + 1 < len && b[i + 1] == b'/' => {
                let start = i;
                while i < len && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
                // Delimiters are ASCII, so these are char boundaries.
                let text = src.get(start..i).unwrap_or("").trim_end();
                out.push(Comment {
                    start,
                    end: start + text.len(),
                    text: text.to_string(),
                    trailing: line_has_code,
                });
            }
            b'/' if i + 1 < len && b[i + 1] == b'*' => {
                let start = i;
                let end = src.get(i + 2..).and_then(|rest| rest.find("*/")).map_or(len, |p| i + 2 + p + 2);
                let text = src.get(start..end).unwrap_or("");
                out.push(Comment { start, end, text: text.to_string(), trailing: line_has_code });
                if text.contains(['\n', '\r']) {
                    // What follows on its last line comes after no code.
                    line_has_code = false;
                }
                i = end;
            }
            _ => {
                line_has_code = true;
                i += 1;
            }
        }
    }
    out
}

/// Whether `gap` holds an empty line (two line ends with only blanks between).
fn has_blank_line(gap: &str) -> bool {
    let b = gap.as_bytes();
    let mut newlines = 0;
    for (i, &c) in b.iter().enumerate() {
        let newline = c == b'\n' || (c == b'\r' && b.get(i + 1) != Some(&b'\n'));
        if newline {
            newlines += 1;
            if newlines >= 2 {
                return true;
            }
        } else if !matches!(c, b' ' | b'\t' | b'\r') {
            newlines = 0;
        }
    }
    false
}

// ---------------------------------------------------------------------------
// Layout.

struct Printer<'a> {
    src: &'a str,
    comments: Vec<Comment>,
    /// The first comment not yet printed; comments are printed in order.
    next: usize,
    out: String,
    /// The last output line may still get trailing comments.
    open_line: bool,
    /// Source offset of the end of what was printed last, to find blank lines.
    prev_end: usize,
    /// Nothing printed yet in this block: no blank line allowed.
    at_block_start: bool,
}

impl Printer<'_> {
    fn target(&mut self, t: &ast::Target) {
        let open_end = self.open_brace_end(t.name.span.end);
        let end = self.content_end(t.span.start, t.span.end);
        let closed = end > open_end && self.src.as_bytes().get(end - 1) == Some(&b'}');
        let (close_start, close_end) = if closed { (end - 1, end) } else { (end, end) };
        let head = format!("target {}", t.name.name);
        self.block_body(&head, t.span.start, open_end, &t.items, close_start, close_end, 0);
        // Comments after the target.
        self.attach_trailing(usize::MAX);
        self.end_line();
        self.own_line_comments(usize::MAX, 0, usize::MAX);
        if !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn block(&mut self, b: &ast::Block, depth: usize) {
        let (close_start, close_end) = match b.close {
            Some(c) => (c.start, c.end),
            None => (b.span.end, b.span.end),
        };
        let head = block_head_text(b);
        self.block_body(&head, b.span.start, b.open.end, &b.items, close_start, close_end, depth);
    }

    #[allow(clippy::too_many_arguments)]
    fn block_body(
        &mut self,
        head: &str,
        start: usize,
        open_end: usize,
        items: &[Item],
        close_start: usize,
        close_end: usize,
        depth: usize,
    ) {
        let has_inner_comment =
            self.comments[self.next..].iter().any(|c| c.start >= open_end && c.start < close_start);
        if items.is_empty() && !has_inner_comment {
            self.element(start, close_end, depth, &format!("{head} {{}}"));
            return;
        }
        self.element(start, open_end, depth, &format!("{head} {{"));
        self.at_block_start = true;
        for item in items {
            self.item(item, depth + 1);
        }
        // Comments at the end of the block stay inside it.
        self.attach_trailing(close_start);
        self.end_line();
        self.own_line_comments(close_start, depth + 1, close_start);
        self.at_block_start = true;
        self.element(close_start, close_end, depth, "}");
    }

    fn item(&mut self, item: &Item, depth: usize) {
        let text = match item {
            Item::Block(b) => return self.block(b, depth),
            Item::Prop(p) => prop_text(p, depth),
            Item::Pattern(p) => format!("pattern {} = {}", p.name.name, pat_alt_text(&p.body)),
            Item::Offload(o) => offload_text(o, depth),
            Item::Def(d) => def_text(d, depth),
        };
        let span = item.span();
        // An item's span may run over the comments after it.
        let end = self.content_end(span.start, span.end);
        self.element(span.start, end, depth, &text);
    }

    /// Prints one element (item, block head, `}`) covering `start..end` of
    /// the source, with the comments before and inside it.
    fn element(&mut self, start: usize, end: usize, depth: usize, text: &str) {
        self.attach_trailing(start);
        self.end_line();
        // Comments inside a one-line element move above it.
        self.own_line_comments(end, depth, start);
        self.blank_line_before(start);
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
        self.out.push_str(text);
        self.open_line = true;
        self.prev_end = self.prev_end.max(end);
        self.at_block_start = false;
    }

    /// Appends the trailing comments before `upto` to the current line.
    fn attach_trailing(&mut self, upto: usize) {
        while let Some(c) = self.comments.get(self.next) {
            if c.start >= upto || !c.trailing || !self.open_line {
                break;
            }
            self.out.push_str("  ");
            self.out.push_str(&c.text);
            self.prev_end = self.prev_end.max(c.end);
            self.next += 1;
        }
    }

    /// Prints the comments before `upto` on lines of their own. A blank line
    /// before one is looked for up to `gap_limit` at most.
    fn own_line_comments(&mut self, upto: usize, depth: usize, gap_limit: usize) {
        while let Some(c) = self.comments.get(self.next) {
            if c.start >= upto {
                break;
            }
            let (start, end) = (c.start, c.end);
            let text = c.text.clone();
            self.next += 1;
            self.end_line();
            self.blank_line_before(start.min(gap_limit));
            for _ in 0..depth {
                self.out.push_str(INDENT);
            }
            self.out.push_str(&text);
            self.out.push('\n');
            self.prev_end = self.prev_end.max(end);
        }
    }

    fn end_line(&mut self) {
        if self.open_line {
            self.out.push('\n');
            self.open_line = false;
        }
    }

    /// Keeps one blank line where the source has any before `pos`.
    fn blank_line_before(&mut self, pos: usize) {
        let gap = if pos > self.prev_end { self.src.get(self.prev_end..pos) } else { None };
        if !self.at_block_start && gap.is_some_and(has_blank_line) {
            self.out.push('\n');
        }
        self.at_block_start = false;
    }

    /// `end` moved back over blanks and comments, not before `start`.
    fn content_end(&self, start: usize, end: usize) -> usize {
        let b = self.src.as_bytes();
        let mut end = end.min(b.len());
        loop {
            while end > start && b[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            match self.comments.binary_search_by_key(&end, |c| c.end) {
                Ok(i) if self.comments[i].start >= start && self.comments[i].start < end => {
                    end = self.comments[i].start;
                }
                _ => return end,
            }
        }
    }

    /// The offset after the `{` that follows `from`, skipping blanks and
    /// comments; `from` if there is none.
    fn open_brace_end(&self, from: usize) -> usize {
        let b = self.src.as_bytes();
        let mut i = from;
        while i < b.len() {
            if let Some(c) = self.comments.iter().find(|c| c.start == i) {
                i = c.end.max(i + 1);
            } else if b[i] == b'{' {
                return i + 1;
            } else if b[i].is_ascii_whitespace() {
                i += 1;
            } else {
                break;
            }
        }
        from
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Builtin;
    use crate::parse::parse;

    fn fmt(src: &str) -> String {
        let (file, errors) = parse(src);
        assert!(errors.is_empty(), "{errors:?}\n{src}");
        print_file(&file.expect("a file"), src)
    }

    /// The AST's debug text without spans and without the text of numbers
    /// (the printer normalizes it), to compare two parses.
    fn shape(src: &str) -> String {
        let (file, errors) = parse(src);
        assert!(errors.is_empty(), "{errors:?}\n{src}");
        let text = format!("{:?}", file.expect("a file"));
        let text = cut_all(&text, "Span { start: ", "}");
        let text = cut_all(&text, "text: \"", "\"");
        // `Num(128.0, "0128")`: the text follows the value.
        cut_all(&text, ", \"", "\")")
    }

    /// `text` with each `from ... to` cut down to `from`.
    fn cut_all(text: &str, from: &str, to: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(from) {
            out.push_str(&rest[..i + from.len()]);
            rest = rest[i + from.len()..].split_once(to).map_or("", |(_, r)| r);
        }
        out.push_str(rest);
        out
    }

    /// Formatting is idempotent, keeps the AST, and keeps the checked model.
    fn assert_round_trip(src: &str) -> String {
        let once = fmt(src);
        assert_eq!(fmt(&once), once, "not idempotent; first output:\n{once}");
        assert_eq!(shape(&once), shape(src), "AST changed; output:\n{once}");
        if let Ok(model) = crate::check(src, "in.hwm") {
            let again = crate::check(&once, "out.hwm").unwrap_or_else(|d| panic!("{d}\n{once}"));
            assert_eq!(again, model);
        }
        once
    }

    /// `target t { ... }` around `body`, whose lines are indented by four.
    fn target(body: &str) -> String {
        format!("target t {{\n{body}}}\n")
    }

    #[test]
    fn every_construct_in_canonical_form() {
        let src = r#"target   t{
clock 370MHz;platform "t\"x\\y"
  memory L1 { size 0128 KiB ; reserve 11072 B
   holds inputs,weights
   double_buffer
   energy 0.50 pJ/B }
dma L2<->L1 {bandwidth 8 B/cycle
  overhead 1d 27 cycles,2d 43 cycles
  start "s"; wait "w" }
dma L3 -> L2 { bandwidth 1 B/cycle }
unit ne16 {
  macs 32 /cycle
  spatial K 32,C 16
  weight_layout offset(128),pad(C,16),split(C,16,Ci),ternary_pairs()
  scratch im2col = 2*FY*FX*C
  cycles = if depthwise then ceil(OY/3) else sum(i in 0..K, i)+max(1,2,3)
}
api {}
pattern conv = conv2d>>bias?>>requant>>(relu|clip)?
offload conv to ne16 where kernel in {1x1,3x3} and C%16==0 call "ne16_conv"
def load(k, n) = 10+k*-n
def one() = 1
}"#;
        let expected = r#"target t {
    clock 370 MHz
    platform "t\"x\\y"
    memory L1 {
        size 128 KiB
        reserve 11072 B
        holds inputs, weights
        double_buffer
        energy 0.5 pJ/B
    }
    dma L2 <-> L1 {
        bandwidth 8 B/cycle
        overhead 1d 27 cycles, 2d 43 cycles
        start "s"
        wait "w"
    }
    dma L3 -> L2 {
        bandwidth 1 B/cycle
    }
    unit ne16 {
        macs 32/cycle
        spatial K 32, C 16
        weight_layout offset(128), pad(C, 16), split(C, 16, Ci), ternary_pairs()
        scratch im2col = 2 * FY * FX * C
        cycles = if depthwise then ceil(OY / 3) else sum(i in 0..K, i) + max(1, 2, 3)
    }
    api {}
    pattern conv = conv2d >> bias? >> requant >> (relu | clip)?
    offload conv to ne16 where kernel in {1x1, 3x3} and C % 16 == 0 call "ne16_conv"
    def load(k, n) = 10 + k * -n
    def one() = 1
}
"#;
        let out = fmt(src);
        assert_eq!(out, expected);
        assert_eq!(fmt(&out), out);
        assert_eq!(shape(&out), shape(src));
    }

    #[test]
    fn expressions_get_minimal_parentheses() {
        let cases = [
            ("(a + b) * c", "(a + b) * c"),
            ("a - (b - c)", "a - (b - c)"),
            ("(a - b) - c", "a - b - c"),
            ("a + (b + c)", "a + (b + c)"),
            ("a / (b * c)", "a / (b * c)"),
            ("(a * b) / c % d", "a * b / c % d"),
            ("a % (b % c)", "a % (b % c)"),
            ("not (a and b)", "not (a and b)"),
            ("not a and b", "not a and b"),
            ("not (a < b)", "not a < b"),
            ("(not a) == b", "(not a) == b"),
            ("(a < b) == (c < d)", "(a < b) == (c < d)"),
            ("-(a + b)", "-(a + b)"),
            ("- -a", "--a"),
            ("-a * b", "-a * b"),
            ("a * (-b)", "a * -b"),
            ("a or b and c", "a or (b and c)"),
            ("(a or b) and c", "(a or b) and c"),
            ("a or b or c", "a or b or c"),
            ("a or (b or c)", "a or (b or c)"),
            ("(if a then b else c) + 1", "(if a then b else c) + 1"),
            ("if a then b else c + 1", "if a then b else c + 1"),
            ("if (if a then b else c) then d else e", "if if a then b else c then d else e"),
            ("if a then b else if c then d else e", "if a then b else if c then d else e"),
            ("f(if a then 1 else 2, (b))", "f(if a then 1 else 2, b)"),
            ("(a + 1) in {1x1, (3x3)}", "a + 1 in {1x1, 3x3}"),
            ("(x in {1, 2}) and y", "x in {1, 2} and y"),
            ("sum(i in (0)..(K + 1), (i * 2))", "sum(i in 0..K + 1, i * 2)"),
            ("a && b || !c", "(a and b) or not c"),
            ("0.250 * 007", "0.25 * 7"),
            ("1 - 2.5", "1 - 2.5"),
        ];
        for (input, expected) in cases {
            let out = assert_round_trip(&target(&format!("    cycles = {input}\n")));
            assert_eq!(out, target(&format!("    cycles = {expected}\n")), "for {input}");
        }
    }

    #[test]
    fn model_expressions_display_in_source_syntax() {
        let attr = |n: &str| Expr::Attr(n.to_string());
        let num = Expr::Num;
        let bin = |op, l, r| Expr::Binary(op, Box::new(l), Box::new(r));
        let cond = bin(
            BinOp::And,
            Expr::In(Box::new(attr("kernel")), vec![Expr::Pair(1, 1), Expr::Pair(3, 3)]),
            bin(BinOp::Eq, bin(BinOp::Mod, attr("C"), num(16.0)), num(0.0)),
        );
        assert_eq!(cond.to_string(), "kernel in {1x1, 3x3} and C % 16 == 0");
        let ceil = Expr::Builtin(Builtin::Ceil, vec![bin(BinOp::Div, attr("K"), num(32.0))]);
        assert_eq!(ceil.to_string(), "ceil(K / 32)");
        let sum =
            Expr::Sum("i".into(), Box::new(num(0.0)), Box::new(attr("K")), Box::new(Expr::Local("i".into())));
        assert_eq!(sum.to_string(), "sum(i in 0..K, i)");
        let ite = Expr::If(Box::new(attr("a")), Box::new(attr("b")), Box::new(attr("c")));
        assert_eq!(ite.to_string(), "if a then b else c");
        let nested = bin(BinOp::Mul, bin(BinOp::Sub, num(1.0), ite.clone()), num(-2.5));
        assert_eq!(nested.to_string(), "(1 - (if a then b else c)) * -2.5");
        let call = Expr::Call("load".into(), vec![Expr::Unary(UnOp::Not, Box::new(cond.clone()))]);
        assert_eq!(call.to_string(), "load(not (kernel in {1x1, 3x3} and C % 16 == 0))");
        // Parenthesized at the caller's precedence.
        struct At<'a>(&'a Expr, u8);
        impl fmt::Display for At<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_model_expr(f, self.0, self.1)
            }
        }
        assert_eq!(At(&cond, PREC_ATOM).to_string(), "(kernel in {1x1, 3x3} and C % 16 == 0)");
        assert_eq!(At(&ceil, PREC_ATOM).to_string(), "ceil(K / 32)");
        // Each re-parses to the tree it came from (as an AST: checked trees
        // need sema, tested through `assert_round_trip`).
        for e in [&cond, &ceil, &sum, &ite, &nested, &call] {
            let src = target(&format!("    cycles = {e}\n"));
            assert_eq!(fmt(&src), src);
        }
    }

    #[test]
    fn comments_are_kept_in_place() {
        let src = "// file header\n\n/* block\n   header */\ntarget t { // after open\n  // before clock\n  clock 1 MHz // trailing\n  /* own */ memory L1 { size 1 B /* in */ ; ports 2 // p\n    // end of L1\n  } // after L1\n  platform \"a//b\" // url-ish string\n  cycles = a + // inside\n    b\n  // end of target\n}  // after target\n// trailer\n";
        let expected = "// file header\n\n/* block\n   header */\ntarget t {  // after open\n    // before clock\n    clock 1 MHz  // trailing\n    /* own */\n    memory L1 {\n        size 1 B  /* in */\n        ports 2  // p\n        // end of L1\n    }  // after L1\n    platform \"a//b\"  // url-ish string\n    // inside\n    cycles = a + b\n    // end of target\n}  // after target\n// trailer\n";
        let out = assert_round_trip(src);
        assert_eq!(out, expected);
    }

    #[test]
    fn comments_inside_an_item_move_above_it() {
        let src =
            target("    size /* a */ 1 B\n    offload p to u\n        // why\n        where x call \"k\"\n");
        let out = assert_round_trip(&src);
        assert_eq!(
            out,
            target("    /* a */\n    size 1 B\n    // why\n    offload p to u where x call \"k\"\n")
        );
    }

    #[test]
    fn comments_in_empty_blocks_and_targets() {
        let out = assert_round_trip("target t { api { // none\n } }");
        assert_eq!(out, "target t {\n    api {  // none\n    }\n}\n");
        let out = assert_round_trip("target t {\n\n  // only a comment\n\n}");
        assert_eq!(out, "target t {\n    // only a comment\n}\n");
        assert_eq!(assert_round_trip("target t {\n\n}"), "target t {}\n");
    }

    #[test]
    fn blank_lines_are_kept_once() {
        let src = "\n\ntarget t {\n\n\n  clock 1 MHz\n  ports 1\n\n\n\n  memory L1 {\n\n    size 1 B\n\n    // c\n\n    ports 1\n\n  }\n  ;\n\n  api {}\n\n}\n\n\n// end\n\n";
        let expected = "target t {\n    clock 1 MHz\n    ports 1\n\n    memory L1 {\n        size 1 B\n\n        // c\n\n        ports 1\n    }\n\n    api {}\n}\n\n// end\n";
        assert_eq!(assert_round_trip(src), expected);
    }

    #[test]
    fn long_offloads_break_before_where_and_call() {
        let cond = "kernel in {1x1, 3x3} and stride in {1x1, 2x2} and dilation == 1x1 and in_bits == 8 and w_bits == 8";
        let out = assert_round_trip(&target(&format!(
            "    offload conv to ne16 where {cond} call \"ne16_conv\"\n"
        )));
        let expected = format!(
            "    offload conv to ne16\n            where {}\n            call \"ne16_conv\"\n",
            cond.replace(" and ", "\n                  and ")
        );
        assert_eq!(out, target(&expected));
        let short = "    offload conv to ne16 where pad <= 2 call \"k\"\n";
        assert_eq!(assert_round_trip(&target(short)), target(short));
    }

    #[test]
    fn offload_clauses_go_on_continuation_lines() {
        let short = "    offload dw to ne16 where depthwise call \"k\" cycles = K * 2\n";
        assert_eq!(assert_round_trip(&target(short)), target(short));
        let steps = "swap(K, C), offset(128), pad(C, 16), split(C, 16, Ci), bitplanes(8), order(K, C, B, FY, FX, Ci), pack(8)";
        // Clauses written before `call` are printed after it.
        let out = assert_round_trip(&target(&format!(
            "    offload dw to ne16\n  cycles = 3\n call \"ne16_dw\" weight_layout {steps}\n"
        )));
        let expected = "    offload dw to ne16
            call \"ne16_dw\"
            cycles = 3
            weight_layout swap(K, C), offset(128), pad(C, 16), split(C, 16, Ci), bitplanes(8),
                          order(K, C, B, FY, FX, Ci), pack(8)
";
        assert_eq!(out, target(expected));
    }

    #[test]
    fn long_expressions_and_lists_break_at_operators_and_commas() {
        let long_if = "    def f(k) = if depthwise then aaaaaaaaaa + bbbbbbbbbbb + cccccccccc + ddddddddd \
                       else eeeeeeeeeee * ffffffffff + gggggggggggg + hhhhhhhhhhh\n";
        let out = assert_round_trip(&target(long_if));
        assert_eq!(
            out,
            target(
                "    def f(k) = if depthwise then aaaaaaaaaa + bbbbbbbbbbb + cccccccccc + ddddddddd\n               \
                 else eeeeeeeeeee * ffffffffff + gggggggggggg + hhhhhhhhhhh\n"
            )
        );
        let long_sum = format!("    cycles = {}\n", ["abcdefghij"; 12].join(" + "));
        let out = assert_round_trip(&target(&long_sum));
        assert!(out.lines().all(|l| l.chars().count() <= MAX_WIDTH), "{out}");
        assert!(out.contains("\n             + abcdefghij"), "{out}");
        let long_list =
            format!("    unit u {{\n        weight_layout {}\n    }}\n", ["pad(C, 16)"; 12].join(", "));
        let out = assert_round_trip(&target(&long_list));
        assert!(out.lines().all(|l| l.chars().count() <= MAX_WIDTH), "{out}");
        assert!(out.contains(",\n                      pad(C, 16)"), "{out}");
        // Too long, with nothing to break at: printed as is.
        let long_name = format!("    cycles = {}\n", "x".repeat(120));
        assert_eq!(assert_round_trip(&target(&long_name)), target(&long_name));
    }

    #[test]
    fn multi_line_source_joins_when_it_fits() {
        let src = target("    cycles = a +\n        b\n    pattern p = a\n        | b\n    weight_layout pad(C, 16),\n        pack(8)\n");
        assert_eq!(
            assert_round_trip(&src),
            target("    cycles = a + b\n    pattern p = a | b\n    weight_layout pad(C, 16), pack(8)\n")
        );
    }

    #[test]
    fn patterns_keep_their_groups() {
        for p in ["a >> (b >> c)", "(a | b)? >> c", "((a))", "a | b >> c?", "(a >> b?)? | c"] {
            let line = format!("    pattern p = {p}\n");
            assert_eq!(assert_round_trip(&target(&line)), target(&line));
        }
    }

    #[test]
    fn crlf_sources_format_to_lf() {
        let out = assert_round_trip("target t {\r\n  clock 1 MHz // c\r\n\r\n  ports 1\r\n}\r\n");
        assert_eq!(out, "target t {\n    clock 1 MHz  // c\n\n    ports 1\n}\n");
    }

    /// A comment anywhere between tokens survives, exactly once, and the
    /// output is stable.
    #[test]
    fn a_comment_anywhere_is_kept() {
        let src = "target t {\n  clock 1 MHz; memory L1 { size 1 B\n  holds a, b }\n  dma A <-> B { x 1 }\n\n  \
                   cycles = if a then b + c * (d - e)\n else f(g, h) + sum(i in 0..K, i)\n  \
                   pattern p = a >> (b | c)?\n  offload p to u\n where k in {1x1, 3x3} and not z\n call \"k\"\n  \
                   def f(a, b) = a\n}\n";
        let base = shape(src);
        let mut tried = 0;
        for comment in ["/*c*/", "// c\n"] {
            for (i, _) in src.char_indices().filter(|(_, ch)| ch.is_whitespace()) {
                let with = format!("{}{comment}{}", &src[..i], &src[i..]);
                let (file, errors) = parse(&with);
                if !errors.is_empty() || file.is_none() || shape(&with) != base {
                    continue; // not a place a comment may go
                }
                let out = assert_round_trip(&with);
                let kept: Vec<_> = scan_comments(&out).into_iter().map(|c| c.text).collect();
                assert_eq!(kept, [comment.trim_end()], "at {i}:\n{with}\n=>\n{out}");
                tried += 1;
            }
        }
        assert!(tried > 100, "only {tried} placements parsed");
        // Blank lines anywhere: stable too.
        for (i, _) in src.char_indices().filter(|(_, ch)| *ch == '\n') {
            let with = format!("{}\n\n{}", &src[..i], &src[i..]);
            if parse(&with).1.is_empty() && shape(&with) == base {
                assert_round_trip(&with);
            }
        }
    }

    #[test]
    fn a_mismatched_source_does_not_panic() {
        let src = "target t {\n  // c\n  memory L1 { size 1 B }\n  cycles = a * (b + c)\n}\n";
        let (file, _) = parse(src);
        let file = file.expect("a file");
        for other in ["", "x", "/* unterminated", "\"", "é//ü\n/*", src] {
            let _ = print_file(&file, other);
        }
    }

    #[test]
    fn shipped_targets_print_idempotently() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
        let mut seen = 0;
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "hwm")) {
            let src = std::fs::read_to_string(&path).expect("readable");
            let out = assert_round_trip(&src);
            // Every comment survives.
            assert_eq!(scan_comments(&out).len(), scan_comments(&src).len(), "{}", path.display());
            seen += 1;
        }
        assert!(seen > 0 || !dir.exists(), "no .hwm files in {}", dir.display());
    }
}

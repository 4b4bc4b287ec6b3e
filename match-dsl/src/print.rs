//! The canonical printer behind `matchc fmt`, and the source-syntax
//! rendering of checked expressions (`impl Display for expr::Expr`).
//!
//! The printer writes the AST back in one canonical layout (four-space
//! indentation, one property per line, normalized numbers, minimal
//! parentheses) and keeps every comment of the source. Comments are not in
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

/// Offload declarations longer than this go on three lines.
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

/// Writes `e`, in parentheses when it binds looser than `min`. Operands get
/// the least precedence the grammar accepts there, and a right operand of
/// the same precedence is parenthesized for every operator (not just `-`, `/`,
/// `%`) so that the printed text parses back to the same tree.
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
            let (lmin, rmin) = if prec == PREC_CMP { (PREC_ADD, PREC_ADD) } else { (prec, prec + 1) };
            write_expr(w, l, lmin)?;
            write!(w, " {} ", op.symbol())?;
            write_expr(w, r, rmin)?;
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

fn write_list<E: ExprView, W: fmt::Write>(w: &mut W, items: &[E]) -> fmt::Result {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        write_expr(w, x, PREC_IF)?;
    }
    Ok(())
}

fn expr_text(e: &ast::Expr) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_expr(&mut s, e, PREC_IF);
    s
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

fn prop_text(p: &ast::Prop) -> String {
    let key = &p.key.name;
    match &p.value {
        PropValue::Flag => key.clone(),
        PropValue::Values(vs) if vs.is_empty() => key.clone(),
        PropValue::Values(vs) => {
            let vs: Vec<String> = vs.iter().map(value_text).collect();
            format!("{key} {}", vs.join(", "))
        }
        PropValue::Expr(e) => format!("{key} = {}", expr_text(e)),
        PropValue::Named(n, e) => format!("{key} {} = {}", n.name, expr_text(e)),
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
    let cond = o.condition.as_ref().map(|c| format!("where {}", expr_text(c)));
    let call = format!("call {}", string_lit(&o.kernel.value));
    let mut parts = vec![head];
    parts.extend(cond);
    parts.push(call);
    let one_line = parts.join(" ");
    let indent = depth * INDENT.len();
    if indent + one_line.chars().count() <= MAX_WIDTH {
        return one_line;
    }
    // The grammar allows a newline before `where` and before `call`.
    let cont = format!("\n{}", " ".repeat(indent + 2 * INDENT.len()));
    parts.join(&cont)
}

fn def_text(d: &ast::DefDecl) -> String {
    let params: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
    let params = if params.is_empty() { String::new() } else { format!("({})", params.join(", ")) };
    format!("def {}{params} = {}", d.name.name, expr_text(&d.body))
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
            Item::Prop(p) => prop_text(p),
            Item::Pattern(p) => format!("pattern {} = {}", p.name.name, pat_alt_text(&p.body)),
            Item::Offload(o) => offload_text(o, depth),
            Item::Def(d) => def_text(d),
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

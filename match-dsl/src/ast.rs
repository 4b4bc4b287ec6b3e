//! The syntax tree of a `.hwm` file, exactly as written, every node with its
//! byte span. The parser builds it; the checker (`sema`) turns it into a
//! [`crate::HwModel`]; the printer writes it back in canonical form.

/// A byte range in the source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: Ident,
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Prop(Prop),
    Block(Block),
    Pattern(PatternDecl),
    Offload(OffloadDecl),
    Def(DefDecl),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Prop(p) => p.span,
            Item::Block(b) => b.span,
            Item::Pattern(p) => p.span,
            Item::Offload(o) => o.span,
            Item::Def(d) => d.span,
        }
    }
}

/// `memory L1 { ... }`, `dma L2 <-> L1 { ... }`, `unit ne16 { ... }`, `api { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub kind: Ident,
    pub name: Option<Ident>,
    /// For `dma A -> B` / `dma A <-> B`: the arrow and the second memory.
    pub link: Option<(Arrow, Ident)>,
    pub items: Vec<Item>,
    pub open: Span,
    /// `None` when the closing brace is missing (already reported).
    pub close: Option<Span>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrow {
    /// `->`: one direction.
    Forward,
    /// `<->`: both directions.
    Both,
}

/// `key`, `key v1, v2`, `key = expr` or `key name = expr`.
#[derive(Clone, Debug, PartialEq)]
pub struct Prop {
    pub key: Ident,
    pub value: PropValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PropValue {
    Flag,
    Values(Vec<Value>),
    Expr(Expr),
    Named(Ident, Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number with an optional unit suffix: `128 KiB`, `8 B/cycle`, `3`.
    Quantity(Quantity),
    Str(Str),
    Ident(Ident),
    /// `K 32`, `1d 27 cycles`.
    Labeled(Ident, Quantity),
    /// A layout step: `pad(C, 16)`.
    Step(Step),
}

impl Value {
    pub fn span(&self) -> Span {
        match self {
            Value::Quantity(q) => q.span,
            Value::Str(s) => s.span,
            Value::Ident(i) => i.span,
            Value::Labeled(l, q) => l.span.to(q.span),
            Value::Step(s) => s.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    pub value: f64,
    /// The number as written, so the printer can reproduce it.
    pub text: String,
    pub unit: Option<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Str {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: Ident,
    pub args: Vec<Value>,
    pub span: Span,
}

/// `pattern NAME = ...`
#[derive(Clone, Debug, PartialEq)]
pub struct PatternDecl {
    pub name: Ident,
    pub body: PatAlt,
    pub span: Span,
}

/// Alternatives: `a | b`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatAlt {
    pub options: Vec<PatSeq>,
    pub span: Span,
}

/// A chain: `a >> b? >> c`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatSeq {
    pub steps: Vec<PatStep>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PatStep {
    pub atom: PatAtom,
    pub optional: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PatAtom {
    /// An operator or the name of another pattern.
    Name(Ident),
    Group(PatAlt),
}

/// `offload PATTERN to UNIT [where COND] call "kernel" [CLAUSE ...]`
#[derive(Clone, Debug, PartialEq)]
pub struct OffloadDecl {
    pub pattern: Ident,
    pub unit: Ident,
    pub condition: Option<Expr>,
    pub kernel: Str,
    /// The clauses after `call`, in order, as written: each has the shape
    /// of a property (`weight_layout STEPS`, `cycles = EXPR`); the checker
    /// knows the keys.
    pub clauses: Vec<Prop>,
    pub span: Span,
}

/// `def NAME(PARAMS) = EXPR`
#[derive(Clone, Debug, PartialEq)]
pub struct DefDecl {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Num(f64, String),
    /// `3x3`
    Pair(i64, i64),
    Var(Ident),
    Unary(crate::expr::UnOp, Box<Expr>),
    Binary(crate::expr::BinOp, Box<Expr>, Box<Expr>),
    Call(Ident, Vec<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `sum(i in lo..hi, body)`: `hi` excluded.
    Sum(Ident, Box<Expr>, Box<Expr>, Box<Expr>),
    /// `x in {a, b}`
    In(Box<Expr>, Vec<Expr>),
}

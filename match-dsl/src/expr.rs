//! Expressions of the validated model: constraints and cost formulas, with
//! no spans, so that two parses of the same text compare equal. Also the
//! evaluator, which runs them against a [`crate::Layer`].

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// Real division: `ceil(K / 32)` means what it says.
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    /// Binding strength: larger binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 6,
        }
    }
}

/// The built-in functions of the expression language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Builtin {
    Ceil,
    Floor,
    /// Integer division rounding down: `div(a, b) = floor(a / b)`.
    IntDiv,
    Mod,
    Min,
    Max,
    Abs,
    Log2,
}

impl Builtin {
    pub const ALL: [Builtin; 8] = [
        Builtin::Ceil,
        Builtin::Floor,
        Builtin::IntDiv,
        Builtin::Mod,
        Builtin::Min,
        Builtin::Max,
        Builtin::Abs,
        Builtin::Log2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Ceil => "ceil",
            Builtin::Floor => "floor",
            Builtin::IntDiv => "div",
            Builtin::Mod => "mod",
            Builtin::Min => "min",
            Builtin::Max => "max",
            Builtin::Abs => "abs",
            Builtin::Log2 => "log2",
        }
    }

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// `(min, max)` argument count; `max` is `None` for variadic.
    pub fn arity(self) -> (usize, Option<usize>) {
        match self {
            Builtin::Ceil | Builtin::Floor | Builtin::Abs | Builtin::Log2 => (1, Some(1)),
            Builtin::IntDiv | Builtin::Mod => (2, Some(2)),
            Builtin::Min | Builtin::Max => (2, None),
        }
    }
}

/// A checked expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Num(f64),
    Bool(bool),
    Pair(i64, i64),
    /// A layer attribute (`K`, `kernel`, ...).
    Attr(String),
    /// A parameter of the enclosing `def`, or the variable of a `sum`.
    Local(String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Builtin(Builtin, Vec<Expr>),
    /// A call of a target-level `def`.
    Call(String, Vec<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `sum(var in lo..hi, body)`, `hi` excluded.
    Sum(String, Box<Expr>, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<Expr>),
}

/// The value of an expression.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Num(f64),
    Bool(bool),
    Pair(i64, i64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{}", crate::print::format_number(*n)),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Pair(a, b) => write!(f, "{a}x{b}"),
        }
    }
}

/// The static type of an expression, checked by `sema`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Type {
    Num,
    Bool,
    Pair,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Num => "a number",
            Type::Bool => "a condition",
            Type::Pair => "a pair such as 3x3",
        })
    }
}

/// Why an expression could not be evaluated. Checked models only fail at
/// evaluation for value reasons (division by zero, runaway sums).
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

/// Bound on the iterations of one `sum`, and on `def` call depth, so that a
/// hostile file cannot make evaluation hang.
pub const MAX_SUM_ITERATIONS: i64 = 1 << 20;
pub const MAX_CALL_DEPTH: usize = 64;

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::print::write_model_expr(f, self, 0)
    }
}

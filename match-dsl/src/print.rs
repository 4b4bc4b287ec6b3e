//! The canonical printer. (Stub; being written.)

use crate::ast;
use crate::expr::Expr;
use std::fmt;

pub fn print_file(_file: &ast::File, _source: &str) -> String {
    String::new()
}

/// A number as the printer writes it: integers without a fraction.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

pub fn write_model_expr(f: &mut fmt::Formatter<'_>, e: &Expr, _prec: u8) -> fmt::Result {
    write!(f, "{e:?}")
}

//! The `.hwm` hardware-model language of match.
//!
//! A target is described once in a `.hwm` file; this crate parses it
//! ([`parse`]), checks it ([`sema`]) into the validated [`HwModel`] that every
//! later stage requires, renders every error with its location
//! ([`diag`]), prints it back in canonical form ([`print`]), and evaluates
//! its constraints and cost expressions against a [`Layer`] ([`eval`]).

pub mod ast;
pub mod diag;
pub mod eval;
pub mod expr;
pub mod layer;
pub mod model;
pub mod parse;
pub mod print;
pub mod sema;

pub use diag::{Diagnostic, Diagnostics};
pub use eval::Verdict;
pub use expr::{EvalError, Value};
pub use layer::Layer;
pub use model::HwModel;

use std::path::Path;

/// Parses and checks `source`; `file` names it in diagnostics.
pub fn check(source: &str, file: &str) -> Result<HwModel, Diagnostics> {
    let (ast, mut errors) = parse::parse(source);
    let model = match ast {
        Some(ast) => match sema::check(&ast, source) {
            Ok(model) if errors.is_empty() => Some(model),
            Ok(_) => None,
            Err(sema_errors) => {
                errors.extend(sema_errors);
                None
            }
        },
        None => None,
    };
    match model {
        Some(m) => Ok(m),
        None => {
            errors.sort_by_key(|d| d.primary.span.start);
            Err(Diagnostics { file: file.to_string(), source: source.to_string(), errors })
        }
    }
}

/// Formats `source` canonically. Fails with the parse errors, if any; a file
/// that parses but does not check is still formatted.
pub fn format(source: &str, file: &str) -> Result<String, Diagnostics> {
    let (ast, errors) = parse::parse(source);
    match ast {
        Some(ast) if errors.is_empty() => Ok(print::print_file(&ast, source)),
        _ => Err(Diagnostics { file: file.to_string(), source: source.to_string(), errors }),
    }
}

/// Why a `.hwm` file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Io { path: String, error: std::io::Error },
    Invalid(Diagnostics),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io { path, error } => write!(f, "{path}: cannot read: {error}"),
            LoadError::Invalid(d) => write!(f, "{d}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads and checks a `.hwm` file.
pub fn load(path: &Path) -> Result<HwModel, LoadError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| LoadError::Io { path: shown.clone(), error })?;
    let source = String::from_utf8(bytes).map_err(|_| LoadError::Io {
        path: shown.clone(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    check(&source, &shown).map_err(LoadError::Invalid)
}

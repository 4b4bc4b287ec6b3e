//! The shipped targets of match: one `.hwm` file per SoC in this crate's
//! folder, and beside each its platform folder of C files.
//!
//! The build script discovers every `targets/*.hwm` file, so adding a target
//! is adding a file: no Rust changes. A target is named by its file stem
//! (`gap9` for `gap9.hwm`). Users may also give a path to their own `.hwm`
//! file ([`resolve`]); its platform folder is then relative to that file.

use match_dsl::{Diagnostics, HwModel, LoadError};
use std::fmt;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// The names of the shipped targets, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(name, _, _)| *name)
}

fn entry(name: &str) -> Option<&'static (&'static str, &'static str, Option<&'static str>)> {
    SHIPPED.iter().find(|(n, _, _)| *n == name)
}

/// The text of the shipped target `name`.
pub fn source(name: &str) -> Option<&'static str> {
    entry(name).map(|(_, src, _)| *src)
}

/// The file name a shipped target is reported under in diagnostics.
pub fn file_name(name: &str) -> Option<String> {
    entry(name).map(|(n, _, _)| format!("targets/{n}.hwm"))
}

/// The shipped target `name`, checked; `None` if there is no such target.
pub fn get(name: &str) -> Option<Result<HwModel, Diagnostics>> {
    let (n, src, _) = entry(name)?;
    Some(match_dsl::check(src, &format!("targets/{n}.hwm")))
}

/// The platform folder (C headers, host emulation, device adapter) of the
/// shipped target `name`: `targets/<platform>` as its file names it.
pub fn platform_dir(name: &str) -> Option<PathBuf> {
    let (_, _, platform) = entry(name)?;
    platform.map(|p| Path::new(env!("CARGO_MANIFEST_DIR")).join(p))
}

/// Why a target could not be resolved.
#[derive(Debug)]
pub enum TargetError {
    /// Not a shipped name (and not a path).
    Unknown { name: String, shipped: Vec<&'static str> },
    /// A shipped target that does not check (a bug in this crate).
    Invalid(Diagnostics),
    /// A `.hwm` file given by path could not be read or does not check.
    Load(LoadError),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Unknown { name, shipped } => write!(
                f,
                "unknown target `{name}`: the shipped targets are {}; \
                 or give a path to a .hwm file",
                shipped.join(", ")
            ),
            TargetError::Invalid(d) => write!(f, "{d}"),
            TargetError::Load(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TargetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TargetError::Load(e) => Some(e),
            _ => None,
        }
    }
}

/// Whether a `--target` value names a file rather than a shipped target:
/// anything containing a path separator or ending in `.hwm`.
pub fn is_path(spec: &str) -> bool {
    spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR) || spec.ends_with(".hwm")
}

/// Resolves a `--target` value: a shipped target's name, or a path to a
/// `.hwm` file. Returns the checked model and its platform folder (for a
/// file, the `platform` it names relative to the file's folder), if any.
pub fn resolve(spec: &str) -> Result<(HwModel, Option<PathBuf>), TargetError> {
    if is_path(spec) {
        let path = Path::new(spec);
        let model = match_dsl::load(path).map_err(TargetError::Load)?;
        let dir = model.platform.as_ref().map(|p| path.parent().unwrap_or(Path::new("")).join(p));
        return Ok((model, dir));
    }
    match get(spec) {
        Some(Ok(model)) => Ok((model, platform_dir(spec))),
        Some(Err(d)) => Err(TargetError::Invalid(d)),
        None => Err(TargetError::Unknown { name: spec.to_string(), shipped: names().collect() }),
    }
}

//! `include_hwm!` and `hwm!`: a `.hwm` hardware target as typed Rust,
//! checked at compile time.
//!
//! Both macros expand to *items in the current module*, so the caller names
//! the module:
//!
//! ```
//! mod gap9 {
//!     // Relative to this crate's Cargo.toml.
//!     match_macros::include_hwm!("../targets/gap9.hwm");
//! }
//!
//! mod demo {
//!     match_macros::hwm! {
//!         target demo {
//!             clock 100 MHz
//!             memory L2 { size 512 kB }
//!             unit cpu { host; macs 1/cycle; compute_in L2 }
//!             pattern conv = conv2d >> bias? >> requant
//!             offload conv to cpu call "cpu_conv"
//!         }
//!     }
//! }
//!
//! assert_eq!(gap9::Unit::HOST.compute_in(), gap9::Memory::L2);
//! assert_eq!(demo::Memory::L2.size(), 512_000);
//! assert_eq!(gap9::model().units.len(), gap9::Unit::ALL.len());
//! ```
//!
//! Use one target per module: the items have fixed names.
//!
//! # What is generated
//!
//! - `pub const NAME: &str`, `pub const CLOCK_HZ: u64`,
//!   `pub const PLATFORM: Option<&str>`;
//! - `pub enum Memory` with one variant per memory, in file order, and
//!   `Memory::ALL`, `.name()`, `.size()`, `.usable()`, `.is_external()`,
//!   `Memory::from_name(..)`, `Display`;
//! - `pub enum Unit` likewise, with `Unit::ALL`, `Unit::HOST`, `.name()`,
//!   `.macs_per_cycle()`, `.is_host()`, `.cores()`, `.compute_in()`,
//!   `Unit::from_name(..)`, `Display`;
//! - `pub struct PatternDesc { name, sequences }` and `pub const PATTERNS`,
//!   each pattern with every operator sequence it matches, longest first;
//! - `pub struct OffloadDesc { pattern, unit: Unit, kernel, conditional }`
//!   and `pub const OFFLOADS`;
//! - `pub fn model() -> match_dsl::HwModel`: the full checked model, equal
//!   to what `match_dsl::check` gives at run time (it is embedded as JSON).
//!
//! Variants are the `.hwm` names in CamelCase (`ne16` -> `Ne16`,
//! `cluster_l1` -> `ClusterL1`, `L2` stays `L2`).
//!
//! # Requirements on the including crate
//!
//! The expansion refers to `::match_dsl` (for `HwModel` and, through
//! `match_dsl::__private`, `serde_json`), so the including crate depends on
//! `match-dsl` under that name. It needs no other dependency.
//!
//! # Errors
//!
//! An invalid target is a compile error, never a panic: for `include_hwm!`
//! at the path literal, for `hwm!` at the token of the first error; the
//! message holds every diagnostic rendered as by `matchc` (file:line:col,
//! the source line and a caret). For `hwm!` the lines and columns are those
//! of the Rust file (on Rust 1.88 and later, where macros can see token
//! locations).
//!
//! # `include_hwm!` paths
//!
//! Relative to the including crate's `CARGO_MANIFEST_DIR`. The expansion
//! `include_bytes!`es the file, so editing it rebuilds the crate.
//!
//! # `hwm!` input
//!
//! The input is turned back into text from the token positions (and the
//! braces' source text), so line breaks end properties as in a file. Where
//! token locations are unavailable, tokens are joined by spaces and
//! properties inside braces still keep their line breaks if the compiler
//! provides the braces' source text; otherwise end properties with `;`.
//! The input must lex as Rust tokens: `//` and `/* */` comments work, a lone
//! `'` does not.

mod expand;

use proc_macro::TokenStream;

/// Includes a `.hwm` file (path relative to the crate's `Cargo.toml`) as
/// typed items in the current module. See the crate documentation.
#[proc_macro]
pub fn include_hwm(input: TokenStream) -> TokenStream {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok();
    expand::include_hwm(input.into(), manifest_dir.as_deref()).into()
}

/// A target written inline in the `.hwm` language, as typed items in the
/// current module. See the crate documentation.
#[proc_macro]
pub fn hwm(input: TokenStream) -> TokenStream {
    expand::hwm(input.into()).into()
}

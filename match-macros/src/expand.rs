//! The expansion of `include_hwm!` and `hwm!` as plain functions over
//! `proc_macro2`, so that it runs (and is unit-tested) outside a compiler.
//!
//! Three steps:
//! - getting the source: a file next to the including crate's manifest
//!   ([`include_hwm`]), or the macro input turned back into text ([`inline_source`]);
//! - checking it with `match_dsl::check`;
//! - generating the items ([`expand_source`] / [`model_items`]).
//!
//! Every failure becomes a `compile_error!` at the offending span; nothing
//! here panics on user input.

use match_dsl::model::HwModel;
use match_dsl::Diagnostics;
use proc_macro2::{Delimiter, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A failure to expand: where to point and what to say.
#[derive(Clone, Debug)]
pub struct ExpandError {
    pub span: Span,
    pub message: String,
}

impl ExpandError {
    fn new(span: Span, message: impl Into<String>) -> Self {
        ExpandError { span, message: message.into() }
    }

    /// `compile_error!("message")` at the span, usable in item position.
    pub fn to_compile_error(&self) -> TokenStream {
        let msg = Literal::string(&self.message);
        quote_spanned!(self.span=> ::core::compile_error!(#msg);)
    }
}

/// Checks `source` and generates the items of its target. `file_label` names
/// the source in diagnostics; `tracked`, when given, is the absolute path of
/// the file, which the expansion `include_bytes!`es so that cargo rebuilds
/// the including crate when the file changes.
///
/// On failure: the diagnostics of the checker, or (`Ok(Err(..))`) why the
/// model cannot be turned into Rust items (names that collide once made
/// CamelCase).
pub fn expand_source(
    source: &str,
    file_label: &str,
    tracked: Option<&Path>,
) -> Result<Result<TokenStream, ItemsError>, Diagnostics> {
    let model = match_dsl::check(source, file_label)?;
    Ok(model_items(&model, tracked))
}

/// `include_hwm!("path")`: `manifest_dir` is the including crate's
/// `CARGO_MANIFEST_DIR`, against which a relative path is resolved.
pub fn include_hwm(input: TokenStream, manifest_dir: Option<&str>) -> TokenStream {
    match include_hwm_inner(input, manifest_dir) {
        Ok(tokens) => tokens,
        Err((error, tracked)) => {
            let mut out = error.to_compile_error();
            out.extend(tracked.map(|p| track(&p)));
            out
        }
    }
}

type IncludeError = (ExpandError, Option<PathBuf>);

fn include_hwm_inner(input: TokenStream, manifest_dir: Option<&str>) -> Result<TokenStream, IncludeError> {
    let lit: syn::LitStr = syn::parse2(input).map_err(|e| {
        (
            ExpandError::new(
                e.span(),
                "include_hwm! takes one string literal: the path of a .hwm file, \
                 relative to the including crate's Cargo.toml (CARGO_MANIFEST_DIR)",
            ),
            None,
        )
    })?;
    let span = lit.span();
    let written = lit.value();
    let resolved = resolve(&written, manifest_dir);
    let bytes = std::fs::read(&resolved).map_err(|e| {
        let message = format!("include_hwm!: cannot read {}: {e}", resolved.display());
        (ExpandError::new(span, message), None)
    })?;
    let resolved = resolved.canonicalize().unwrap_or(resolved);
    let Ok(source) = String::from_utf8(bytes) else {
        let message = format!("include_hwm!: {} is not UTF-8 text", resolved.display());
        return Err((ExpandError::new(span, message), Some(resolved)));
    };
    match expand_source(&source, &written, Some(&resolved)) {
        Ok(Ok(tokens)) => Ok(tokens),
        Ok(Err(e)) => Err((ExpandError::new(span, e.message), Some(resolved))),
        Err(diags) => Err((ExpandError::new(span, render(&diags)), Some(resolved))),
    }
}

/// The file `written` names: itself when absolute, else under `manifest_dir`
/// (or the current directory when that is unknown).
fn resolve(written: &str, manifest_dir: Option<&str>) -> PathBuf {
    let path = Path::new(written);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match manifest_dir {
        Some(dir) => Path::new(dir).join(path),
        None => std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf()),
    }
}

fn render(diags: &Diagnostics) -> String {
    diags.render().trim_end().to_string()
}

/// `const _: &[u8] = include_bytes!("<abs path>");` so that the compiler
/// records the file as a dependency of the including crate.
fn track(path: &Path) -> TokenStream {
    let lit = Literal::string(&path.to_string_lossy());
    quote! { const _: &[u8] = ::core::include_bytes!(#lit); }
}

/// `hwm! { target NAME { ... } }`.
pub fn hwm(input: TokenStream) -> TokenStream {
    let inline = inline_source(&input);
    match expand_source(&inline.text, &inline.file, None) {
        Ok(Ok(tokens)) => tokens,
        Ok(Err(e)) => {
            let span = e
                .name
                .as_deref()
                .and_then(|n| word_offset(&inline.text, n))
                .map_or_else(|| inline.first_span(), |offset| inline.span_at(offset));
            ExpandError::new(span, e.message).to_compile_error()
        }
        Err(diags) => {
            let offset = diags.errors.first().map_or(0, |d| d.primary.span.start);
            ExpandError::new(inline.span_at(offset), render(&diags)).to_compile_error()
        }
    }
}

// ---------------------------------------------------------------------------
// The macro input as text.

/// A line and a 0-based column in characters, as `proc_macro2` reports them.
type Pos = (usize, usize);

/// One token of the input (delimiters count as tokens), with where it is in
/// the Rust file and in the rebuilt text.
#[derive(Clone, Debug)]
struct Leaf {
    span: Span,
    start: Pos,
    end: Pos,
    /// Byte range in [`InlineSource::text`], when known token by token.
    bytes: Option<(usize, usize)>,
}

/// The `hwm!` input turned back into `.hwm` text.
#[derive(Clone, Debug)]
pub struct InlineSource {
    pub text: String,
    /// What diagnostics call the text: the Rust file when the layout is exact.
    pub file: String,
    /// True when line/column of `text` are those of the Rust file.
    pub exact_layout: bool,
    leaves: Vec<Leaf>,
    /// Top-level group spans with their byte range in `text`, for errors
    /// inside a group that was pasted as one piece.
    groups: Vec<(Span, usize, usize)>,
}

impl InlineSource {
    fn first_span(&self) -> Span {
        self.leaves.first().map_or_else(Span::call_site, |l| l.span)
    }

    /// The span of the token that contains byte `offset` of the text, or of
    /// the last token before it.
    pub fn span_at(&self, offset: usize) -> Span {
        if self.leaves.is_empty() {
            return Span::call_site();
        }
        if self.exact_layout {
            let (line, col) = match_dsl::diag::line_col(&self.text, offset);
            let pos = (line, col - 1);
            let containing = self.leaves.iter().find(|l| l.start <= pos && pos < l.end);
            let before = self.leaves.iter().filter(|l| l.start <= pos).max_by_key(|l| l.start);
            return containing.or(before).unwrap_or(&self.leaves[0]).span;
        }
        let by_bytes = self.leaves.iter().filter_map(|l| l.bytes.map(|b| (b, l.span)));
        let mut best: Option<Span> = None;
        for ((start, end), span) in by_bytes {
            if start <= offset && offset < end {
                return span;
            }
            if start <= offset {
                best = Some(span);
            }
        }
        if let Some((span, _, _)) = self.groups.iter().find(|(_, s, e)| *s <= offset && offset < *e) {
            return *span;
        }
        best.unwrap_or(self.leaves[0].span)
    }
}

/// Rebuilds the text of a token stream.
///
/// When the tokens carry line/column (a compiler from 1.88 on, or
/// `proc_macro2` outside a compiler), each token is put back at its line and
/// column, so line breaks (which end `.hwm` properties) survive and the
/// rebuilt text lines up with the Rust file: diagnostics then name the Rust
/// file's lines. A brace group whose source text is available is pasted
/// whole (keeping comments). Without locations, tokens are joined by spaces,
/// and a brace group's source text (which keeps its line breaks) is used
/// when available.
pub fn inline_source(input: &TokenStream) -> InlineSource {
    let mut leaves = Vec::new();
    collect_leaves(input, &mut leaves);
    let positioned = !leaves.is_empty()
        && leaves.iter().all(|l| l.start.0 >= 1 && l.end >= l.start)
        && leaves.windows(2).all(|w| w[0].end <= w[1].start);
    if positioned {
        let mut w = Writer::default();
        if place_stream(input, &mut w) {
            let file = leaves[0].span.file();
            return InlineSource { text: w.text, file, exact_layout: true, leaves, groups: Vec::new() };
        }
    }
    let mut text = String::new();
    let mut groups = Vec::new();
    let mut leaves = Vec::new();
    spaced(input, &mut text, &mut leaves, &mut groups, true);
    InlineSource { text, file: "hwm! input".to_string(), exact_layout: false, leaves, groups }
}

fn pos(lc: proc_macro2::LineColumn) -> Pos {
    (lc.line, lc.column)
}

fn leaf(span: Span) -> Leaf {
    Leaf { span, start: pos(span.start()), end: pos(span.end()), bytes: None }
}

fn collect_leaves(stream: &TokenStream, out: &mut Vec<Leaf>) {
    for tt in stream.clone() {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = (g.span_open(), g.span_close());
                if g.delimiter() == Delimiter::None {
                    collect_leaves(&g.stream(), out);
                    continue;
                }
                out.push(leaf(open));
                collect_leaves(&g.stream(), out);
                out.push(leaf(close));
            }
            other => out.push(leaf(other.span())),
        }
    }
}

/// Text being laid out at given lines and columns.
#[derive(Default)]
struct Writer {
    text: String,
    /// Current line (1-based) and column (0-based, characters).
    line: usize,
    col: usize,
}

impl Writer {
    /// Writes `s` at `at`; false if that is behind what is already written.
    fn put(&mut self, at: Pos, s: &str) -> bool {
        if self.line == 0 {
            self.line = 1;
        }
        if at.0 < self.line || (at.0 == self.line && at.1 < self.col) {
            return false;
        }
        while self.line < at.0 {
            self.text.push('\n');
            self.line += 1;
            self.col = 0;
        }
        while self.col < at.1 {
            self.text.push(' ');
            self.col += 1;
        }
        for c in s.chars() {
            self.text.push(c);
            if c == '\n' {
                self.line += 1;
                self.col = 0;
            } else {
                self.col += 1;
            }
        }
        true
    }
}

/// Lays out a stream; false when the tokens' positions are inconsistent.
fn place_stream(stream: &TokenStream, w: &mut Writer) -> bool {
    for tt in stream.clone() {
        let ok = match &tt {
            TokenTree::Group(g) if g.delimiter() == Delimiter::None => place_stream(&g.stream(), w),
            TokenTree::Group(g) => match pasteable(g) {
                Some(text) => w.put(pos(g.span().start()), &text),
                None => {
                    let (open, close) = delimiters(g.delimiter());
                    w.put(pos(g.span_open().start()), open)
                        && place_stream(&g.stream(), w)
                        && w.put(pos(g.span_close().start()), close)
                }
            },
            other => {
                let text = other.span().source_text().unwrap_or_else(|| other.to_string());
                w.put(pos(other.span().start()), &text)
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A group's own source text, when it is available and plausible (starts
/// and ends with the delimiters, spans as many lines as the group).
fn pasteable(g: &proc_macro2::Group) -> Option<String> {
    let text = g.span().source_text()?;
    let (open, close) = delimiters(g.delimiter());
    let lines = g.span().end().line.checked_sub(g.span().start().line)?;
    (text.starts_with(open) && text.ends_with(close) && text.matches('\n').count() == lines).then_some(text)
}

fn delimiters(d: Delimiter) -> (&'static str, &'static str) {
    match d {
        Delimiter::Brace => ("{", "}"),
        Delimiter::Parenthesis => ("(", ")"),
        Delimiter::Bracket => ("[", "]"),
        Delimiter::None => ("", ""),
    }
}

/// The fallback layout: tokens joined by spaces.
fn spaced(
    stream: &TokenStream,
    text: &mut String,
    leaves: &mut Vec<Leaf>,
    groups: &mut Vec<(Span, usize, usize)>,
    top: bool,
) {
    for tt in stream.clone() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push(' ');
        }
        match &tt {
            TokenTree::Group(g) if g.delimiter() == Delimiter::None => {
                spaced(&g.stream(), text, leaves, groups, top)
            }
            TokenTree::Group(g) => {
                let start = text.len();
                let source = g.span().source_text().filter(|s| {
                    let (open, close) = delimiters(g.delimiter());
                    s.starts_with(open) && s.ends_with(close)
                });
                if let (Some(source), true) = (source, top) {
                    text.push_str(&source);
                    groups.push((g.span(), start, text.len()));
                    leaves.push(Leaf { bytes: Some((start, start + 1)), ..leaf(g.span_open()) });
                    continue;
                }
                let (open, close) = delimiters(g.delimiter());
                text.push_str(open);
                leaves.push(Leaf { bytes: Some((start, text.len())), ..leaf(g.span_open()) });
                spaced(&g.stream(), text, leaves, groups, false);
                text.push(' ');
                let at = text.len();
                text.push_str(close);
                leaves.push(Leaf { bytes: Some((at, text.len())), ..leaf(g.span_close()) });
            }
            other => {
                let start = text.len();
                text.push_str(&other.to_string());
                leaves.push(Leaf { bytes: Some((start, text.len())), ..leaf(other.span()) });
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The generated items.

/// A Rust variant name for a `.hwm` name: CamelCase (`ne16` -> `Ne16`,
/// `cluster_l1` -> `ClusterL1`, `L2` stays), or the name itself when that
/// leaves nothing usable (`_1`).
pub fn variant_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out == "Self" {
        out.push('_');
    }
    let valid = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && s != "_"
    };
    if valid(&out) {
        Some(out)
    } else if valid(name) {
        Some(name.to_string())
    } else {
        None
    }
}

/// Why a checked model cannot become Rust items.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemsError {
    pub message: String,
    /// The `.hwm` name at fault, to point at.
    pub name: Option<String>,
}

impl ItemsError {
    fn new(message: String, name: &str) -> Self {
        ItemsError { message, name: Some(name.to_string()) }
    }
}

/// The byte offset of the first occurrence of `word` as a whole word.
fn word_offset(text: &str, word: &str) -> Option<usize> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        !text[..i].chars().next_back().is_some_and(is_word)
            && !text[i + word.len()..].chars().next().is_some_and(is_word)
    })
}

/// Variant identifiers for `names`, or why they cannot be made.
fn variants<'a>(kind: &str, names: impl Iterator<Item = &'a str>) -> Result<Vec<Ident>, ItemsError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut out = Vec::new();
    for name in names {
        let Some(v) = variant_name(name) else {
            let message = format!("{kind} `{name}` cannot be named as a Rust enum variant; rename it");
            return Err(ItemsError::new(message, name));
        };
        if let Some(prev) = seen.insert(v.clone(), name) {
            let message = format!(
                "{kind}s `{prev}` and `{name}` both become the Rust variant `{v}`; rename one of them"
            );
            return Err(ItemsError::new(message, name));
        }
        out.push(Ident::new(&v, Span::call_site()));
    }
    Ok(out)
}

fn f64_lit(v: f64) -> TokenStream {
    if v.is_finite() {
        let lit = Literal::f64_suffixed(v);
        quote!(#lit)
    } else if v.is_nan() {
        quote!(::core::f64::NAN)
    } else if v > 0.0 {
        quote!(::core::f64::INFINITY)
    } else {
        quote!(::core::f64::NEG_INFINITY)
    }
}

/// The items of a checked model; see the crate documentation for the list.
pub fn model_items(model: &HwModel, tracked: Option<&Path>) -> Result<TokenStream, ItemsError> {
    let mems = variants("memory", model.memories.iter().map(|m| m.name.as_str()))?;
    let units = variants("unit", model.units.iter().map(|u| u.name.as_str()))?;
    let mem_of = |name: &str| model.memories.iter().position(|m| m.name == name).map(|i| &mems[i]);
    let unit_of = |name: &str| model.units.iter().position(|u| u.name == name).map(|i| &units[i]);

    let name = &model.name;
    let clock = model.clock_hz;
    let platform = match &model.platform {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };

    let mem_names: Vec<&str> = model.memories.iter().map(|m| m.name.as_str()).collect();
    let mem_sizes: Vec<u64> = model.memories.iter().map(|m| m.size).collect();
    let mem_usable: Vec<u64> = model.memories.iter().map(|m| m.usable()).collect();
    let mem_external: Vec<bool> = model.memories.iter().map(|m| m.external).collect();
    let mem_docs: Vec<String> = model
        .memories
        .iter()
        .map(|m| format!("`{}`: {} bytes ({} usable).", m.name, m.size, m.usable()))
        .collect();

    let unit_names: Vec<&str> = model.units.iter().map(|u| u.name.as_str()).collect();
    let unit_macs: Vec<TokenStream> = model.units.iter().map(|u| f64_lit(u.macs_per_cycle)).collect();
    let unit_host: Vec<bool> = model.units.iter().map(|u| u.host).collect();
    let unit_cores: Vec<u32> = model.units.iter().map(|u| u.cores).collect();
    let unit_docs: Vec<String> = model
        .units
        .iter()
        .map(|u| {
            let host = if u.host { ", the host" } else { "" };
            format!("`{}`: {} MACs/cycle, computes in `{}`{host}.", u.name, u.macs_per_cycle, u.compute_in)
        })
        .collect();
    let mut unit_compute_in = Vec::new();
    for u in &model.units {
        let Some(m) = mem_of(&u.compute_in) else {
            let message = format!("unit `{}` computes in unknown memory `{}`", u.name, u.compute_in);
            return Err(ItemsError::new(message, &u.name));
        };
        unit_compute_in.push(m);
    }
    let host = model.units.iter().position(|u| u.host).map(|i| {
        let v = &units[i];
        quote! {
            /// The unit that runs the generic kernels and the control code.
            pub const HOST: Unit = Unit::#v;
        }
    });

    let patterns = model.patterns.iter().map(|p| {
        let pname = &p.name;
        let seqs = p.body.sequences().into_iter().map(|seq| quote!(&[#(#seq),*]));
        quote!(PatternDesc { name: #pname, sequences: &[#(#seqs),*] })
    });
    let mut offloads = Vec::new();
    for o in &model.offloads {
        let Some(u) = unit_of(&o.unit) else {
            let message = format!("offload of `{}` to unknown unit `{}`", o.pattern, o.unit);
            return Err(ItemsError::new(message, &o.unit));
        };
        let (pattern, kernel, conditional) = (&o.pattern, &o.kernel, o.condition.is_some());
        offloads.push(quote! {
            OffloadDesc { pattern: #pattern, unit: Unit::#u, kernel: #kernel, conditional: #conditional }
        });
    }

    let json = serde_json::to_string(model)
        .map_err(|e| ItemsError { message: format!("cannot serialize the model: {e}"), name: None })?;
    let tracking = tracked.map(track);
    let target_doc = format!("The target `{name}`.");

    Ok(quote! {
        #tracking

        #[doc = #target_doc]
        pub const NAME: &str = #name;
        /// Clock frequency in Hz.
        pub const CLOCK_HZ: u64 = #clock;
        /// The folder of the target's C files, relative to its `.hwm` file.
        pub const PLATFORM: ::core::option::Option<&str> = #platform;

        /// The target's memories, in file order.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Memory {
            #( #[doc = #mem_docs] #mems, )*
        }

        impl Memory {
            /// Every memory, in file order.
            pub const ALL: &'static [Memory] = &[#(Memory::#mems),*];

            /// The name in the `.hwm` file.
            pub const fn name(self) -> &'static str {
                match self { #(Memory::#mems => #mem_names,)* }
            }
            /// Size in bytes.
            pub const fn size(self) -> u64 {
                match self { #(Memory::#mems => #mem_sizes,)* }
            }
            /// Size less the reserve, in bytes.
            pub const fn usable(self) -> u64 {
                match self { #(Memory::#mems => #mem_usable,)* }
            }
            /// Off-chip: reached only through DMA.
            pub const fn is_external(self) -> bool {
                match self { #(Memory::#mems => #mem_external,)* }
            }
            /// The memory with this `.hwm` name.
            pub fn from_name(name: &str) -> ::core::option::Option<Memory> {
                Memory::ALL.iter().copied().find(|m| m.name() == name)
            }
        }

        impl ::core::fmt::Display for Memory {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.name())
            }
        }

        /// The target's compute units, in file order.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Unit {
            #( #[doc = #unit_docs] #units, )*
        }

        impl Unit {
            /// Every unit, in file order.
            pub const ALL: &'static [Unit] = &[#(Unit::#units),*];
            #host

            /// The name in the `.hwm` file.
            pub const fn name(self) -> &'static str {
                match self { #(Unit::#units => #unit_names,)* }
            }
            /// Nominal peak MACs per cycle.
            pub const fn macs_per_cycle(self) -> f64 {
                match self { #(Unit::#units => #unit_macs,)* }
            }
            /// Whether it runs the generic kernels (exactly one unit does).
            pub const fn is_host(self) -> bool {
                match self { #(Unit::#units => #unit_host,)* }
            }
            /// Number of cores.
            pub const fn cores(self) -> u32 {
                match self { #(Unit::#units => #unit_cores,)* }
            }
            /// The memory its operands must be in.
            pub const fn compute_in(self) -> Memory {
                match self { #(Unit::#units => Memory::#unit_compute_in,)* }
            }
            /// The unit with this `.hwm` name.
            pub fn from_name(name: &str) -> ::core::option::Option<Unit> {
                Unit::ALL.iter().copied().find(|u| u.name() == name)
            }
        }

        impl ::core::fmt::Display for Unit {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.name())
            }
        }

        /// A named operator chain of the target.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct PatternDesc {
            /// The pattern's name.
            pub name: &'static str,
            /// Every operator sequence it matches, longest first.
            pub sequences: &'static [&'static [&'static str]],
        }

        /// The target's patterns, in file order.
        pub const PATTERNS: &[PatternDesc] = &[#(#patterns),*];

        /// An `offload PATTERN to UNIT [where ...] call "kernel"` rule.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct OffloadDesc {
            /// The pattern (or operator) offloaded.
            pub pattern: &'static str,
            /// Where it runs.
            pub unit: Unit,
            /// The C function called.
            pub kernel: &'static str,
            /// Whether the rule has a `where` condition (see [`model`]).
            pub conditional: bool,
        }

        /// The target's offload rules, in file order.
        pub const OFFLOADS: &[OffloadDesc] = &[#(#offloads),*];

        /// The checked model, equal to what `match_dsl::check` gives for the
        /// same source at run time.
        pub fn model() -> ::match_dsl::HwModel {
            const JSON: &str = #json;
            ::match_dsl::__private::serde_json::from_str(JSON)
                .expect("the model embedded by match-macros deserializes")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const DEMO: &str = "target demo {
    clock 100 MHz
    memory L2 { size 512 kB }
    unit cpu { host; macs 1/cycle; compute_in L2 }
    pattern conv = conv2d >> bias? >> requant
    offload conv to cpu call \"cpu_conv\"
}
";

    fn ts(s: &str) -> TokenStream {
        TokenStream::from_str(s).expect("lexes")
    }

    fn checker_works() -> bool {
        match_dsl::check(DEMO, "demo.hwm").is_ok()
    }

    #[test]
    fn variant_names() {
        assert_eq!(variant_name("L2").as_deref(), Some("L2"));
        assert_eq!(variant_name("ne16").as_deref(), Some("Ne16"));
        assert_eq!(variant_name("cluster_l1").as_deref(), Some("ClusterL1"));
        assert_eq!(variant_name("self").as_deref(), Some("Self_"));
        assert_eq!(variant_name("_1").as_deref(), Some("_1"));
        assert_eq!(variant_name("_"), None);
        let err = variants("memory", ["a_b", "aB"].into_iter()).unwrap_err();
        assert!(err.message.contains("`AB`"), "{err:?}");
        assert_eq!(err.name.as_deref(), Some("aB"));
        assert_eq!(word_offset("unit ab { }; unit aB {}", "aB"), Some(18));
        assert_eq!(word_offset("xaB aBc", "aB"), None);
    }

    #[test]
    fn inline_text_keeps_lines_and_columns() {
        let src = "target demo {\n    clock 100 MHz\n    memory L2 { size 512 kB } // c\n}";
        let inline = inline_source(&ts(src));
        assert!(inline.exact_layout);
        // The group is pasted whole, comment included.
        assert_eq!(inline.text, src);
    }

    #[test]
    fn inline_text_from_tokens_when_no_group_text() {
        // Tokens built by hand have no source text: laid out by position
        // is impossible (call-site spans), so they are joined by spaces.
        let tokens: TokenStream = quote!(target demo { clock 100 MHz; memory L2 { size 512 kB } });
        let inline = inline_source(&tokens);
        assert!(!inline.exact_layout);
        assert_eq!(inline.text, "target demo { clock 100 MHz ; memory L2 { size 512 kB } }");
        let at = inline.text.find("L2").unwrap();
        // Call-site spans are all alike; this checks only that no panic occurs.
        let _ = inline.span_at(at);
    }

    #[test]
    fn inline_text_parses() {
        // Indented as in a Rust file, after other lines.
        let src = format!("\n\n  fn x() {{}}\n        {}", DEMO.replace('\n', "\n        "));
        let stream = ts(&src).into_iter().skip(4).collect::<TokenStream>();
        let inline = inline_source(&stream);
        assert!(inline.exact_layout);
        assert!(
            inline.text.starts_with("\n\n\n        target demo {\n            clock"),
            "{:?}",
            inline.text
        );
        let (ast, errors) = match_dsl::parse::parse(&inline.text);
        assert!(errors.is_empty() && ast.is_some(), "{errors:?}");
    }

    #[test]
    fn error_offsets_map_to_tokens() {
        let src = "target demo {\n    clock 100 MHz\n    memory L2 { size 512 kB }\n}";
        let inline = inline_source(&ts(src));
        let at = inline.text.find("512").unwrap();
        let span = inline.span_at(at);
        assert_eq!((span.start().line, span.start().column), (3, 21));
        assert_eq!(span.source_text().as_deref(), Some("512"));
        // Inside whitespace: the token before.
        let span = inline.span_at(at - 1);
        assert_eq!(span.source_text().as_deref(), Some("size"));
        // Past the end: the closing brace.
        let span = inline.span_at(inline.text.len() + 10);
        assert_eq!(span.source_text().as_deref(), Some("}"));
    }

    #[test]
    fn include_errors_are_compile_errors() {
        let out = include_hwm(ts("\"no/such/file.hwm\""), Some("/nonexistent-dir")).to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("/nonexistent-dir/no/such/file.hwm"), "{out}");
        let out = include_hwm(ts("42"), Some("/")).to_string();
        assert!(out.contains("compile_error") && out.contains("string literal"), "{out}");
    }

    #[test]
    fn invalid_inline_source_is_a_compile_error() {
        let out = hwm(ts("target demo { clock 100 MHz\n memory L2 { size 0 B } }")).to_string();
        assert!(out.contains("compile_error"), "{out}");
        let out = hwm(TokenStream::new()).to_string();
        assert!(out.contains("compile_error"), "{out}");
    }

    #[test]
    fn expands_demo() {
        if !checker_works() {
            eprintln!("match_dsl::check does not accept the demo yet; skipping");
            return;
        }
        let out = hwm(ts(DEMO));
        let text = out.to_string();
        assert!(!text.contains("compile_error"), "{text}");
        let file: syn::File = syn::parse2(out).expect("the expansion parses as items");
        let names: Vec<String> = file
            .items
            .iter()
            .filter_map(|i| match i {
                syn::Item::Enum(e) => Some(e.ident.to_string()),
                syn::Item::Struct(s) => Some(s.ident.to_string()),
                syn::Item::Fn(f) => Some(f.sig.ident.to_string()),
                syn::Item::Const(c) => Some(c.ident.to_string()),
                _ => None,
            })
            .collect();
        for n in ["NAME", "CLOCK_HZ", "Memory", "Unit", "PATTERNS", "OFFLOADS", "model"] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        assert!(text.contains("\"cpu_conv\""), "{text}");
        assert!(text.contains("Unit :: Cpu"), "{text}");
    }

    #[test]
    fn embedded_json_round_trips() {
        let Ok(model) = match_dsl::check(DEMO, "demo.hwm") else {
            eprintln!("match_dsl::check does not accept the demo yet; skipping");
            return;
        };
        let json = serde_json::to_string(&model).unwrap();
        let back: HwModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, model);
    }
}

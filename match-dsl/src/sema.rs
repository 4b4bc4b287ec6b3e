//! The checker: turns a parsed [`ast::File`] into the validated [`HwModel`].
//!
//! It resolves every name (memories, units, patterns, defs, layer
//! attributes), checks every value against the property tables of
//! `docs/hwm-spec.md` (units, ranges, required fields), type-checks every
//! expression, and collects all the errors of a file instead of stopping at
//! the first. It never panics, whatever the input.
//!
//! The work goes in phases:
//! 1. the items are flattened: a block or declaration nested in a block
//!    means a missing `}` (reported once per block), and is then checked as
//!    if it were at the target level, so one missing brace hides nothing;
//! 2. defs are registered, so that an expression may call a def defined
//!    further down;
//! 3. target properties and blocks, in file order; memory references are
//!    resolved once every memory is known;
//! 4. patterns, in file order (a pattern may use earlier ones, inlined);
//! 5. def bodies, lazily, so that recursion is found where it closes;
//! 6. offloads, which name patterns and units.

use crate::ast::{self, Arrow, Block, Ident, Item, Prop, PropValue, Quantity, Span, Value};
use crate::diag::{suggest, Diagnostic};
use crate::expr::{BinOp, Builtin, Expr, Type, UnOp, MAX_CALL_DEPTH};
use crate::layer::{self, ATTRIBUTES};
use crate::model::{
    self, ApiBinding, DType, Def, Dim, Dma, HwModel, LayoutStep, Memory, Offload, Pattern, PatternExpr,
    RequantForm, Scratch, TensorClass, Unit, API_ROLES, OPERATORS,
};
use std::collections::HashMap;

/// Checks a parsed file: the validated model, or every error found.
pub fn check(file: &ast::File, source: &str) -> Result<HwModel, Vec<Diagnostic>> {
    let mut checker = Checker::new(&file.target, source);
    let model = checker.run();
    if checker.errors.is_empty() {
        return Ok(model);
    }
    // Some syntax-tree spans end with the blanks after the token: trim them
    // so that carets sit exactly under the offending text.
    let mut errors = checker.errors;
    for d in &mut errors {
        d.primary.span = tight(source, d.primary.span);
        for l in &mut d.secondary {
            l.span = tight(source, l.span);
        }
    }
    Err(errors)
}

/// `span` without leading and trailing spaces and tabs (unless that would
/// leave nothing).
fn tight(source: &str, span: Span) -> Span {
    let Some(text) = source.get(span.start..span.end) else { return span };
    let blank = |c: char| c == ' ' || c == '\t';
    let trimmed = text.trim_matches(blank);
    if trimmed.is_empty() {
        return span;
    }
    let start = span.start + (text.len() - text.trim_start_matches(blank).len());
    Span::new(start, start + trimmed.len())
}

/// What may appear at the target level.
const TARGET_ITEMS: &[&str] =
    &["clock", "platform", "memory", "dma", "unit", "api", "pattern", "offload", "def"];
const TARGET_PROPS: &[&str] = &["clock", "platform"];
const BLOCK_KINDS: &[&str] = &["memory", "dma", "unit", "api"];
const MEMORY_KEYS: &[&str] = &[
    "size",
    "reserve",
    "bandwidth",
    "read_bandwidth",
    "write_bandwidth",
    "ports",
    "latency",
    "holds",
    "external",
    "double_buffer",
    "energy",
];
const DMA_KEYS: &[&str] = &["bandwidth", "setup", "dims", "max", "overhead", "start", "wait", "energy"];
const UNIT_KEYS: &[&str] = &[
    "host",
    "cores",
    "macs",
    "spatial",
    "compute_in",
    "weights_in",
    "call_overhead",
    "scratch",
    "inputs",
    "weights",
    "outputs",
    "requant",
    "weight_layout",
    "activation_layout",
    "cycles",
    "energy",
    "adc",
    "scale_bits",
    "partial_sums",
];

/// Layout steps and how they are written.
const STEPS: &[(&str, &str)] = &[
    ("order", "order(D, ...)"),
    ("swap", "swap(A, B)"),
    ("pad", "pad(D, m)"),
    ("split", "split(D, n, NEW)"),
    ("merge", "merge(A, B, NEW)"),
    ("offset", "offset(v)"),
    ("bitplanes", "bitplanes(bits)"),
    ("pack", "pack(n)"),
    ("reverse_bytes", "reverse_bytes(n)"),
    ("append_bias", "append_bias(n)"),
    ("expand", "expand(n)"),
    ("ternary_pairs", "ternary_pairs()"),
];
/// The clauses an offload rule may add after `call`: each overrides the
/// unit's property of the same name for the matches of the rule.
/// The clauses of one offload rule ([`Offload`]'s optional fields).
#[derive(Default)]
struct OffloadClauses {
    weight_layout: Option<Vec<LayoutStep>>,
    activation_layout: Option<Vec<LayoutStep>>,
    cycles: Option<Expr>,
    tile_condition: Option<Expr>,
}

const OFFLOAD_CLAUSES: &[&str] = &["weight_layout", "activation_layout", "cycles", "tile_condition"];
const WEIGHT_DIMS: &[&str] = &["K", "C", "FY", "FX"];
const ACTIVATION_DIMS: &[&str] = &["C", "H", "W"];

/// Bounds that keep later stages (matchers enumerate a pattern's chains) cheap.
const MAX_PATTERN_NODES: usize = 4096;
const MAX_PATTERN_CHAINS: u64 = 4096;

/// What a quantity measures, and the units it may be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Measure {
    Bytes,
    Cycles,
    Bandwidth,
    Rate,
    Frequency,
    EnergyPerByte,
    EnergyPerMac,
}

impl Measure {
    const ALL: [Measure; 7] = [
        Measure::Bytes,
        Measure::Cycles,
        Measure::Bandwidth,
        Measure::Rate,
        Measure::Frequency,
        Measure::EnergyPerByte,
        Measure::EnergyPerMac,
    ];

    fn units(self) -> &'static [(&'static str, u64)] {
        match self {
            Measure::Bytes => &[("B", 1), ("kB", 1000), ("KiB", 1024), ("MB", 1_000_000), ("MiB", 1 << 20)],
            Measure::Cycles => &[("cycle", 1), ("cycles", 1)],
            Measure::Bandwidth => &[("B/cycle", 1)],
            Measure::Rate => &[("/cycle", 1)],
            Measure::Frequency => &[("Hz", 1), ("kHz", 1000), ("MHz", 1_000_000), ("GHz", 1_000_000_000)],
            Measure::EnergyPerByte => &[("pJ/B", 1)],
            Measure::EnergyPerMac => &[("pJ/MAC", 1)],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Measure::Bytes => "bytes",
            Measure::Cycles => "cycles",
            Measure::Bandwidth => "bytes per cycle",
            Measure::Rate => "operations per cycle",
            Measure::Frequency => "hertz",
            Measure::EnergyPerByte => "pJ per byte",
            Measure::EnergyPerMac => "pJ per MAC",
        }
    }

    /// The word for a count of this measure: "a whole number of bytes".
    fn counted(self) -> &'static str {
        match self {
            Measure::Frequency => "Hz",
            other => other.describe(),
        }
    }

    fn example(self) -> &'static str {
        match self {
            Measure::Bytes => "128 KiB",
            Measure::Cycles => "30 cycles",
            Measure::Bandwidth => "8 B/cycle",
            Measure::Rate => "32/cycle",
            Measure::Frequency => "370 MHz",
            Measure::EnergyPerByte => "1.5 pJ/B",
            Measure::EnergyPerMac => "0.5 pJ/MAC",
        }
    }

    fn unit_names(self) -> Vec<&'static str> {
        self.units().iter().map(|(n, _)| *n).collect()
    }
}

/// The range a value must fall in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    Positive,
    NonNegative,
}

/// The result of scaling a decimal number exactly.
enum Exact {
    Whole(u64),
    Fraction,
    TooLarge,
    /// Not a plain decimal (should not happen): fall back to the f64.
    Unknown,
}

/// `text` (a decimal such as `1.5`) times `mult`, computed exactly.
fn exact_scaled(text: &str, mult: u64) -> Exact {
    let t = text.trim_start_matches('-');
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let frac = frac.trim_end_matches('0');
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return Exact::Unknown;
    }
    let int = int.trim_start_matches('0');
    if int.len() > 20 {
        return Exact::TooLarge;
    }
    // A nonzero digit past the 20th decimal place can never become whole:
    // the multipliers hold at most 2^20 or 10^9.
    if frac.len() > 20 {
        return Exact::Fraction;
    }
    let mut mantissa: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        mantissa = match mantissa.checked_mul(10).and_then(|m| m.checked_add(u128::from(b - b'0'))) {
            Some(m) => m,
            None => return Exact::TooLarge,
        };
    }
    let scale = 10u128.pow(frac.len() as u32);
    let Some(total) = mantissa.checked_mul(u128::from(mult)) else {
        return Exact::TooLarge;
    };
    if total % scale != 0 {
        return Exact::Fraction;
    }
    match u64::try_from(total / scale) {
        Ok(v) => Exact::Whole(v),
        Err(_) => Exact::TooLarge,
    }
}

/// `activation_layout any`: the unit's kernels take activations in the
/// layout they arrive in (see [`Unit::any_layout`]).
fn is_any_layout(p: &Prop) -> bool {
    matches!(&p.value, PropValue::Values(vs) if matches!(vs.as_slice(), [Value::Ident(id)] if id.name == "any"))
}

fn is_c_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `1d` -> 1.
fn dim_label(s: &str) -> Option<u32> {
    let digits = s.strip_suffix('d').or_else(|| s.strip_suffix('D'))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The block kind a property key belongs to, for "put it inside" hints.
fn owner_of(key: &str) -> Option<&'static str> {
    if MEMORY_KEYS.contains(&key) {
        Some("memory")
    } else if UNIT_KEYS.contains(&key) {
        Some("unit")
    } else if DMA_KEYS.contains(&key) {
        Some("dma")
    } else if API_ROLES.iter().any(|(r, _)| *r == key) {
        Some("api")
    } else {
        None
    }
}

/// An example line for a property, for help texts.
fn example(kind: &str, key: &str) -> Option<&'static str> {
    Some(match (kind, key) {
        (_, "clock") => "clock 100 MHz",
        (_, "platform") => "platform \"my_chip\"",
        (_, "size") => "size 128 KiB",
        (_, "reserve") => "reserve 4 KiB",
        (_, "bandwidth") => "bandwidth 8 B/cycle",
        (_, "read_bandwidth") => "read_bandwidth 8 B/cycle",
        (_, "write_bandwidth") => "write_bandwidth 8 B/cycle",
        (_, "ports") => "ports 2",
        (_, "latency") => "latency 2 cycles",
        (_, "holds") => "holds inputs, outputs",
        (_, "setup") => "setup 30 cycles",
        (_, "dims") => "dims 3",
        (_, "max") => "max 65535 B",
        (_, "overhead") => "overhead 1d 27 cycles, 2d 43 cycles",
        (_, "start") => "start \"my_dma_start\"",
        (_, "wait") => "wait \"my_dma_wait\"",
        ("memory" | "dma", "energy") => "energy 1.5 pJ/B",
        ("unit", "energy") => "energy 0.5 pJ/MAC",
        (_, "cores") => "cores 8",
        (_, "macs") => "macs 32/cycle",
        (_, "spatial") => "spatial K 32, C 16",
        (_, "compute_in") => "compute_in L1",
        (_, "weights_in") => "weights_in L1",
        (_, "call_overhead") => "call_overhead 550 cycles",
        (_, "scratch") => "scratch im2col = 2 * FY * FX * C",
        (_, "inputs") => "inputs i8, u8",
        (_, "weights") => "weights i8",
        (_, "outputs") => "outputs i8",
        (_, "requant") => "requant scale_shift",
        (_, "weight_layout") => "weight_layout pad(C, 16), pack(2)",
        (_, "activation_layout") => "activation_layout order(H, W, C)",
        (_, "cycles") => "cycles = ceil(K / 32) * OY * OX",
        (_, "adc") => "adc 6",
        (_, "scale_bits") => "scale_bits 8, 32",
        (_, "partial_sums") => "partial_sums 8/cycle",
        _ => return None,
    })
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// A "did you mean" hint. A one-letter word only matches a different case
/// (`k` for `K`): any other one-letter name is one edit away, and `W` is
/// not a typo of `K`.
fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<String> {
    let short = word.chars().count() <= 1;
    let candidates = candidates.into_iter().filter(|c| !short || c.eq_ignore_ascii_case(word));
    suggest(word, candidates).map(|s| format!("did you mean `{s}`?"))
}

/// DORY / paper spellings of the dimension names, for help texts.
fn alias_hint(name: &str) -> Option<&'static str> {
    Some(match name {
        "H" | "Hi" | "IH" => "input rows are `IY`, output rows `OY`",
        "W" | "Wi" | "IW" => "input columns are `IX`, output columns `OX`",
        "Ho" | "OH" => "output rows are `OY`",
        "Wo" | "OW" => "output columns are `OX`",
        "Cin" | "Ci" | "IC" | "Ki" => "input channels are `C`",
        "Cout" | "Co" | "OC" | "Ko" => "output channels are `K`",
        _ => return None,
    })
}

/// The span of everything after a property's key.
fn value_span(p: &Prop) -> Span {
    match &p.value {
        PropValue::Flag => p.key.span,
        PropValue::Values(vs) => match (vs.first(), vs.last()) {
            (Some(a), Some(b)) => a.span().to(b.span()),
            _ => p.key.span,
        },
        PropValue::Expr(e) => e.span,
        PropValue::Named(n, e) => n.span.to(e.span),
    }
}

/// `memory L1`, `dma L2 -> L1`, `api`.
fn block_title(b: &Block) -> String {
    let mut s = b.kind.name.clone();
    if let Some(n) = &b.name {
        s.push(' ');
        s.push_str(&n.name);
    }
    if let Some((arrow, n)) = &b.link {
        s.push_str(match arrow {
            Arrow::Forward => " -> ",
            Arrow::Both => " <-> ",
        });
        s.push_str(&n.name);
    }
    s
}

/// The kind and name(s) of a block: where "missing field" errors point.
fn header_span(b: &Block) -> Span {
    let mut span = b.kind.span;
    if let Some(n) = &b.name {
        span = span.to(n.span);
    }
    if let Some((_, n)) = &b.link {
        span = span.to(n.span);
    }
    span
}

/// The first token of an item: where a "missing `}`" points.
fn item_start(item: &Item) -> Span {
    let kw = |span: Span, len: usize| Span::new(span.start, (span.start + len).min(span.end.max(span.start)));
    match item {
        Item::Prop(p) => p.key.span,
        Item::Block(b) => b.kind.span,
        Item::Pattern(p) => kw(p.span, "pattern".len()),
        Item::Offload(o) => kw(o.span, "offload".len()),
        Item::Def(d) => kw(d.span, "def".len()),
    }
}

fn item_title(item: &Item) -> String {
    match item {
        Item::Prop(p) => format!("`{}`", p.key.name),
        Item::Block(b) => format!("`{}`", block_title(b)),
        Item::Pattern(p) => format!("`pattern {}`", p.name.name),
        Item::Offload(o) => format!("`offload {}`", o.pattern.name),
        Item::Def(d) => format!("`def {}`", d.name.name),
    }
}

/// The dimensions of a tensor while its layout steps are checked.
struct Dims {
    /// Outermost first, as far as it is known (see `ordered`).
    names: Vec<String>,
    /// False after a step that could not be checked: names are then no
    /// longer verified, so one mistake does not cascade.
    sure: bool,
    /// False after `split` or `bitplanes` (they leave the place of their
    /// new dimension to a following `order`) until an `order`: `merge`
    /// needs the order.
    ordered: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemRole {
    DmaEnd,
    ComputeIn,
    WeightsIn,
}

struct MemRef<'a> {
    name: &'a Ident,
    role: MemRole,
}

enum DefState {
    Todo,
    Busy,
    Done(Expr, Option<Type>),
}

struct DefSlot<'a> {
    decl: &'a ast::DefDecl,
    state: DefState,
    /// Part of a recursion cycle already reported.
    in_cycle: bool,
}

struct Checker<'a> {
    src: &'a str,
    target: &'a ast::Target,
    errors: Vec<Diagnostic>,
    /// The target's `}` is missing (the parser reports it).
    target_unclosed: bool,
    defs: Vec<DefSlot<'a>>,
    def_names: HashMap<&'a str, usize>,
    def_stack: Vec<usize>,
    depth_reported: bool,
    mem_refs: Vec<MemRef<'a>>,
    memory_blocks: usize,
    memory_names: Vec<(&'a str, Span)>,
    unit_blocks: usize,
    unit_names: Vec<(&'a str, Span)>,
    pattern_names: Vec<&'a str>,
    hosts: Vec<Span>,
    api_block: Option<Span>,
    /// Directions covered by a dma: (from, to, the dma's header).
    dma_dirs: Vec<(&'a str, &'a str, Span)>,
    target_props: Vec<&'a Prop>,
}

impl<'a> Checker<'a> {
    fn new(target: &'a ast::Target, src: &'a str) -> Self {
        Checker {
            src,
            target,
            errors: Vec::new(),
            target_unclosed: false,
            defs: Vec::new(),
            def_names: HashMap::new(),
            def_stack: Vec::new(),
            depth_reported: false,
            mem_refs: Vec::new(),
            memory_blocks: 0,
            memory_names: Vec::new(),
            unit_blocks: 0,
            unit_names: Vec::new(),
            pattern_names: Vec::new(),
            hosts: Vec::new(),
            api_block: None,
            dma_dirs: Vec::new(),
            target_props: Vec::new(),
        }
    }

    fn error(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    fn text(&self, span: Span) -> &'a str {
        self.src.get(span.start..span.end).unwrap_or("")
    }

    /// Whether a line (or `;`-separated part) in `region` starts with
    /// `key` although no property `key` was parsed: a line the parser
    /// rejected (and reported), so "missing `key`" would only repeat it.
    fn written_but_unparsed(&self, region: Span, key: &str) -> bool {
        let text = self.text(region);
        text.split(['\n', ';', '{']).any(|part| {
            part.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        })
    }

    fn describe(&self, v: &Value) -> String {
        match v {
            Value::Str(s) => format!("the string \"{}\"", s.value),
            Value::Ident(i) => format!("`{}`", i.name),
            other => format!("`{}`", self.text(other.span())),
        }
    }

    fn run(&mut self) -> HwModel {
        let t = self.target;
        let mut items: Vec<&'a Item> = Vec::new();
        self.target_unclosed = self.target_is_unclosed();
        self.flatten(&t.items, &mut items);
        for item in &items {
            if let Item::Def(d) = item {
                self.register_def(d);
            }
        }

        let mut model = HwModel {
            name: t.name.name.clone(),
            clock_hz: 0,
            platform: None,
            memories: Vec::new(),
            dmas: Vec::new(),
            units: Vec::new(),
            patterns: Vec::new(),
            offloads: Vec::new(),
            defs: Vec::new(),
            api: Vec::new(),
        };
        for item in &items {
            match item {
                Item::Prop(p) => self.target_prop(p, &mut model),
                Item::Block(b) => self.block(b, &mut model),
                _ => {}
            }
        }
        self.resolve_memory_refs(&model.memories);

        let patterns: Vec<&'a ast::PatternDecl> =
            items.iter().filter_map(|i| if let Item::Pattern(p) = i { Some(p) } else { None }).collect();
        self.patterns(&patterns, &mut model);

        for i in 0..self.defs.len() {
            self.ensure_def(i);
        }
        for (i, slot) in self.defs.iter().enumerate() {
            if self.def_names.get(slot.decl.name.name.as_str()) != Some(&i) {
                continue;
            }
            if let DefState::Done(body, _) = &slot.state {
                model.defs.push(Def {
                    name: slot.decl.name.name.clone(),
                    params: slot.decl.params.iter().map(|p| p.name.clone()).collect(),
                    body: body.clone(),
                });
            }
        }

        for item in &items {
            if let Item::Offload(o) = item {
                if let Some(o) = self.offload(o) {
                    model.offloads.push(o);
                }
            }
        }

        self.target_requirements();
        model
    }

    // ----- structure: nesting and braces -----

    fn flatten(&mut self, items: &'a [Item], out: &mut Vec<&'a Item>) {
        for item in items {
            out.push(item);
            if let Item::Block(b) = item {
                self.flatten_block(b, out);
            }
        }
    }

    /// Hoists what is nested in `b` (blocks and declarations belong at the
    /// target level), reporting that once per block.
    ///
    /// When the target's `}` is missing, the parser has already located the
    /// block that lost its `}` (and a block without `}` implies that), so
    /// nothing is reported here. Otherwise an item nested at the block's own
    /// indentation or left of it means a missing `}`; one indented further
    /// was put inside on purpose.
    fn flatten_block(&mut self, b: &'a Block, out: &mut Vec<&'a Item>) {
        let title = block_title(b);
        let mut reported = self.target_unclosed;
        for child in &b.items {
            if matches!(child, Item::Prop(_)) {
                continue;
            }
            if !reported {
                reported = true;
                let at = item_start(child);
                let what = item_title(child);
                let d = if self.column(at.start) <= self.column(b.kind.span.start) {
                    Diagnostic::new(at, format!("missing `}}` to close `{title}`"))
                        .label(format!("{what} starts here, inside `{title}`"))
                        .secondary(b.open, format!("`{title}` opened here"))
                        .help(format!("add `}}` to end `{title}` before this line"))
                } else {
                    let kind = if matches!(child, Item::Block(_)) {
                        "blocks"
                    } else {
                        "patterns, offload rules and defs"
                    };
                    Diagnostic::new(at, format!("{what} cannot be inside `{title}`"))
                        .secondary(b.open, format!("`{title}` opened here"))
                        .help(format!("{kind} go at the target level: move {what} out of `{title}`"))
                };
                self.error(d);
            }
            out.push(child);
            if let Item::Block(c) = child {
                self.flatten_block(c, out);
            }
        }
    }

    /// The column (in characters) of a byte offset.
    fn column(&self, offset: usize) -> usize {
        let offset = offset.min(self.src.len());
        let before = self.src.get(..offset).unwrap_or("");
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        before[start..].chars().count()
    }

    /// Whether the target's own `}` is missing (the syntax tree does not
    /// record it): looked for in the text after the last item, skipping
    /// comments and strings.
    fn target_is_unclosed(&self) -> bool {
        let t = self.target;
        let open = self.next_brace(t.name.span.end, b'{');
        let from = t.items.iter().map(|i| i.span().end).max().or(open.map(|o| o + 1));
        match from {
            Some(from) => self.next_brace(from, b'}').is_none(),
            None => false,
        }
    }

    /// The offset of the next `ch` from `from`, outside comments and strings.
    fn next_brace(&self, from: usize, ch: u8) -> Option<usize> {
        let b = self.src.as_bytes();
        let mut i = from;
        while i < b.len() {
            match b[i] {
                c if c == ch => return Some(i),
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    i += 2;
                    while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                        i += 1;
                    }
                    i += 2;
                }
                b'"' => {
                    i += 1;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                        if b[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
        None
    }

    // ----- target level -----

    fn target_prop(&mut self, p: &'a Prop, model: &mut HwModel) {
        let key = p.key.name.as_str();
        if !TARGET_PROPS.contains(&key) {
            self.unknown_item(&p.key, true);
            return;
        }
        if let Some(first) = self.target_props.iter().find(|q| q.key.name == key) {
            let d = Diagnostic::new(
                p.key.span,
                format!("`{key}` is set twice in target `{}`", self.target.name.name),
            )
            .label("set again here")
            .secondary(first.key.span, "first set here");
            self.error(d);
            return;
        }
        self.target_props.push(p);
        match key {
            "clock" => {
                if let Some(q) = self.quantity(p) {
                    if let Some(hz) =
                        self.count_of("clock", q, Measure::Frequency, Bound::Positive, "`clock`")
                    {
                        model.clock_hz = hz;
                    }
                }
            }
            _ => {
                if let Some(s) = self.string(p, "target") {
                    if s.value.trim().is_empty() {
                        let d = Diagnostic::new(s.span, "`platform` is empty")
                            .help("name the folder of the target's C files, relative to the .hwm file");
                        self.error(d);
                    } else {
                        model.platform = Some(s.value.clone());
                    }
                }
            }
        }
    }

    /// An unknown word at the target level.
    fn unknown_item(&mut self, key: &Ident, is_prop: bool) {
        let name = key.name.as_str();
        let mut d = Diagnostic::new(key.span, format!("unknown item `{name}`"));
        if is_prop && BLOCK_KINDS.contains(&name) {
            d = Diagnostic::new(key.span, format!("`{name}` needs a `{{ ... }}` block"));
            let eg = match name {
                "memory" => "memory L1 { size 128 KiB }",
                "dma" => "dma L2 <-> L1 { bandwidth 8 B/cycle; start \"dma_start\"; wait \"dma_wait\" }",
                "unit" => "unit cpu { host; macs 1/cycle; compute_in L2 }",
                _ => "api { init \"platform_init\" }",
            };
            d = d.help(format!("write e.g. `{eg}`"));
        } else if is_prop && ["pattern", "offload", "def"].contains(&name) {
            d = Diagnostic::new(key.span, format!("incomplete `{name}` declaration"));
            let eg = match name {
                "pattern" => "pattern conv = conv2d >> bias? >> requant",
                "offload" => "offload conv to cluster call \"cluster_conv\"",
                _ => "def tiles(n) = ceil(n / 16)",
            };
            d = d.help(format!("write e.g. `{eg}`"));
        } else if name == "target" {
            d = Diagnostic::new(key.span, "only one `target` per file")
                .help("describe one target per .hwm file; is a `}` missing above?");
        } else if let Some(h) = did_you_mean(name, TARGET_ITEMS.iter().copied()) {
            d = d.help(h);
        } else if let Some(kind) = owner_of(name) {
            d = d.help(format!("`{name}` is a property of `{kind}` blocks: put it inside one"));
        } else {
            d = d.help(format!("expected one of: {}", TARGET_ITEMS.join(", ")));
        }
        self.error(d);
    }

    /// Whether text after the target's `}` (reported by the parser as
    /// outside the target) mentions `word`: what a missing-item error would
    /// ask for may be there, lost to an extra `}`.
    fn after_target_mentions(&self, word: &str) -> bool {
        let rest = self.src.get(self.target.span.end..).unwrap_or("");
        rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == word)
    }

    fn target_requirements(&mut self) {
        let t = self.target;
        if !self.target_props.iter().any(|p| p.key.name == "clock")
            && !self.written_but_unparsed(t.span, "clock")
            && !self.after_target_mentions("clock")
        {
            let d = Diagnostic::new(t.name.span, format!("missing `clock` in target `{}`", t.name.name))
                .help("add e.g. `clock 100 MHz`");
            self.error(d);
        }
        if self.memory_blocks == 0 && !self.after_target_mentions("memory") {
            let d = Diagnostic::new(t.name.span, format!("target `{}` has no memory", t.name.name))
                .help("add e.g. `memory L2 { size 512 KiB }`");
            self.error(d);
        }
        if self.hosts.is_empty() && !self.after_target_mentions("host") {
            let help = if self.unit_blocks == 0 {
                "add a unit with `host` that runs generic kernels, e.g. `unit cpu { host; macs 1/cycle; compute_in L2 }`"
            } else {
                "add `host` to the unit that runs generic kernels"
            };
            self.error(Diagnostic::new(t.name.span, "missing host unit").help(help));
        }
        let hosts = self.hosts.clone();
        for extra in hosts.iter().skip(1) {
            let d = Diagnostic::new(*extra, "more than one host unit")
                .label("second host")
                .secondary(hosts[0], "first host here")
                .help("exactly one unit runs the generic kernels: keep `host` on one");
            self.error(d);
        }
    }

    // ----- blocks -----

    fn block(&mut self, b: &'a Block, model: &mut HwModel) {
        match b.kind.name.as_str() {
            "memory" => {
                if let Some(m) = self.memory(b) {
                    model.memories.push(m);
                }
            }
            "dma" => {
                if let Some(d) = self.dma(b) {
                    model.dmas.push(d);
                }
            }
            "unit" => {
                if let Some(u) = self.unit(b) {
                    model.units.push(u);
                }
            }
            "api" => self.api(b, model),
            _ => self.unknown_item(&b.kind, false),
        }
    }

    /// The name of a `memory` or `unit` block.
    fn block_name(&mut self, b: &'a Block, eg: &str) -> Option<&'a Ident> {
        let kind = b.kind.name.as_str();
        if let Some((_, other)) = &b.link {
            let d = Diagnostic::new(other.span, format!("`{kind}` takes one name"))
                .help("only a `dma` connects two memories: `dma L2 -> L1 { ... }`");
            self.error(d);
        }
        if b.name.is_none() {
            let d = Diagnostic::new(b.kind.span, format!("`{kind}` needs a name"))
                .help(format!("write e.g. `{kind} {eg} {{ ... }}`"));
            self.error(d);
        }
        b.name.as_ref()
    }

    /// The known properties of a block, each once (unless repeatable).
    fn props(&mut self, b: &'a Block, keys: &[&str], repeatable: &[&str], ctx: &str) -> Vec<&'a Prop> {
        let mut out: Vec<&'a Prop> = Vec::new();
        for item in &b.items {
            let Item::Prop(p) = item else { continue };
            let key = p.key.name.as_str();
            if !keys.contains(&key) {
                self.unknown_property(p, keys, ctx);
                continue;
            }
            if !repeatable.contains(&key) {
                if let Some(first) = out.iter().find(|q| q.key.name == key) {
                    let d = Diagnostic::new(p.key.span, format!("`{key}` is set twice in {ctx}"))
                        .label("set again here")
                        .secondary(first.key.span, "first set here");
                    self.error(d);
                    continue;
                }
            }
            out.push(p);
        }
        out
    }

    fn unknown_property(&mut self, p: &Prop, keys: &[&str], ctx: &str) {
        let key = p.key.name.as_str();
        let mut d = Diagnostic::new(p.key.span, format!("unknown property `{key}` in {ctx}"));
        d = if let Some(h) = did_you_mean(key, keys.iter().copied()) {
            d.help(h)
        } else if let Some(kind) = owner_of(key) {
            d.help(format!("`{key}` is a property of `{kind}` blocks; valid here: {}", keys.join(", ")))
        } else if TARGET_PROPS.contains(&key) {
            d.help(format!("`{key}` belongs at the target level; valid here: {}", keys.join(", ")))
        } else if key == "tile_condition" {
            d.help(
                "`tile_condition` is a clause of an offload rule: write it after the rule's `call \"...\"`",
            )
        } else {
            d.help(format!("valid properties: {}", keys.join(", ")))
        };
        self.error(d);
    }

    fn missing(&mut self, b: &Block, key: &str, ctx: &str) {
        let end = b.close.map_or(b.span.end, |c| c.start);
        if self.written_but_unparsed(Span::new(b.open.end, end), key) {
            return;
        }
        let mut d = Diagnostic::new(header_span(b), format!("missing `{key}` in {ctx}"));
        if let Some(eg) = example(&b.kind.name, key) {
            d = d.help(format!("add e.g. `{eg}`"));
        }
        self.error(d);
    }

    fn memory(&mut self, b: &'a Block) -> Option<Memory> {
        self.memory_blocks += 1;
        let name = self.block_name(b, "L1");
        let ctx = name.map_or("memory".to_string(), |n| format!("memory `{}`", n.name));
        let mut fresh = true;
        if let Some(n) = name {
            if let Some((_, first)) = self.memory_names.iter().find(|(m, _)| *m == n.name) {
                let d = Diagnostic::new(n.span, format!("duplicate memory `{}`", n.name))
                    .secondary(*first, "first defined here");
                self.error(d);
                fresh = false;
            } else {
                self.memory_names.push((&n.name, n.span));
            }
        }
        let props = self.props(b, MEMORY_KEYS, &[], &ctx);
        let mut m = Memory {
            name: name.map(|n| n.name.clone()).unwrap_or_default(),
            size: 0,
            reserve: 0,
            read_bandwidth: None,
            write_bandwidth: None,
            ports: 1,
            latency: 0,
            holds: Vec::new(),
            external: false,
            double_buffer: false,
            energy_per_byte: None,
        };
        let mut size: Option<(u64, Span)> = None;
        let mut reserve: Option<(u64, Span)> = None;
        let both = props.iter().find(|p| p.key.name == "bandwidth").map(|p| p.key.span);
        for p in &props {
            let key = p.key.name.as_str();
            match key {
                "size" => {
                    if let Some(v) = self.count(p, Measure::Bytes, Bound::Positive, "memory size") {
                        m.size = v;
                        size = Some((v, value_span(p)));
                    }
                }
                "reserve" => {
                    if let Some(v) = self.count(p, Measure::Bytes, Bound::NonNegative, "`reserve`") {
                        m.reserve = v;
                        reserve = Some((v, value_span(p)));
                    }
                }
                "bandwidth" => {
                    if let Some(v) = self.real(p, Measure::Bandwidth, Bound::Positive) {
                        m.read_bandwidth = Some(v);
                        m.write_bandwidth = Some(v);
                    }
                }
                "read_bandwidth" | "write_bandwidth" => {
                    if let Some(first) = both {
                        let d = Diagnostic::new(p.key.span, format!("`{key}` conflicts with `bandwidth`"))
                            .secondary(first, "`bandwidth` sets both read and write here")
                            .help("give either `bandwidth`, or `read_bandwidth` and `write_bandwidth`");
                        self.error(d);
                    } else if let Some(v) = self.real(p, Measure::Bandwidth, Bound::Positive) {
                        if key == "read_bandwidth" {
                            m.read_bandwidth = Some(v);
                        } else {
                            m.write_bandwidth = Some(v);
                        }
                    }
                }
                "ports" => {
                    if let Some(v) = self.int_prop(p, 1, u32::MAX.into()) {
                        m.ports = v as u32;
                    }
                }
                "latency" => {
                    if let Some(v) = self.count(p, Measure::Cycles, Bound::NonNegative, "`latency`") {
                        m.latency = v;
                    }
                }
                "holds" => {
                    for id in self.ident_list(p, "tensor classes") {
                        match TensorClass::ALL.iter().find(|(_, n)| *n == id.name) {
                            Some((c, _)) => m.holds.push(*c),
                            None => {
                                let names = TensorClass::ALL.map(|(_, n)| n);
                                let d =
                                    Diagnostic::new(id.span, format!("unknown tensor class `{}`", id.name))
                                        .help(did_you_mean(&id.name, names).unwrap_or_else(|| {
                                            format!("a memory holds any of: {}", names.join(", "))
                                        }));
                                self.error(d);
                            }
                        }
                    }
                }
                "external" => m.external = self.flag(p),
                "double_buffer" => m.double_buffer = self.flag(p),
                "energy" => m.energy_per_byte = self.real(p, Measure::EnergyPerByte, Bound::NonNegative),
                _ => {}
            }
        }
        if !props.iter().any(|p| p.key.name == "size") {
            self.missing(b, "size", &ctx);
        }
        if let (Some((s, sspan)), Some((r, rspan))) = (size, reserve) {
            if r >= s {
                let d = Diagnostic::new(rspan, "`reserve` must be less than `size`")
                    .label(format!("{r} bytes"))
                    .secondary(sspan, format!("`size` is {s} bytes"));
                self.error(d);
            }
        }
        (name.is_some() && fresh).then_some(m)
    }

    fn dma(&mut self, b: &'a Block) -> Option<Dma> {
        let ends = match (&b.name, &b.link) {
            (Some(from), Some((arrow, to))) => Some((from, *arrow, to)),
            _ => {
                let d = Diagnostic::new(header_span(b), "`dma` needs two memories")
                    .help("write `dma L2 -> L1 { ... }` (one way) or `dma L2 <-> L1 { ... }` (both ways)");
                self.error(d);
                None
            }
        };
        let ctx = format!("dma `{}`", block_title(b).trim_start_matches("dma").trim());
        if let Some((from, arrow, to)) = ends {
            self.mem_refs.push(MemRef { name: from, role: MemRole::DmaEnd });
            if from.name == to.name {
                let d = Diagnostic::new(to.span, format!("a dma from `{}` to itself", from.name))
                    .label("the same memory again")
                    .secondary(from.span, "first end")
                    .help("a dma connects two different memories");
                self.error(d);
            } else {
                self.mem_refs.push(MemRef { name: to, role: MemRole::DmaEnd });
                let mut dirs = vec![(from.name.as_str(), to.name.as_str())];
                if arrow == Arrow::Both {
                    dirs.push((to.name.as_str(), from.name.as_str()));
                }
                let here = header_span(b);
                let clash = dirs.iter().find_map(|(a, z)| {
                    self.dma_dirs.iter().find(|(x, y, _)| x == a && y == z).map(|(_, _, s)| (*a, *z, *s))
                });
                if let Some((a, z, first)) = clash {
                    let d = Diagnostic::new(here, format!("a dma from `{a}` to `{z}` is already defined"))
                        .secondary(first, "defined here");
                    self.error(d);
                } else {
                    self.dma_dirs.extend(dirs.into_iter().map(|(a, z)| (a, z, here)));
                }
            }
        }
        let props = self.props(b, DMA_KEYS, &[], &ctx);
        let mut dma = Dma {
            from: ends.map(|e| e.0.name.clone()).unwrap_or_default(),
            to: ends.map(|e| e.2.name.clone()).unwrap_or_default(),
            both_ways: ends.is_some_and(|e| e.1 == Arrow::Both),
            bandwidth: 0.0,
            setup: 0,
            dims: 1,
            max_bytes: None,
            overhead: Vec::new(),
            start: String::new(),
            wait: String::new(),
            energy_per_byte: None,
        };
        let mut dims_span = None;
        let mut overhead = None;
        for p in &props {
            match p.key.name.as_str() {
                "bandwidth" => {
                    if let Some(v) = self.real(p, Measure::Bandwidth, Bound::Positive) {
                        dma.bandwidth = v;
                    }
                }
                "setup" => {
                    if let Some(v) = self.count(p, Measure::Cycles, Bound::NonNegative, "`setup`") {
                        dma.setup = v;
                    }
                }
                "dims" => {
                    if let Some(v) = self.int_prop(p, 1, 3) {
                        dma.dims = v as u32;
                        dims_span = Some(value_span(p));
                    }
                }
                "max" => dma.max_bytes = self.count(p, Measure::Bytes, Bound::Positive, "`max`"),
                "overhead" => overhead = Some(*p),
                "start" | "wait" => {
                    if let Some(s) = self.string(p, "dma") {
                        self.c_symbol(s);
                        if p.key.name == "start" {
                            dma.start = s.value.clone();
                        } else {
                            dma.wait = s.value.clone();
                        }
                    }
                }
                "energy" => dma.energy_per_byte = self.real(p, Measure::EnergyPerByte, Bound::NonNegative),
                _ => {}
            }
        }
        if let Some(p) = overhead {
            dma.overhead = self.overhead(p, dma.dims, dims_span);
        }
        for key in ["bandwidth", "start", "wait"] {
            if !props.iter().any(|p| p.key.name == key) {
                self.missing(b, key, &ctx);
            }
        }
        ends.map(|_| dma)
    }

    /// `overhead 1d 27 cycles, 2d 43 cycles`: entry `i` is for `i + 1` dims.
    fn overhead(&mut self, p: &'a Prop, dims: u32, dims_span: Option<Span>) -> Vec<u64> {
        let Some(vs) = self.values(p) else { return Vec::new() };
        let mut entries: Vec<(u32, u64, Span)> = Vec::new();
        let mut ok = true;
        for v in vs {
            let Value::Labeled(label, q) = v else {
                let d = Diagnostic::new(
                    v.span(),
                    format!("expected an entry such as `1d 27 cycles`, found {}", self.describe(v)),
                )
                .help(format!("write e.g. `{}`", example("dma", "overhead").unwrap_or_default()));
                self.error(d);
                ok = false;
                continue;
            };
            let n = match dim_label(&label.name) {
                Some(n @ 1..=3) => n,
                _ => {
                    let d = Diagnostic::new(
                        label.span,
                        format!("expected `1d`, `2d` or `3d`, found `{}`", label.name),
                    )
                    .help("label each entry with the number of strided dims it is for");
                    self.error(d);
                    ok = false;
                    continue;
                }
            };
            let cycles = self.count_of("overhead", q, Measure::Cycles, Bound::NonNegative, "`overhead`");
            if let Some((_, _, first)) = entries.iter().find(|e| e.0 == n) {
                let d = Diagnostic::new(label.span, format!("`{}` is given twice in `overhead`", label.name))
                    .secondary(*first, "first given here");
                self.error(d);
                ok = false;
                continue;
            }
            if n > dims {
                let mut d = Diagnostic::new(
                    label.span,
                    format!(
                        "`{}` overhead, but the dma moves at most {}",
                        label.name,
                        plural(dims as usize, "dim")
                    ),
                );
                d = match dims_span {
                    Some(s) => d.secondary(s, "`dims` set here"),
                    None => d.help(format!("set `dims {n}`, or drop this entry (`dims` is 1 unless set)")),
                };
                self.error(d);
                ok = false;
            }
            match cycles {
                Some(c) => entries.push((n, c, label.span)),
                None => ok = false,
            }
        }
        entries.sort_by_key(|e| e.0);
        for (i, e) in entries.iter().enumerate() {
            if e.0 as usize != i + 1 {
                let d = Diagnostic::new(e.2, format!("`overhead` has no `{}d` entry", i + 1))
                    .help("give every dimensionality from `1d` up");
                self.error(d);
                ok = false;
                break;
            }
        }
        if ok {
            entries.into_iter().map(|e| e.1).collect()
        } else {
            Vec::new()
        }
    }

    fn unit(&mut self, b: &'a Block) -> Option<Unit> {
        self.unit_blocks += 1;
        let name = self.block_name(b, "cluster");
        let ctx = name.map_or("unit".to_string(), |n| format!("unit `{}`", n.name));
        let mut fresh = true;
        if let Some(n) = name {
            if let Some((_, first)) = self.unit_names.iter().find(|(m, _)| *m == n.name) {
                let d = Diagnostic::new(n.span, format!("duplicate unit `{}`", n.name))
                    .secondary(*first, "first defined here");
                self.error(d);
                fresh = false;
            } else {
                self.unit_names.push((&n.name, n.span));
            }
        }
        let props = self.props(b, UNIT_KEYS, &["scratch"], &ctx);
        let mut u = Unit {
            name: name.map(|n| n.name.clone()).unwrap_or_default(),
            host: false,
            cores: 1,
            macs_per_cycle: 0.0,
            spatial: Vec::new(),
            compute_in: String::new(),
            weights_in: None,
            call_overhead: 0,
            scratch: Vec::new(),
            inputs: Vec::new(),
            weights: Vec::new(),
            outputs: Vec::new(),
            requant: Vec::new(),
            weight_layout: Vec::new(),
            activation_layout: Vec::new(),
            any_layout: false,
            cycles: None,
            energy_per_mac: None,
            adc_bits: None,
            scale_bits: Vec::new(),
            partial_sums: false,
            partial_sum_rate: None,
        };
        let mut scratch_names: Vec<&'a Ident> = Vec::new();
        for p in &props {
            match p.key.name.as_str() {
                "host" => {
                    u.host = self.flag(p);
                    if u.host {
                        self.hosts.push(p.key.span);
                    }
                }
                "cores" => {
                    if let Some(v) = self.int_prop(p, 1, u32::MAX.into()) {
                        u.cores = v as u32;
                    }
                }
                "macs" => {
                    if let Some(v) = self.real(p, Measure::Rate, Bound::Positive) {
                        u.macs_per_cycle = v;
                    }
                }
                "spatial" => u.spatial = self.spatial(p),
                "compute_in" => {
                    if let Some(m) = self.memory_name(p, MemRole::ComputeIn) {
                        u.compute_in = m;
                    }
                }
                "weights_in" => u.weights_in = self.memory_name(p, MemRole::WeightsIn),
                "call_overhead" => {
                    if let Some(v) = self.count(p, Measure::Cycles, Bound::NonNegative, "`call_overhead`") {
                        u.call_overhead = v;
                    }
                }
                "scratch" => {
                    let PropValue::Named(sname, e) = &p.value else {
                        let d = Diagnostic::new(value_span(p), "`scratch` needs a name and an expression")
                            .help("write e.g. `scratch im2col = 2 * FY * FX * C` (bytes over the tile dims)");
                        self.error(d);
                        continue;
                    };
                    let (bytes, ty) = self.expr(e, &mut Vec::new());
                    self.expect_top(e, ty, Type::Num, "`scratch` is a number of bytes");
                    if let Some(first) = scratch_names.iter().find(|s| s.name == sname.name) {
                        let d = Diagnostic::new(sname.span, format!("duplicate scratch `{}`", sname.name))
                            .secondary(first.span, "first defined here");
                        self.error(d);
                    } else {
                        scratch_names.push(sname);
                        u.scratch.push(Scratch { name: sname.name.clone(), bytes });
                    }
                }
                "inputs" => u.inputs = self.dtypes(p),
                "weights" => u.weights = self.dtypes(p),
                "outputs" => u.outputs = self.dtypes(p),
                "requant" => u.requant = self.requant(p),
                "weight_layout" => u.weight_layout = self.layout(p, WEIGHT_DIMS),
                "activation_layout" if is_any_layout(p) => u.any_layout = true,
                "activation_layout" => u.activation_layout = self.layout(p, ACTIVATION_DIMS),
                "cycles" => {
                    if let Some(x) = self.cycles(p) {
                        u.cycles = Some(x);
                    }
                }
                "energy" => u.energy_per_mac = self.real(p, Measure::EnergyPerMac, Bound::NonNegative),
                "adc" => u.adc_bits = self.int_prop(p, 1, 16).map(|v| v as u32),
                "scale_bits" => u.scale_bits = self.scale_bits(p),
                "partial_sums" => {
                    // A bare flag, or the accumulator's access rate.
                    if matches!(p.value, PropValue::Flag) {
                        u.partial_sums = true;
                    } else if let Some(r) = self.real(p, Measure::Rate, Bound::Positive) {
                        (u.partial_sums, u.partial_sum_rate) = (true, Some(r));
                    }
                }
                _ => {}
            }
        }
        // Scale widths describe the scale-shift form: without it they mean nothing.
        if let Some(p) = props.iter().find(|p| p.key.name == "scale_bits") {
            if !u.requant.contains(&RequantForm::ScaleShift) {
                let d = Diagnostic::new(
                    p.key.span,
                    "`scale_bits` gives the scale widths of the `scale_shift` requantization, which this unit does not list",
                )
                .help("add `scale_shift` to the unit's `requant`, or remove `scale_bits`");
                self.error(d);
            }
        }
        // Partial sums matter only to a tiled unit: the host computes a
        // layer in one call where the tensors live.
        if let Some(p) = props.iter().find(|p| p.key.name == "partial_sums") {
            if u.host {
                let d = Diagnostic::new(
                    p.key.span,
                    "`partial_sums` lets the schedule split input channels across tiles, but the host unit runs each layer in one call",
                )
                .help("put `partial_sums` on a unit that computes from a tile memory, or remove it");
                self.error(d);
            }
        }
        for key in ["macs", "compute_in"] {
            if !props.iter().any(|p| p.key.name == key) {
                self.missing(b, key, &ctx);
            }
        }
        (name.is_some() && fresh).then_some(u)
    }

    /// A `cycles = EXPR` property or offload clause: compute cycles of one call.
    fn cycles(&mut self, p: &'a Prop) -> Option<Expr> {
        self.expr_prop(
            p,
            Type::Num,
            (
                "`cycles` needs an expression",
                "write e.g. `cycles = ceil(K / 32) * OY * OX` (cycles of one call)",
            ),
            "`cycles` is a number of cycles",
        )
    }

    /// A `KEY = EXPR` property or clause of type `want`: `missing` is the
    /// message and help when the value is not `= EXPR`, `why` the label of
    /// a type mismatch.
    fn expr_prop(&mut self, p: &'a Prop, want: Type, missing: (&str, &str), why: &str) -> Option<Expr> {
        let PropValue::Expr(e) = &p.value else {
            self.error(Diagnostic::new(value_span(p), missing.0).help(missing.1));
            return None;
        };
        let (x, ty) = self.expr(e, &mut Vec::new());
        self.expect_top(e, ty, want, why);
        Some(x)
    }

    fn api(&mut self, b: &'a Block, model: &mut HwModel) {
        if let Some(first) = self.api_block {
            let d = Diagnostic::new(b.kind.span, "the `api` block appears twice")
                .secondary(first, "first defined here")
                .help("put every binding in one `api` block");
            self.error(d);
        } else {
            self.api_block = Some(b.kind.span);
        }
        if b.name.is_some() || b.link.is_some() {
            let span = match (&b.name, &b.link) {
                (Some(n), _) => n.span,
                (None, Some((_, n))) => n.span,
                _ => b.kind.span,
            };
            self.error(Diagnostic::new(span, "`api` takes no name").help("write `api { init \"my_init\" }`"));
        }
        let roles: Vec<&str> = API_ROLES.iter().map(|(r, _)| *r).collect();
        let props = self.props(b, &roles, &[], "the `api` block");
        for p in props {
            let Some(s) = self.string(p, "api") else { continue };
            let ok = if p.key.name == "header" { self.header_file(s) } else { self.c_symbol(s) };
            if ok {
                model.api.push(ApiBinding { role: p.key.name.clone(), symbol: s.value.clone() });
            }
        }
    }

    fn header_file(&mut self, s: &ast::Str) -> bool {
        let ok = s.value.len() > 2
            && s.value.ends_with(".h")
            && s.value.chars().all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
        if !ok {
            let d = Diagnostic::new(s.span, format!("`{}` is not a C header file name", s.value))
                .help("write e.g. `header \"my_platform.h\"`");
            self.error(d);
        }
        ok
    }

    fn c_symbol(&mut self, s: &ast::Str) -> bool {
        if is_c_ident(&s.value) {
            return true;
        }
        let msg = if s.value.is_empty() {
            "an empty string is not a valid C identifier".to_string()
        } else {
            format!("`{}` is not a valid C identifier", s.value)
        };
        let d = Diagnostic::new(s.span, msg)
            .help("a C name uses letters, digits and `_`, and does not start with a digit");
        self.error(d);
        false
    }

    fn resolve_memory_refs(&mut self, memories: &[Memory]) {
        let refs = std::mem::take(&mut self.mem_refs);
        for r in refs {
            let name = r.name.name.as_str();
            match memories.iter().find(|m| m.name == name) {
                None => {
                    // A duplicate or unnamed memory block is reported already.
                    if self.memory_names.iter().any(|(m, _)| *m == name) {
                        continue;
                    }
                    let names: Vec<&str> = memories.iter().map(|m| m.name.as_str()).collect();
                    let help = did_you_mean(name, names.iter().copied()).unwrap_or_else(|| {
                        if names.is_empty() {
                            "no memory is defined".to_string()
                        } else {
                            format!("memories: {}", names.join(", "))
                        }
                    });
                    self.error(Diagnostic::new(r.name.span, format!("unknown memory `{name}`")).help(help));
                }
                Some(m) if m.external && r.role != MemRole::DmaEnd => {
                    let key = if r.role == MemRole::ComputeIn { "compute_in" } else { "weights_in" };
                    let d = Diagnostic::new(
                        r.name.span,
                        format!("`{key}` cannot be `{name}`: it is external"),
                    )
                    .help(
                        "units work from on-chip memory; an `external` memory is reached only through a dma",
                    );
                    self.error(d);
                }
                Some(_) => {}
            }
        }
    }

    // ----- values -----

    /// The values of a `key v1, v2` property.
    fn values(&mut self, p: &'a Prop) -> Option<&'a [Value]> {
        let key = p.key.name.as_str();
        match &p.value {
            PropValue::Values(vs) if !vs.is_empty() => Some(vs),
            PropValue::Values(_) | PropValue::Flag => {
                let mut d = Diagnostic::new(p.key.span, format!("`{key}` needs a value"));
                if let Some(eg) = example("", key) {
                    d = d.help(format!("write e.g. `{eg}`"));
                }
                self.error(d);
                None
            }
            PropValue::Expr(_) | PropValue::Named(..) => {
                let d = Diagnostic::new(value_span(p), format!("`{key}` takes a value, not an expression"))
                    .help(match example("", key) {
                        Some(eg) => format!("write e.g. `{eg}`"),
                        None => format!("drop the `=`: `{key} VALUE`"),
                    });
                self.error(d);
                None
            }
        }
    }

    /// The one value of a property.
    fn single(&mut self, p: &'a Prop) -> Option<&'a Value> {
        let vs = self.values(p)?;
        if let Some(extra) = vs.get(1) {
            let d = Diagnostic::new(extra.span(), format!("`{}` takes one value", p.key.name))
                .label("extra value");
            self.error(d);
        }
        vs.first()
    }

    fn quantity(&mut self, p: &'a Prop) -> Option<&'a Quantity> {
        match self.single(p)? {
            Value::Quantity(q) => Some(q),
            other => {
                let d = Diagnostic::new(
                    other.span(),
                    format!("`{}` needs a number, found {}", p.key.name, self.describe(other)),
                );
                let d = match example("", &p.key.name) {
                    Some(eg) => d.help(format!("write e.g. `{eg}`")),
                    None => d,
                };
                self.error(d);
                None
            }
        }
    }

    fn string(&mut self, p: &'a Prop, kind: &str) -> Option<&'a ast::Str> {
        match self.single(p)? {
            Value::Str(s) => Some(s),
            other => {
                let key = &p.key.name;
                let mut d = Diagnostic::new(
                    other.span(),
                    format!("`{key}` needs a string, found {}", self.describe(other)),
                );
                d = match (other, example(kind, key)) {
                    (Value::Ident(id), _) => d.help(format!("put it in quotes: `{key} \"{}\"`", id.name)),
                    (_, Some(eg)) => d.help(format!("write e.g. `{eg}`")),
                    _ => d.help(format!("write e.g. `{key} \"name\"`")),
                };
                self.error(d);
                None
            }
        }
    }

    fn flag(&mut self, p: &Prop) -> bool {
        if matches!(p.value, PropValue::Flag) {
            return true;
        }
        let key = &p.key.name;
        let d = Diagnostic::new(value_span(p), format!("`{key}` is a flag and takes no value"))
            .help(format!("write just `{key}`"));
        self.error(d);
        false
    }

    /// The multiplier of a quantity's unit, checked against what `key` measures.
    fn unit_of(&mut self, key: &str, q: &Quantity, m: Measure) -> Option<u64> {
        let list = m.unit_names().join(", ");
        let Some(u) = &q.unit else {
            let help = if m.units().len() > 1 {
                format!("write e.g. `{}` (units: {list})", m.example())
            } else {
                format!("write e.g. `{}`", m.example())
            };
            self.error(Diagnostic::new(q.span, format!("`{key}` needs a unit")).help(help));
            return None;
        };
        if let Some((_, mult)) = m.units().iter().find(|(n, _)| *n == u.name) {
            return Some(*mult);
        }
        let d = if Measure::ALL.iter().any(|o| o.units().iter().any(|(n, _)| *n == u.name)) {
            Diagnostic::new(u.span, format!("`{key}` is in {}, not `{}`", m.describe(), u.name))
                .help(format!("write e.g. `{}` (units: {list})", m.example()))
        } else if u.name == "KB" || u.name == "Kb" || u.name == "kb" {
            // KB is 1000 or 1024 depending on who writes it: never guess.
            Diagnostic::new(u.span, format!("unknown unit `{}`", u.name))
                .label("ambiguous")
                .help("write `KiB` for 1024 bytes or `kB` for 1000 bytes")
        } else {
            Diagnostic::new(u.span, format!("unknown unit `{}`", u.name)).help(
                did_you_mean(&u.name, m.unit_names())
                    .unwrap_or_else(|| format!("`{key}` is in {}: {list}", m.describe())),
            )
        };
        self.error(d);
        None
    }

    /// A whole count of bytes, cycles or hertz.
    fn count(&mut self, p: &'a Prop, m: Measure, bound: Bound, what: &str) -> Option<u64> {
        let q = self.quantity(p)?;
        self.count_of(&p.key.name, q, m, bound, what)
    }

    fn count_of(&mut self, key: &str, q: &Quantity, m: Measure, bound: Bound, what: &str) -> Option<u64> {
        let mult = self.unit_of(key, q, m)?;
        if !self.sign_ok(q, q.value, bound, what) {
            return None;
        }
        let v = match exact_scaled(&q.text, mult) {
            Exact::Whole(v) => v,
            Exact::Fraction => {
                let d = Diagnostic::new(q.span, format!("{what} must be a whole number of {}", m.counted()));
                self.error(d);
                return None;
            }
            Exact::TooLarge => {
                self.too_large(q, what, m);
                return None;
            }
            Exact::Unknown => {
                let v = q.value * mult as f64;
                if !(0.0..18_446_744_073_709_549_568.0).contains(&v) {
                    self.too_large(q, what, m);
                    return None;
                }
                if v.fract() != 0.0 {
                    let d =
                        Diagnostic::new(q.span, format!("{what} must be a whole number of {}", m.counted()));
                    self.error(d);
                    return None;
                }
                v as u64
            }
        };
        if bound == Bound::Positive && v == 0 {
            self.error(Diagnostic::new(q.span, format!("{what} must be positive")));
            return None;
        }
        Some(v)
    }

    fn too_large(&mut self, q: &Quantity, what: &str, m: Measure) {
        let d = Diagnostic::new(q.span, format!("{what} is too large")).help(format!(
            "at most {} {}",
            u64::MAX,
            m.counted()
        ));
        self.error(d);
    }

    fn sign_ok(&mut self, q: &Quantity, v: f64, bound: Bound, what: &str) -> bool {
        let bad = match bound {
            Bound::Positive => v <= 0.0,
            Bound::NonNegative => v < 0.0,
        };
        if bad {
            let msg = match bound {
                Bound::Positive => format!("{what} must be positive"),
                Bound::NonNegative => format!("{what} cannot be negative"),
            };
            self.error(Diagnostic::new(q.span, msg));
        }
        !bad
    }

    /// A real quantity: bandwidth, rate, energy.
    fn real(&mut self, p: &'a Prop, m: Measure, bound: Bound) -> Option<f64> {
        let q = self.quantity(p)?;
        let key = p.key.name.as_str();
        let mult = self.unit_of(key, q, m)?;
        let what = format!("`{key}`");
        let v = q.value * mult as f64;
        if !v.is_finite() {
            self.error(Diagnostic::new(q.span, format!("{what} is too large")));
            return None;
        }
        self.sign_ok(q, v, bound, &what).then_some(v)
    }

    /// A plain whole number in `lo..=hi`.
    fn plain_int(&mut self, q: &Quantity, what: &str, lo: i64, hi: i64) -> Option<i64> {
        if let Some(u) = &q.unit {
            let d = Diagnostic::new(u.span, format!("{what} takes a plain number, not `{}`", u.name));
            self.error(d);
            return None;
        }
        if q.value.fract() == 0.0 && q.value >= lo as f64 && q.value <= hi as f64 {
            return Some(q.value as i64);
        }
        let range = if lo <= -(1 << 53) {
            "a whole number".to_string()
        } else if hi >= i64::from(u32::MAX) {
            format!("a whole number of at least {lo}")
        } else {
            format!("a whole number from {lo} to {hi}")
        };
        self.error(Diagnostic::new(q.span, format!("{what} must be {range}")));
        None
    }

    fn int_prop(&mut self, p: &'a Prop, lo: i64, hi: i64) -> Option<i64> {
        let q = self.quantity(p)?;
        self.plain_int(q, &format!("`{}`", p.key.name), lo, hi)
    }

    /// A list of bare names, each once.
    fn ident_list(&mut self, p: &'a Prop, what: &str) -> Vec<&'a Ident> {
        let Some(vs) = self.values(p) else { return Vec::new() };
        let mut out: Vec<&'a Ident> = Vec::new();
        for v in vs {
            match v {
                Value::Ident(id) => {
                    if let Some(first) = out.iter().find(|o| o.name == id.name) {
                        let d = Diagnostic::new(id.span, format!("`{}` is listed twice", id.name))
                            .secondary(first.span, "first listed here");
                        self.error(d);
                    } else {
                        out.push(id);
                    }
                }
                other => {
                    let d = Diagnostic::new(
                        other.span(),
                        format!("`{}` takes {what}, found {}", p.key.name, self.describe(other)),
                    );
                    self.error(d);
                }
            }
        }
        out
    }

    fn dtypes(&mut self, p: &'a Prop) -> Vec<DType> {
        let mut out = Vec::new();
        for id in self.ident_list(p, "element types") {
            if let Some(t) = DType::parse(&id.name) {
                out.push(t);
                continue;
            }
            let guess = id
                .name
                .strip_prefix("uint")
                .map(|b| format!("u{b}"))
                .or_else(|| id.name.strip_prefix("int").map(|b| format!("i{b}")))
                .filter(|g| DType::parse(g).is_some());
            let help = match guess {
                Some(g) => format!("did you mean `{g}`?"),
                None => "types: i1..i32 (signed), u1..u32 (unsigned), ternary".to_string(),
            };
            self.error(Diagnostic::new(id.span, format!("unknown type `{}`", id.name)).help(help));
        }
        out
    }

    fn requant(&mut self, p: &'a Prop) -> Vec<RequantForm> {
        let mut out = Vec::new();
        let names = RequantForm::ALL.map(|(_, n)| n);
        for id in self.ident_list(p, "requantization forms") {
            match RequantForm::from_name(&id.name) {
                Some(f) => out.push(f),
                None => {
                    let help = did_you_mean(&id.name, names)
                        .unwrap_or_else(|| format!("forms: {}", names.join(", ")));
                    let d = Diagnostic::new(id.span, format!("unknown requantization form `{}`", id.name))
                        .help(help);
                    self.error(d);
                }
            }
        }
        out
    }

    /// `scale_bits 8, 32`: whole numbers from 1 to 32, each once, returned
    /// in increasing order.
    fn scale_bits(&mut self, p: &'a Prop) -> Vec<u32> {
        let Some(vs) = self.values(p) else { return Vec::new() };
        let mut out: Vec<(u32, Span)> = Vec::new();
        for v in vs {
            let Value::Quantity(q) = v else {
                let d = Diagnostic::new(
                    v.span(),
                    format!("`scale_bits` takes scale widths in bits, found {}", self.describe(v)),
                )
                .help("write e.g. `scale_bits 8, 32`");
                self.error(d);
                continue;
            };
            let Some(b) = self.plain_int(q, "a scale width", 1, 32) else { continue };
            let b = b as u32;
            if let Some((_, first)) = out.iter().find(|(w, _)| *w == b) {
                let d = Diagnostic::new(q.span, format!("scale width {b} is listed twice"))
                    .secondary(*first, "first listed here");
                self.error(d);
            } else {
                out.push((b, q.span));
            }
        }
        let mut widths: Vec<u32> = out.into_iter().map(|(w, _)| w).collect();
        widths.sort_unstable();
        widths
    }

    fn spatial(&mut self, p: &'a Prop) -> Vec<(Dim, u32)> {
        let Some(vs) = self.values(p) else { return Vec::new() };
        let mut out: Vec<(Dim, u32)> = Vec::new();
        let mut spans: Vec<(Dim, Span)> = Vec::new();
        let dim_names = Dim::ALL.map(|d| d.name());
        for v in vs {
            let Value::Labeled(label, q) = v else {
                let d = Diagnostic::new(
                    v.span(),
                    format!("expected a dimension and a factor such as `K 32`, found {}", self.describe(v)),
                )
                .help("write e.g. `spatial K 32, C 16`");
                self.error(d);
                continue;
            };
            let factor = self.plain_int(q, "a spatial factor", 1, u32::MAX.into());
            let Some(dim) = Dim::from_name(&label.name) else {
                let help = did_you_mean(&label.name, dim_names).unwrap_or_else(|| {
                    let list = format!("dimensions: {}", dim_names.join(", "));
                    match alias_hint(&label.name) {
                        Some(h) => format!("{h}; {list}"),
                        None => list,
                    }
                });
                let d = Diagnostic::new(label.span, format!("unknown dimension `{}`", label.name)).help(help);
                self.error(d);
                continue;
            };
            if let Some((_, first)) = spans.iter().find(|(d, _)| *d == dim) {
                let d = Diagnostic::new(label.span, format!("`{}` appears twice in `spatial`", label.name))
                    .secondary(*first, "first here");
                self.error(d);
                continue;
            }
            spans.push((dim, label.span));
            if let Some(f) = factor {
                out.push((dim, f as u32));
            }
        }
        out
    }

    fn memory_name(&mut self, p: &'a Prop, role: MemRole) -> Option<String> {
        match self.single(p)? {
            Value::Ident(id) => {
                self.mem_refs.push(MemRef { name: id, role });
                Some(id.name.clone())
            }
            other => {
                let key = &p.key.name;
                let mut d = Diagnostic::new(
                    other.span(),
                    format!("`{key}` needs a memory name, found {}", self.describe(other)),
                );
                if let Value::Str(s) = other {
                    d = d.help(format!("write the name without quotes: `{key} {}`", s.value));
                }
                self.error(d);
                None
            }
        }
    }

    // ----- layouts -----

    fn layout(&mut self, p: &'a Prop, start: &[&str]) -> Vec<LayoutStep> {
        let Some(vs) = self.values(p) else { return Vec::new() };
        let key = p.key.name.as_str();
        let mut dims =
            Dims { names: start.iter().map(|s| s.to_string()).collect(), sure: true, ordered: true };
        let mut out = Vec::new();
        for v in vs {
            let (name, args, bare): (&'a Ident, &'a [Value], bool) = match v {
                Value::Step(s) => (&s.name, &s.args, false),
                Value::Ident(id) => (id, &[], true),
                other => {
                    let d = Diagnostic::new(
                        other.span(),
                        format!(
                            "expected a layout step such as `pad(C, 16)`, found {}",
                            self.describe(other)
                        ),
                    );
                    self.error(d);
                    dims.sure = false;
                    continue;
                }
            };
            let Some(&(_, sig)) = STEPS.iter().find(|(n, _)| *n == name.name) else {
                let names = STEPS.iter().map(|(n, _)| *n);
                let any_help = (name.name == "any").then(|| {
                    "`any` stands alone, and only in a unit's `activation_layout` (its kernels take any layout)"
                        .to_string()
                });
                let help = any_help.or_else(|| did_you_mean(&name.name, names)).unwrap_or_else(|| {
                    format!("steps: {}", STEPS.iter().map(|(_, s)| *s).collect::<Vec<_>>().join(", "))
                });
                let d = Diagnostic::new(name.span, format!("unknown layout step `{}`", name.name)).help(help);
                self.error(d);
                // What it did to the dimensions is unknown: stop checking names.
                dims.sure = false;
                continue;
            };
            if bare && name.name != "ternary_pairs" {
                let d = Diagnostic::new(name.span, format!("`{}` needs arguments: `{sig}`", name.name));
                self.error(d);
                dims.sure = false;
                continue;
            }
            match self.step(name, args, v.span(), sig, &mut dims, key) {
                Some(step) => out.push(step),
                None => dims.sure = false,
            }
        }
        out
    }

    fn step(
        &mut self,
        name: &Ident,
        args: &'a [Value],
        span: Span,
        sig: &str,
        dims: &mut Dims,
        key: &str,
    ) -> Option<LayoutStep> {
        let n = name.name.as_str();
        let want = match n {
            "order" => None,
            "swap" | "pad" => Some(2),
            "split" | "merge" => Some(3),
            "ternary_pairs" => Some(0),
            _ => Some(1),
        };
        let arity_ok = match want {
            None => !args.is_empty(),
            Some(k) => args.len() == k,
        };
        if !arity_ok {
            let takes = match want {
                None => "at least one dimension".to_string(),
                Some(0) => "no arguments".to_string(),
                Some(k) => plural(k, "argument"),
            };
            let at = match (want, args.get(want.unwrap_or(0))) {
                (Some(_), Some(extra)) => extra.span(),
                _ => span,
            };
            let d = Diagnostic::new(at, format!("`{n}` takes {takes}, found {}", args.len()))
                .help(format!("write `{sig}`"));
            self.error(d);
            return None;
        }
        let what = format!("the argument of `{n}`");
        let positive = |c: &mut Self, v: &'a Value, hi: i64| c.num_arg(v, &what, 1, hi);
        let max = i64::from(u32::MAX);
        match n {
            "order" => {
                let mut names: Vec<(String, Span)> = Vec::new();
                let mut ok = true;
                for a in args {
                    match self.dim_arg(a, dims, key) {
                        Some(d) => {
                            if let Some((_, first)) = names.iter().find(|(x, _)| *x == d) {
                                let e = Diagnostic::new(a.span(), format!("`{d}` appears twice in `order`"))
                                    .secondary(*first, "first here");
                                self.error(e);
                                ok = false;
                            } else {
                                names.push((d, a.span()));
                            }
                        }
                        None => ok = false,
                    }
                }
                let left: Vec<&str> = dims
                    .names
                    .iter()
                    .filter(|d| !names.iter().any(|(x, _)| x == *d))
                    .map(|d| d.as_str())
                    .collect();
                if ok && dims.sure && !left.is_empty() {
                    let d =
                        Diagnostic::new(span, format!("`order` leaves out `{}`", left.join("`, `"))).help(
                            format!("`order` lists every current dimension once: {}", dims.names.join(", ")),
                        );
                    self.error(d);
                    ok = false;
                }
                let names: Vec<String> = names.into_iter().map(|(d, _)| d).collect();
                if ok {
                    dims.names.clone_from(&names);
                    dims.ordered = true;
                }
                ok.then_some(LayoutStep::Order(names))
            }
            "swap" => {
                let a = self.dim_arg(&args[0], dims, key);
                let b = self.dim_arg(&args[1], dims, key);
                let (a, b) = (a?, b?);
                if a == b {
                    let d = Diagnostic::new(args[1].span(), format!("`swap` of `{a}` with itself"));
                    self.error(d);
                    return None;
                }
                // The contents move, the names keep their places: after
                // `swap(K, C)`, `C` is the second dimension still.
                Some(LayoutStep::Swap(a, b))
            }
            "pad" => {
                let d = self.dim_arg(&args[0], dims, key);
                let m = positive(self, &args[1], max);
                Some(LayoutStep::Pad(d?, m? as u64))
            }
            "split" => {
                let d = self.dim_arg(&args[0], dims, key);
                let f = positive(self, &args[1], max);
                let new = self.fresh_dim(
                    &args[2],
                    dims,
                    key,
                    "`split(D, n, NEW)` needs a new name for the inner dimension",
                );
                if let Some(new) = &new {
                    // Known from here on even if the rest of the step is wrong.
                    dims.names.push(new.clone());
                }
                dims.ordered = false;
                Some(LayoutStep::Split(d?, f? as u64, new?))
            }
            "merge" => {
                let a = self.dim_arg(&args[0], dims, key);
                let b = self.dim_arg(&args[1], dims, key);
                let new = self.fresh_dim(
                    &args[2],
                    dims,
                    key,
                    "`merge(A, B, NEW)` needs a new name for the merged dimension",
                );
                let (a, b) = (a?, b?);
                if a == b {
                    let d = Diagnostic::new(args[1].span(), format!("`merge` of `{a}` with itself"))
                        .help("`merge(A, B, NEW)` flattens two adjacent dimensions into one");
                    self.error(d);
                    return None;
                }
                let new = new?;
                if !dims.sure {
                    dims.names.push(new.clone());
                    return Some(LayoutStep::Merge(a, b, new));
                }
                if !dims.ordered {
                    let d = Diagnostic::new(span, "`merge` needs the order of the dimensions")
                        .label("`split` and `bitplanes` before it leave their new dimension's place open")
                        .help("put an `order(...)` listing every dimension before `merge`");
                    self.error(d);
                    return None;
                }
                let ia = dims.names.iter().position(|d| *d == a);
                let ib = dims.names.iter().position(|d| *d == b);
                let (Some(ia), Some(ib)) = (ia, ib) else { return None };
                if ib != ia + 1 {
                    let d = Diagnostic::new(span, format!("`merge` needs `{a}` directly before `{b}`"))
                        .label(format!("the order here is {}", dims.names.join(", ")))
                        .help(
                            "`merge` flattens two neighbouring dimensions, the outer one first; \
                             move them together with an `order(...)` before it",
                        );
                    self.error(d);
                    return None;
                }
                dims.names.splice(ia..=ib, [new.clone()]);
                Some(LayoutStep::Merge(a, b, new))
            }
            "offset" => {
                let v = self.num_arg(&args[0], &what, -(1 << 53), 1 << 53)?;
                Some(LayoutStep::Offset(v))
            }
            "bitplanes" => {
                let b = positive(self, &args[0], 32);
                if dims.names.iter().any(|d| d == "B") {
                    let d = Diagnostic::new(
                        name.span,
                        format!("`bitplanes` adds dimension `B`, which `{key}` already has"),
                    );
                    self.error(d);
                    return None;
                }
                dims.names.push("B".to_string());
                dims.ordered = false;
                Some(LayoutStep::Bitplanes(b? as u32))
            }
            "pack" => Some(LayoutStep::Pack(positive(self, &args[0], max)? as u32)),
            "reverse_bytes" => Some(LayoutStep::ReverseBytes(positive(self, &args[0], max)? as u32)),
            "append_bias" => Some(LayoutStep::AppendBias(positive(self, &args[0], max)? as u32)),
            "expand" => Some(LayoutStep::Expand(positive(self, &args[0], max)? as u32)),
            _ => Some(LayoutStep::TernaryPairs),
        }
    }

    fn dim_arg(&mut self, v: &Value, dims: &Dims, key: &str) -> Option<String> {
        match v {
            Value::Ident(id) if dims.names.contains(&id.name) || !dims.sure => Some(id.name.clone()),
            Value::Ident(id) => {
                let help = did_you_mean(&id.name, dims.names.iter().map(|s| s.as_str()))
                    .unwrap_or_else(|| format!("dimensions here: {}", dims.names.join(", ")));
                let d = Diagnostic::new(id.span, format!("unknown dimension `{}` in `{key}`", id.name))
                    .help(help);
                self.error(d);
                None
            }
            other => {
                let d = Diagnostic::new(
                    other.span(),
                    format!("expected a dimension name, found {}", self.describe(other)),
                );
                self.error(d);
                None
            }
        }
    }

    /// The name of a dimension a step creates: a name not in use yet.
    fn fresh_dim(&mut self, v: &Value, dims: &Dims, key: &str, help: &str) -> Option<String> {
        match v {
            Value::Ident(id) if dims.names.contains(&id.name) => {
                let e =
                    Diagnostic::new(id.span, format!("dimension `{}` already exists in `{key}`", id.name))
                        .help(help);
                self.error(e);
                None
            }
            Value::Ident(id) => Some(id.name.clone()),
            other => {
                let e = Diagnostic::new(
                    other.span(),
                    format!("expected a name for the new dimension, found {}", self.describe(other)),
                );
                self.error(e);
                None
            }
        }
    }

    fn num_arg(&mut self, v: &Value, what: &str, lo: i64, hi: i64) -> Option<i64> {
        match v {
            Value::Quantity(q) => self.plain_int(q, what, lo, hi),
            other => {
                let d = Diagnostic::new(
                    other.span(),
                    format!("expected a number, found {}", self.describe(other)),
                );
                self.error(d);
                None
            }
        }
    }

    // ----- patterns -----

    fn patterns(&mut self, decls: &[&'a ast::PatternDecl], model: &mut HwModel) {
        // Processed patterns (first definition of each name): their inlined body.
        let mut done: Vec<(&'a str, Span, Option<PatternExpr>)> = Vec::new();
        for (i, pd) in decls.iter().enumerate() {
            let name = pd.name.name.as_str();
            let first = done.iter().find(|(n, _, _)| *n == name).map(|(_, s, _)| *s);
            if let Some(first) = first {
                let d = Diagnostic::new(pd.name.span, format!("duplicate pattern `{name}`"))
                    .secondary(first, "first defined here");
                self.error(d);
            }
            let shadows = model::is_operator(name);
            if shadows {
                let d =
                    Diagnostic::new(pd.name.span, format!("pattern `{name}` has the name of an operator"))
                        .help("choose another name: a pattern cannot hide an operator");
                self.error(d);
            }
            let body = self.pat_alt(&pd.body, pd, &done, &decls[i + 1..]);
            let body = body.filter(|b| self.pattern_ok(pd, b));
            if first.is_none() {
                done.push((name, pd.name.span, body.clone()));
                self.pattern_names.push(name);
                if let (Some(body), false) = (body, shadows) {
                    model.patterns.push(Pattern { name: name.to_string(), body });
                }
            }
        }
    }

    fn pattern_ok(&mut self, pd: &ast::PatternDecl, body: &PatternExpr) -> bool {
        let name = &pd.name.name;
        if nullable(body) {
            let d = Diagnostic::new(pd.body.span, format!("pattern `{name}` may match no operator at all"))
                .label("every step here is optional")
                .help("make at least one step required: drop a `?`");
            self.error(d);
            return false;
        }
        if nodes(body) > MAX_PATTERN_NODES {
            let d = Diagnostic::new(
                pd.body.span,
                format!("pattern `{name}` is too large once the patterns it uses are inlined"),
            )
            .help(format!("at most {MAX_PATTERN_NODES} operators and groups"));
            self.error(d);
            return false;
        }
        if chains(body) > MAX_PATTERN_CHAINS {
            let d = Diagnostic::new(
                pd.body.span,
                format!("pattern `{name}` matches more than {MAX_PATTERN_CHAINS} operator chains"),
            )
            .help("split it into several patterns");
            self.error(d);
            return false;
        }
        true
    }

    fn pat_alt(
        &mut self,
        alt: &'a ast::PatAlt,
        pd: &ast::PatternDecl,
        done: &[(&'a str, Span, Option<PatternExpr>)],
        later: &[&'a ast::PatternDecl],
    ) -> Option<PatternExpr> {
        let mut opts = Vec::new();
        let mut ok = true;
        for seq in &alt.options {
            let mut steps = Vec::new();
            for step in &seq.steps {
                let atom = match &step.atom {
                    ast::PatAtom::Name(id) => self.pat_name(id, pd, done, later),
                    ast::PatAtom::Group(g) => self.pat_alt(g, pd, done, later),
                };
                match atom {
                    Some(a) if step.optional => steps.push(PatternExpr::Optional(Box::new(a))),
                    Some(a) => steps.push(a),
                    None => ok = false,
                }
            }
            if steps.len() == 1 {
                opts.extend(steps.pop());
            } else if !steps.is_empty() {
                opts.push(PatternExpr::Seq(steps));
            } else {
                ok = false;
            }
        }
        if !ok || opts.is_empty() {
            return None;
        }
        if opts.len() == 1 {
            opts.pop()
        } else {
            Some(PatternExpr::Alt(opts))
        }
    }

    fn pat_name(
        &mut self,
        id: &Ident,
        pd: &ast::PatternDecl,
        done: &[(&'a str, Span, Option<PatternExpr>)],
        later: &[&'a ast::PatternDecl],
    ) -> Option<PatternExpr> {
        let name = id.name.as_str();
        if model::is_operator(name) {
            return Some(PatternExpr::Op(name.to_string()));
        }
        if let Some((_, _, body)) = done.iter().find(|(n, _, _)| *n == name) {
            // `None`: that pattern has errors, reported already.
            return body.clone();
        }
        if name == pd.name.name {
            let d = Diagnostic::new(id.span, format!("pattern `{name}` refers to itself"))
                .help("a pattern is a fixed chain of operators; it cannot repeat itself");
            self.error(d);
            return None;
        }
        if let Some(def) = later.iter().find(|d| d.name.name == name) {
            let d = Diagnostic::new(id.span, format!("pattern `{name}` is used before it is defined"))
                .secondary(def.name.span, "defined here")
                .help(format!("move `pattern {name}` above this one"));
            self.error(d);
            return None;
        }
        let candidates = OPERATORS.iter().map(|(n, _)| *n).chain(done.iter().map(|(n, _, _)| *n));
        let help = did_you_mean(name, candidates).unwrap_or_else(|| {
            format!("operators: {}", OPERATORS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))
        });
        self.error(Diagnostic::new(id.span, format!("unknown operator `{name}`")).help(help));
        None
    }

    // ----- offloads -----

    fn offload(&mut self, o: &'a ast::OffloadDecl) -> Option<Offload> {
        let mut ok = true;
        let pat = o.pattern.name.as_str();
        if !self.pattern_names.contains(&pat) {
            ok = false;
            let d = if model::is_operator(pat) {
                Diagnostic::new(o.pattern.span, format!("`{pat}` is an operator, not a pattern"))
                    .help(format!("declare a pattern first, e.g. `pattern {pat}_only = {pat}`"))
            } else {
                let help = did_you_mean(pat, self.pattern_names.iter().copied())
                    .unwrap_or_else(|| format!("declare it: `pattern {pat} = conv2d >> requant`"));
                Diagnostic::new(o.pattern.span, format!("unknown pattern `{pat}`")).help(help)
            };
            self.error(d);
        }
        let unit = o.unit.name.as_str();
        if !self.unit_names.iter().any(|(n, _)| *n == unit) {
            ok = false;
            let names: Vec<&str> = self.unit_names.iter().map(|(n, _)| *n).collect();
            let help = did_you_mean(unit, names.iter().copied()).unwrap_or_else(|| {
                if names.is_empty() {
                    "no unit is defined".to_string()
                } else {
                    format!("units: {}", names.join(", "))
                }
            });
            self.error(Diagnostic::new(o.unit.span, format!("unknown unit `{unit}`")).help(help));
        }
        let condition = o.condition.as_ref().map(|e| {
            let (x, ty) = self.expr(e, &mut Vec::new());
            self.expect_top(e, ty, Type::Bool, "a `where` condition must be true or false");
            x
        });
        ok &= self.c_symbol(&o.kernel);
        let clauses = self.offload_clauses(o);
        ok.then(|| Offload {
            pattern: pat.to_string(),
            unit: unit.to_string(),
            condition,
            kernel: o.kernel.value.clone(),
            weight_layout: clauses.weight_layout,
            activation_layout: clauses.activation_layout,
            cycles: clauses.cycles,
            tile_condition: clauses.tile_condition,
        })
    }

    /// The clauses of an offload rule, each at most once, checked as the
    /// unit properties of the same name (`tile_condition` as a `where`
    /// condition).
    fn offload_clauses(&mut self, o: &'a ast::OffloadDecl) -> OffloadClauses {
        let ctx = format!("`offload {} to {}`", o.pattern.name, o.unit.name);
        let mut seen: Vec<&'a Prop> = Vec::new();
        let mut out = OffloadClauses::default();
        for p in &o.clauses {
            let key = p.key.name.as_str();
            if !OFFLOAD_CLAUSES.contains(&key) {
                let mut d = Diagnostic::new(p.key.span, format!("unknown clause `{key}` in {ctx}"));
                d = if let Some(h) = did_you_mean(key, OFFLOAD_CLAUSES.iter().copied()) {
                    d.help(h)
                } else if UNIT_KEYS.contains(&key) {
                    d.help(format!(
                        "`{key}` is a property of the unit; a rule overrides only weight_layout, \
                         activation_layout and cycles, and adds tile_condition"
                    ))
                } else {
                    d.help(
                        "an offload rule's clauses: `weight_layout STEPS`, `activation_layout STEPS`, \
                         `cycles = EXPR`, `tile_condition = CONDITION`",
                    )
                };
                self.error(d);
                continue;
            }
            if let Some(first) = seen.iter().find(|q| q.key.name == key) {
                let d = Diagnostic::new(p.key.span, format!("`{key}` is given twice in {ctx}"))
                    .label("given again here")
                    .secondary(first.key.span, "first given here");
                self.error(d);
                continue;
            }
            if p.span.start < o.kernel.span.start {
                let d = Diagnostic::new(p.key.span, format!("`{key}` comes before `call` in {ctx}"))
                    .secondary(o.kernel.span, "the kernel is named here")
                    .help(
                        "an offload rule is `offload PATTERN to UNIT [where CONDITION] call \"c_kernel\"` \
                         then its clauses (`matchc fmt` moves them)",
                    );
                self.error(d);
            }
            seen.push(p);
            match key {
                "weight_layout" => out.weight_layout = Some(self.layout(p, WEIGHT_DIMS)),
                "activation_layout" => out.activation_layout = Some(self.layout(p, ACTIVATION_DIMS)),
                "tile_condition" => out.tile_condition = self.tile_condition(p),
                _ => out.cycles = self.cycles(p),
            }
        }
        out
    }

    /// A `tile_condition = COND` clause: a condition over a tile.
    fn tile_condition(&mut self, p: &'a Prop) -> Option<Expr> {
        self.expr_prop(
            p,
            Type::Bool,
            (
                "`tile_condition` needs a condition",
                "write e.g. `tile_condition = K % 2 == 0` (over the tile's K, C, OY, OX)",
            ),
            "a `tile_condition` must be true or false",
        )
    }

    // ----- defs -----

    fn register_def(&mut self, d: &'a ast::DefDecl) {
        let idx = self.defs.len();
        self.defs.push(DefSlot { decl: d, state: DefState::Todo, in_cycle: false });
        let name = d.name.name.as_str();
        if Builtin::from_name(name).is_some() {
            let e = Diagnostic::new(d.name.span, format!("`{name}` is a builtin function"))
                .help("choose another name for the def");
            self.error(e);
            return;
        }
        if let Some(&first) = self.def_names.get(name) {
            let span = self.defs[first].decl.name.span;
            let e = Diagnostic::new(d.name.span, format!("duplicate def `{name}`"))
                .secondary(span, "first defined here");
            self.error(e);
            return;
        }
        self.def_names.insert(name, idx);
    }

    fn ensure_def(&mut self, i: usize) {
        if !matches!(self.defs[i].state, DefState::Todo) {
            return;
        }
        self.defs[i].state = DefState::Busy;
        self.def_stack.push(i);
        let decl = self.defs[i].decl;
        let mut locals: Vec<&'a str> = Vec::new();
        for (j, p) in decl.params.iter().enumerate() {
            if let Some(first) = decl.params[..j].iter().find(|q| q.name == p.name) {
                let d = Diagnostic::new(p.span, format!("parameter `{}` appears twice", p.name))
                    .secondary(first.span, "first here");
                self.error(d);
            }
            locals.push(&p.name);
        }
        let (body, ty) = self.expr(&decl.body, &mut locals);
        let ty = match ty {
            Some(Type::Pair) => {
                let d = Diagnostic::new(
                    decl.body.span,
                    format!("a def must give a number or a condition, found {}", Type::Pair),
                );
                self.error(d);
                None
            }
            t => t,
        };
        self.def_stack.pop();
        self.defs[i].state = DefState::Done(body, ty);
    }

    /// The type of a call of def `idx`, checking its body first if needed.
    fn def_type(&mut self, idx: usize, call: &Ident) -> Option<Type> {
        match &self.defs[idx].state {
            DefState::Done(_, t) => *t,
            DefState::Busy => {
                self.recursion(idx, call);
                None
            }
            DefState::Todo => {
                if self.def_stack.len() >= MAX_CALL_DEPTH {
                    if !self.depth_reported {
                        self.depth_reported = true;
                        let d = Diagnostic::new(
                            call.span,
                            format!("defs call each other more than {MAX_CALL_DEPTH} deep"),
                        )
                        .help("evaluation stops at this depth: flatten some of these defs");
                        self.error(d);
                    }
                    return None;
                }
                self.ensure_def(idx);
                match &self.defs[idx].state {
                    DefState::Done(_, t) => *t,
                    _ => None,
                }
            }
        }
    }

    fn recursion(&mut self, idx: usize, call: &Ident) {
        let pos = self.def_stack.iter().position(|&d| d == idx).unwrap_or(0);
        let cycle: Vec<usize> = self.def_stack[pos..].to_vec();
        if cycle.iter().any(|&d| self.defs[d].in_cycle) {
            return;
        }
        for &d in &cycle {
            self.defs[d].in_cycle = true;
        }
        let name = self.defs[idx].decl.name.name.clone();
        let mut d = Diagnostic::new(call.span, format!("recursive def `{name}`"));
        if cycle.len() <= 1 {
            d = d
                .label(format!("`{name}` calls itself"))
                .help("a def cannot call itself; to add up terms, use `sum(i in lo..hi, ...)`");
        } else {
            let mut path: Vec<&str> = cycle.iter().map(|&d| self.defs[d].decl.name.name.as_str()).collect();
            path.push(&name);
            d = d.label(format!("this call leads back to `{name}`")).help(format!(
                "{}: a def cannot call itself, directly or through other defs",
                path.join(" -> ")
            ));
        }
        self.error(d);
    }

    // ----- expressions -----

    /// Reports a top-level expression of the wrong type.
    fn expect_top(&mut self, e: &ast::Expr, got: Option<Type>, want: Type, why: &str) {
        if let Some(t) = got.filter(|t| *t != want) {
            self.error(Diagnostic::new(e.span, format!("expected {want}, found {t}")).label(why));
        }
    }

    fn expect(&mut self, e: &ast::Expr, got: Option<Type>, want: Type, why: impl FnOnce() -> String) {
        if let Some(t) = got.filter(|t| *t != want) {
            self.error(Diagnostic::new(e.span, format!("expected {want}, found {t}")).label(why()));
        }
    }

    /// Converts and type-checks an expression. `None` as the type means an
    /// error was reported inside it (so no further error is derived from it).
    fn expr(&mut self, e: &'a ast::Expr, locals: &mut Vec<&'a str>) -> (Expr, Option<Type>) {
        use ast::ExprKind as K;
        match &e.kind {
            K::Num(v, _) => (Expr::Num(*v), Some(Type::Num)),
            K::Pair(a, b) => (Expr::Pair(*a, *b), Some(Type::Pair)),
            K::Var(id) => self.var(id, locals),
            K::Unary(op, x) => {
                let (xe, xt) = self.expr(x, locals);
                let want = match op {
                    UnOp::Neg => Type::Num,
                    UnOp::Not => Type::Bool,
                };
                self.expect(x, xt, want, || match op {
                    UnOp::Neg => "`-` negates a number".to_string(),
                    UnOp::Not => "`not` needs a condition".to_string(),
                });
                (Expr::Unary(*op, Box::new(xe)), Some(want))
            }
            K::Binary(op, a, b) => {
                let (ae, at) = self.expr(a, locals);
                let (be, bt) = self.expr(b, locals);
                let sym = op.symbol();
                let ty = match op {
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                        self.expect(a, at, Type::Num, || format!("`{sym}` works on numbers"));
                        self.expect(b, bt, Type::Num, || format!("`{sym}` works on numbers"));
                        Type::Num
                    }
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                        self.expect(a, at, Type::Num, || format!("`{sym}` compares numbers"));
                        self.expect(b, bt, Type::Num, || format!("`{sym}` compares numbers"));
                        Type::Bool
                    }
                    BinOp::Eq | BinOp::Ne => {
                        if let (Some(x), Some(y)) = (at, bt) {
                            if x != y {
                                let d = Diagnostic::new(b.span, format!("expected {x}, found {y}"))
                                    .label(format!("`{sym}` compares values of the same kind"))
                                    .secondary(a.span, format!("this is {x}"));
                                self.error(d);
                            }
                        }
                        Type::Bool
                    }
                    BinOp::And | BinOp::Or => {
                        self.expect(a, at, Type::Bool, || format!("`{sym}` joins conditions"));
                        self.expect(b, bt, Type::Bool, || format!("`{sym}` joins conditions"));
                        Type::Bool
                    }
                };
                (Expr::Binary(*op, Box::new(ae), Box::new(be)), Some(ty))
            }
            K::Call(name, args) => self.call(name, args, locals),
            K::If(c, t, f) => {
                let (ce, ct) = self.expr(c, locals);
                self.expect(c, ct, Type::Bool, || "`if` needs a condition".to_string());
                let (te, tt) = self.expr(t, locals);
                let (fe, ft) = self.expr(f, locals);
                let ty = match (tt, ft) {
                    (Some(x), Some(y)) if x != y => {
                        let d = Diagnostic::new(f.span, format!("expected {x}, found {y}"))
                            .label("the `else` branch must match the `then` branch")
                            .secondary(t.span, format!("this is {x}"));
                        self.error(d);
                        Some(x)
                    }
                    (Some(x), _) => Some(x),
                    (None, y) => y,
                };
                (Expr::If(Box::new(ce), Box::new(te), Box::new(fe)), ty)
            }
            K::Sum(var, lo, hi, body) => {
                let (le, lt) = self.expr(lo, locals);
                self.expect(lo, lt, Type::Num, || "the bounds of `sum` are numbers".to_string());
                let (he, ht) = self.expr(hi, locals);
                self.expect(hi, ht, Type::Num, || "the bounds of `sum` are numbers".to_string());
                locals.push(&var.name);
                let (be, bt) = self.expr(body, locals);
                locals.pop();
                self.expect(body, bt, Type::Num, || "`sum` adds numbers".to_string());
                (Expr::Sum(var.name.clone(), Box::new(le), Box::new(he), Box::new(be)), Some(Type::Num))
            }
            K::In(x, set) => {
                let (xe, xt) = self.expr(x, locals);
                let mut members = Vec::with_capacity(set.len());
                for m in set {
                    let (me, mt) = self.expr(m, locals);
                    if let (Some(want), Some(got)) = (xt, mt) {
                        if want != got {
                            let d = Diagnostic::new(m.span, format!("expected {want}, found {got}"))
                                .label("the members of the set must be like the tested value")
                                .secondary(x.span, format!("this is {want}"));
                            self.error(d);
                        }
                    }
                    members.push(me);
                }
                (Expr::In(Box::new(xe), members), Some(Type::Bool))
            }
        }
    }

    fn var(&mut self, id: &'a Ident, locals: &[&'a str]) -> (Expr, Option<Type>) {
        let name = id.name.as_str();
        if locals.iter().rev().any(|l| *l == name) {
            return (Expr::Local(name.to_string()), Some(Type::Num));
        }
        if let Some(a) = layer::attribute(name) {
            return (Expr::Attr(name.to_string()), Some(a.ty));
        }
        let candidates = ATTRIBUTES.iter().map(|a| a.name).chain(locals.iter().copied());
        let help = if let Some(h) = did_you_mean(name, candidates) {
            h
        } else if let Some(h) = alias_hint(name) {
            h.to_string()
        } else if self.def_names.contains_key(name) || Builtin::from_name(name).is_some() {
            format!("`{name}` is a function: call it as `{name}(...)`")
        } else {
            format!("attributes: {}", ATTRIBUTES.iter().map(|a| a.name).collect::<Vec<_>>().join(", "))
        };
        self.error(Diagnostic::new(id.span, format!("unknown attribute `{name}`")).help(help));
        (Expr::Attr(name.to_string()), None)
    }

    fn call(
        &mut self,
        name: &'a Ident,
        args: &'a [ast::Expr],
        locals: &mut Vec<&'a str>,
    ) -> (Expr, Option<Type>) {
        let mut xs = Vec::with_capacity(args.len());
        let mut ts = Vec::with_capacity(args.len());
        for a in args {
            let (x, t) = self.expr(a, locals);
            xs.push(x);
            ts.push(t);
        }
        let f = name.name.as_str();
        if let Some(b) = Builtin::from_name(f) {
            let (lo, hi) = b.arity();
            let n = args.len();
            if n < lo || hi.is_some_and(|h| n > h) {
                let takes = match hi {
                    Some(h) if h == lo => plural(lo, "argument"),
                    Some(h) => format!("{lo} to {h} arguments"),
                    None => format!("at least {}", plural(lo, "argument")),
                };
                self.error(Diagnostic::new(name.span, format!("`{f}` takes {takes}, found {n}")));
            }
            for (a, t) in args.iter().zip(&ts) {
                self.expect(a, *t, Type::Num, || format!("`{f}` works on numbers"));
            }
            return (Expr::Builtin(b, xs), Some(Type::Num));
        }
        if let Some(&idx) = self.def_names.get(f) {
            let decl = self.defs[idx].decl;
            let want = decl.params.len();
            if args.len() != want {
                let d = Diagnostic::new(
                    name.span,
                    format!("`{f}` takes {}, found {}", plural(want, "argument"), args.len()),
                )
                .secondary(decl.name.span, "defined here");
                self.error(d);
            }
            for (a, t) in args.iter().zip(&ts) {
                self.expect(a, *t, Type::Num, || "the parameters of a def are numbers".to_string());
            }
            let ty = self.def_type(idx, name);
            return (Expr::Call(f.to_string(), xs), ty);
        }
        let candidates = Builtin::ALL.map(|b| b.name());
        let help = did_you_mean(f, candidates.iter().copied().chain(self.def_names.keys().copied()))
            .unwrap_or_else(|| {
                if layer::attribute(f).is_some() || locals.contains(&f) {
                    format!("`{f}` is a value, not a function")
                } else {
                    format!("functions: {}; or a `def` of this file", candidates.join(", "))
                }
            });
        self.error(Diagnostic::new(name.span, format!("unknown function `{f}`")).help(help));
        (Expr::Call(f.to_string(), xs), None)
    }
}

/// Whether a pattern can match the empty chain.
fn nullable(p: &PatternExpr) -> bool {
    match p {
        PatternExpr::Op(_) => false,
        PatternExpr::Optional(_) => true,
        PatternExpr::Alt(xs) => xs.iter().any(nullable),
        PatternExpr::Seq(xs) => xs.iter().all(nullable),
    }
}

fn nodes(p: &PatternExpr) -> usize {
    match p {
        PatternExpr::Op(_) => 1,
        PatternExpr::Optional(x) => 1 + nodes(x),
        PatternExpr::Alt(xs) | PatternExpr::Seq(xs) => 1 + xs.iter().map(nodes).sum::<usize>(),
    }
}

/// How many chains a pattern matches (an upper bound; saturating).
fn chains(p: &PatternExpr) -> u64 {
    match p {
        PatternExpr::Op(_) => 1,
        PatternExpr::Optional(x) => chains(x).saturating_add(1),
        PatternExpr::Alt(xs) => xs.iter().fold(0u64, |a, x| a.saturating_add(chains(x))),
        PatternExpr::Seq(xs) => xs.iter().fold(1u64, |a, x| a.saturating_mul(chains(x))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "    clock 100 MHz
    memory L2 { size 512 KiB }
    memory L1 { size 128 KiB; reserve 1 KiB }
    unit cpu { host; macs 1/cycle; compute_in L2 }
";

    fn target(body: &str) -> String {
        format!("target t {{\n{BASE}{body}\n}}\n")
    }

    fn ok(src: &str) -> HwModel {
        match crate::check(src, "t.hwm") {
            Ok(m) => m,
            Err(d) => panic!("should check:\n{d}"),
        }
    }

    fn errors(src: &str) -> (String, Vec<Diagnostic>) {
        match crate::check(src, "t.hwm") {
            Ok(_) => panic!("should fail:\n{src}"),
            Err(d) => (d.render(), d.errors),
        }
    }

    /// The one error whose message contains `msg`, and the text under its caret.
    fn error(src: &str, msg: &str) -> (Diagnostic, String) {
        let (rendered, errs) = errors(src);
        let found: Vec<&Diagnostic> = errs.iter().filter(|d| d.message.contains(msg)).collect();
        assert_eq!(found.len(), 1, "want one error with {msg:?}, got:\n{rendered}");
        let d = found[0].clone();
        let text = src[d.primary.span.start..d.primary.span.end].to_string();
        (d, text)
    }

    fn only_error(src: &str, msg: &str) -> (Diagnostic, String) {
        let (rendered, errs) = errors(src);
        assert_eq!(errs.len(), 1, "want exactly one error, got:\n{rendered}");
        error(src, msg)
    }

    #[test]
    fn minimal_target_with_defaults() {
        let m = ok(&target(""));
        assert_eq!(m.name, "t");
        assert_eq!(m.clock_hz, 100_000_000);
        assert_eq!(m.memories.len(), 2);
        let l1 = &m.memories[1];
        assert_eq!((l1.name.as_str(), l1.size, l1.reserve, l1.ports, l1.latency), ("L1", 131072, 1024, 1, 0));
        let cpu = &m.units[0];
        assert!(cpu.host);
        assert_eq!((cpu.cores, cpu.call_overhead, cpu.macs_per_cycle), (1, 0, 1.0));
        assert_eq!(cpu.compute_in, "L2");
    }

    #[test]
    fn full_blocks_build_the_model() {
        let m = ok(&target(
            r#"
    memory L3 { size 8 MB; external; energy 12.5 pJ/B; holds inputs, weights }
    memory W { size 1.5 KiB; read_bandwidth 4 B/cycle; write_bandwidth 2 B/cycle; ports 2; latency 3 cycles }
    dma L3 -> L2 { bandwidth 1 B/cycle; start "l3_start"; wait "l3_wait" }
    dma L2 <-> L1 {
        bandwidth 8 B/cycle; setup 30 cycles; dims 3; max 65535 B
        overhead 1d 0 cycles, 2d 1 cycles, 3d 10 cycles
        start "dma_start"; wait "dma_wait"
    }
    unit ne16 {
        spatial K 32, C 16
        macs 256/cycle
        cores 2
        compute_in L1
        weights_in W
        call_overhead 550 cycles
        scratch a = 4 * K
        scratch b = if has_bias then K else 0
        inputs u8, i8
        weights i8
        outputs i8, u8, i32
        requant scale_shift, shift
        weight_layout offset(128), pad(C, 16), split(C, 16, Ci), bitplanes(8), order(K, C, B, FY, FX, Ci), pack(8)
        activation_layout order(H, W, C)
        cycles = tiles(K, 32) * OY * OX
        energy 0.5 pJ/MAC
        adc 6
    }
    api { header "p.h"; init "p_init"; timer_stop "p_stop" }
    def tiles(n, t) = ceil(n / t)
    pattern act = relu | clip
    pattern conv = conv2d >> bias? >> requant >> act?
    offload conv to ne16 where kernel in {1x1, 3x3} and K % 16 == 0 call "ne16_conv"
    offload conv to cpu call "cpu_conv"
"#,
        ));
        assert_eq!(m.memories.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["L2", "L1", "L3", "W"]);
        assert_eq!(m.memories[2].size, 8_000_000);
        assert!(m.memories[2].external);
        assert_eq!(m.memories[3].size, 1536);
        assert_eq!(m.memories[3].read_bandwidth, Some(4.0));
        let dma = m.dma("L1", "L2").expect("both ways");
        assert_eq!((dma.dims, dma.setup, dma.max_bytes), (3, 30, Some(65535)));
        assert_eq!(dma.overhead, vec![0, 1, 10]);
        assert!(m.dma("L2", "L3").is_none());
        let ne16 = m.unit("ne16").expect("unit");
        assert_eq!(ne16.spatial, vec![(Dim::K, 32), (Dim::C, 16)]);
        assert_eq!(ne16.weights_in.as_deref(), Some("W"));
        assert_eq!(ne16.scratch.len(), 2);
        assert_eq!(ne16.outputs, vec![DType::Signed(8), DType::Unsigned(8), DType::Signed(32)]);
        assert_eq!(ne16.weight_layout.len(), 6);
        assert_eq!(ne16.weight_layout[2], LayoutStep::Split("C".into(), 16, "Ci".into()));
        assert_eq!(ne16.adc_bits, Some(6));
        assert_eq!(m.api("timer_stop"), Some("p_stop"));
        assert_eq!(m.defs[0].params, vec!["n".to_string(), "t".to_string()]);
        // Patterns are inlined: `conv` sees operators only.
        let conv = m.pattern("conv").expect("pattern");
        assert_eq!(conv.body.sequences().len(), 6);
        assert_eq!(m.offloads.len(), 2);
        let layer = crate::Layer::conv(32, 16, 8, 8, 3, 3, 1, 1);
        assert_eq!(m.check_offload(&m.offloads[0], &layer), Ok(crate::Verdict::Accepted));
        assert_eq!(m.call_cycles(ne16, &layer), Ok(Some(64.0)));
    }

    #[test]
    fn unknown_property_suggests() {
        let (d, at) = only_error(
            &target("memory X { sise 1 KiB; size 1 KiB }"),
            "unknown property `sise` in memory `X`",
        );
        assert_eq!(at, "sise");
        assert_eq!(d.help.as_deref(), Some("did you mean `size`?"));
        let (d, _) = error(&target("memory X { size 1 KiB; zzzz 3 }"), "unknown property `zzzz`");
        assert!(d.help.unwrap().contains("size, reserve"));
        let (d, _) = error(&target("memory X { size 1 KiB; macs 3/cycle }"), "unknown property `macs`");
        assert!(d.help.unwrap().contains("`unit` blocks"));
    }

    #[test]
    fn unknown_items() {
        let (d, at) = only_error(&target("memroy X { size 1 KiB }"), "unknown item `memroy`");
        assert_eq!((at.as_str(), d.help.as_deref()), ("memroy", Some("did you mean `memory`?")));
        let (d, _) = only_error(&target("size 1 KiB"), "unknown item `size`");
        assert!(d.help.unwrap().contains("`memory` blocks"));
    }

    #[test]
    fn quantities_and_units() {
        let (d, at) = only_error(&target("memory X { size 128 }"), "`size` needs a unit");
        assert_eq!(at, "128");
        assert_eq!(d.help.as_deref(), Some("write e.g. `128 KiB` (units: B, kB, KiB, MB, MiB)"));
        let (_, at) = only_error(&target("memory X { size 128 cycles }"), "`size` is in bytes, not `cycles`");
        assert_eq!(at, "cycles");
        let (d, _) = only_error(&target("memory X { size 128 KB }"), "unknown unit `KB`");
        assert_eq!(d.help.as_deref(), Some("write `KiB` for 1024 bytes or `kB` for 1000 bytes"));
        only_error(&target("memory X { size 0.5 B }"), "memory size must be a whole number of bytes");
        only_error(&target("memory X { size 0 B }"), "memory size must be positive");
        only_error(&target("memory X { size -4 KiB }"), "memory size must be positive");
        only_error(&target("memory X { size 20000000000000000000 B }"), "memory size is too large");
        only_error(&target("memory X { size 18014398509481984 MiB }"), "memory size is too large");
        let m = ok(&target("memory X { size 18446744073709551615 B }"));
        assert_eq!(m.memory("X").map(|x| x.size), Some(u64::MAX));
        only_error(&target("memory X { size 1 KiB; latency -1 cycles }"), "`latency` cannot be negative");
        only_error(
            &target("memory X { size 1 KiB; bandwidth 8 B }"),
            "`bandwidth` is in bytes per cycle, not `B`",
        );
        only_error(&target("unit u { macs 32; compute_in L1 }"), "`macs` needs a unit");
        only_error(
            &target("unit u { macs 32/cycle; cores 2.5; compute_in L1 }"),
            "`cores` must be a whole number",
        );
        only_error(&target("unit u { macs 32/cycle; cores 0; compute_in L1 }"), "`cores` must be");
        only_error(
            &target("unit u { macs 32/cycle; adc 17; compute_in L1 }"),
            "`adc` must be a whole number from 1 to 16",
        );
        only_error(&target("memory X { size 1 KiB; ports 2 B }"), "`ports` takes a plain number, not `B`");
        only_error(&target("memory X { size 1 KiB; reserve 2 KiB }"), "`reserve` must be less than `size`");
    }

    #[test]
    fn duplicates_point_at_the_first() {
        let src = target("memory X {\n size 1 KiB\n size 2 KiB\n}");
        let (d, at) = only_error(&src, "`size` is set twice in memory `X`");
        assert_eq!(at, "size");
        assert_eq!(d.secondary[0].text, "first set here");
        assert!(d.secondary[0].span.start < d.primary.span.start);
        let (d, _) = only_error(&target("memory L1 { size 1 KiB }"), "duplicate memory `L1`");
        assert_eq!(d.secondary[0].text, "first defined here");
        only_error(
            &target("unit u { macs 1/cycle; compute_in L1; scratch a = 1; scratch a = 2 }"),
            "duplicate scratch `a`",
        );
        only_error(&target("pattern p = relu\npattern p = clip"), "duplicate pattern `p`");
        only_error(&target("def f() = 1\ndef f() = 2"), "duplicate def `f`");
        only_error(&target("unit cpu { macs 1/cycle; compute_in L1 }"), "duplicate unit `cpu`");
    }

    #[test]
    fn memory_references() {
        let (d, at) = only_error(&target("unit u { macs 1/cycle; compute_in L3 }"), "unknown memory `L3`");
        assert_eq!(at, "L3");
        assert!(d.help.unwrap().starts_with("did you mean"));
        only_error(
            &target("dma L1 -> L1 { bandwidth 1 B/cycle; start \"s\"; wait \"w\" }"),
            "a dma from `L1` to itself",
        );
        only_error(
            &target("memory E { size 1 MB; external }\nunit u { macs 1/cycle; compute_in E }"),
            "`compute_in` cannot be `E`: it is external",
        );
        only_error(
            &target("dma L2 <-> L1 { bandwidth 1 B/cycle; start \"s\"; wait \"w\" }\ndma L1 -> L2 { bandwidth 1 B/cycle; start \"s\"; wait \"w\" }"),
            "a dma from `L1` to `L2` is already defined",
        );
        // A memory may be used before it is declared.
        ok(&target("unit u { macs 1/cycle; compute_in Z }\nmemory Z { size 1 KiB }"));
    }

    #[test]
    fn required_fields_point_at_the_header() {
        let (d, at) = only_error(
            &target("dma L2 -> L1 { bandwidth 1 B/cycle; wait \"w\" }"),
            "missing `start` in dma `L2 -> L1`",
        );
        assert_eq!(at, "dma L2 -> L1");
        assert!(d.help.unwrap().contains("start"));
        let (_, at) = only_error(&target("unit u { macs 1/cycle }"), "missing `compute_in` in unit `u`");
        assert_eq!(at, "unit u");
        only_error(&target("memory X { }"), "missing `size` in memory `X`");
        let (_, errs) = errors("target t {\n memory M { size 1 KiB }\n}\n");
        let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, ["missing `clock` in target `t`", "missing host unit"]);
        let (_, at) = error(
            "target t {\n clock 1 MHz\n unit u { macs 1/cycle; compute_in M }\n}\n",
            "target `t` has no memory",
        );
        assert_eq!(at, "t");
    }

    #[test]
    fn exactly_one_host() {
        let (d, at) =
            only_error(&target("unit u { host; macs 1/cycle; compute_in L1 }"), "more than one host unit");
        assert_eq!(at, "host");
        assert_eq!(d.secondary[0].text, "first host here");
        let src =
            "target t {\n clock 1 MHz\n memory M { size 1 KiB }\n unit u { macs 1/cycle; compute_in M }\n}\n";
        let (d, at) = only_error(src, "missing host unit");
        assert_eq!(at, "t");
        assert_eq!(d.help.as_deref(), Some("add `host` to the unit that runs generic kernels"));
    }

    #[test]
    fn lists_types_and_layouts() {
        let u = |body: &str| target(&format!("unit u {{ macs 1/cycle; compute_in L1; {body} }}"));
        let (d, _) = only_error(&u("inputs int8"), "unknown type `int8`");
        assert_eq!(d.help.as_deref(), Some("did you mean `i8`?"));
        only_error(&u("inputs i0"), "unknown type `i0`");
        only_error(&u("requant scale_shfit"), "unknown requantization form `scale_shfit`");
        only_error(&u("spatial K 32, K 16"), "`K` appears twice in `spatial`");
        only_error(&u("spatial K 0"), "a spatial factor must be");
        let (d, _) = only_error(&u("spatial H 3"), "unknown dimension `H`");
        assert!(d.help.unwrap().contains("`OY`"));
        only_error(&u("weight_layout pads(C, 16)"), "unknown layout step `pads`");
        only_error(&u("weight_layout pad(C)"), "`pad` takes 2 arguments, found 1");
        only_error(&u("weight_layout pad(Q, 16)"), "unknown dimension `Q` in `weight_layout`");
        only_error(&u("weight_layout pad(C, 0)"), "the argument of `pad` must be");
        only_error(&u("weight_layout order(K, C)"), "`order` leaves out `FY`, `FX`");
        only_error(&u("weight_layout bitplanes"), "`bitplanes` needs arguments");
        only_error(&u("weight_layout split(C, 16, K)"), "dimension `K` already exists");
        ok(&u("weight_layout ternary_pairs(), offset(-128), swap(K, C)"));
        // One unknown step does not cascade into unknown dimensions.
        only_error(&u("weight_layout bitplane(8), order(K, C, B, FY, FX)"), "unknown layout step `bitplane`");
        only_error(&target("memory X { size 1 KiB; holds inputs, biases }"), "unknown tensor class `biases`");
        only_error(&target("memory X { size 1 KiB; holds inputs, inputs }"), "`inputs` is listed twice");
        only_error(
            &target("memory X { size 1 KiB; external yes }"),
            "`external` is a flag and takes no value",
        );
    }

    #[test]
    fn dma_overhead_and_dims() {
        let d = |body: &str| {
            target(&format!("dma L2 -> L1 {{ bandwidth 1 B/cycle; start \"s\"; wait \"w\"; {body} }}"))
        };
        only_error(&d("dims 4"), "`dims` must be a whole number from 1 to 3");
        let (e, at) =
            only_error(&d("dims 2; overhead 1d 1 cycles, 2d 2 cycles, 3d 3 cycles"), "`3d` overhead");
        assert_eq!(at, "3d");
        assert_eq!(e.secondary[0].text, "`dims` set here");
        only_error(&d("dims 3; overhead 1d 1 cycles, 3d 3 cycles"), "`overhead` has no `2d` entry");
        only_error(&d("overhead 1d 1 cycles, 1d 3 cycles"), "`1d` is given twice");
        only_error(&d("overhead 1d 1 B"), "`overhead` is in cycles, not `B`");
    }

    #[test]
    fn c_names() {
        let (_, at) = only_error(
            &target("offload p to cpu call \"a-b\"\npattern p = relu"),
            "`a-b` is not a valid C identifier",
        );
        assert_eq!(at, "\"a-b\"");
        only_error(&target("api { init \"9init\" }"), "`9init` is not a valid C identifier");
        only_error(&target("api { inti \"x\" }"), "unknown property `inti` in the `api` block");
        only_error(&target("api { init x }"), "`init` needs a string, found `x`");
        only_error(&target("api { header \"a b\" }"), "is not a C header file name");
        only_error(
            &target("dma L2 -> L1 { bandwidth 1 B/cycle; start \"\"; wait \"w\" }"),
            "an empty string is not a valid C identifier",
        );
    }

    #[test]
    fn patterns() {
        let (d, at) = only_error(&target("pattern p = conv3d >> requant"), "unknown operator `conv3d`");
        assert_eq!(at, "conv3d");
        assert_eq!(d.help.as_deref(), Some("did you mean `conv2d`?"));
        only_error(
            &target("pattern p = q >> relu\npattern q = conv2d"),
            "pattern `q` is used before it is defined",
        );
        only_error(&target("pattern p = conv2d >> p?"), "pattern `p` refers to itself");
        only_error(&target("pattern p = bias? >> relu?"), "pattern `p` may match no operator at all");
        only_error(&target("pattern p = (relu | clip?)"), "may match no operator");
        only_error(&target("pattern relu = conv2d"), "pattern `relu` has the name of an operator");
        let big = (0..13).map(|_| "(relu | clip)").collect::<Vec<_>>().join(" >> ");
        only_error(&target(&format!("pattern p = {big}")), "matches more than 4096 operator chains");
        let mut chain = String::from("pattern p0 = relu | clip\n");
        for i in 1..40 {
            chain.push_str(&format!("pattern p{i} = p{} >> p{}\n", i - 1, i - 1));
        }
        let (rendered, errs) = errors(&target(&chain));
        assert!(errs.len() <= 2, "{rendered}");
    }

    #[test]
    fn offloads() {
        let (_, at) =
            only_error(&target("offload relu to cpu call \"k\""), "`relu` is an operator, not a pattern");
        assert_eq!(at, "relu");
        only_error(&target("pattern p = relu\noffload p to cpv call \"k\""), "unknown unit `cpv`");
        only_error(&target("pattern p = relu\noffload q to cpu call \"k\""), "unknown pattern `q`");
        let (_, at) = only_error(
            &target("pattern p = relu\noffload p to cpu where K * C call \"k\""),
            "expected a condition, found a number",
        );
        assert_eq!(at, "K * C");
        // A unit may be declared after the rule that names it.
        ok(&target("pattern p = relu\noffload p to z call \"k\"\nunit z { macs 1/cycle; compute_in L1 }"));
    }

    #[test]
    fn offload_clauses() {
        let r =
            |clauses: &str| target(&format!("pattern p = conv2d\noffload p to cpu call \"k\"\n{clauses}"));
        let m = ok(&r(
            "  weight_layout swap(K, C), pad(C, 16)\n  activation_layout order(H, W, C)\n  cycles = K * 2",
        ));
        let o = &m.offloads[0];
        assert_eq!(
            o.weight_layout,
            Some(vec![LayoutStep::Swap("K".into(), "C".into()), LayoutStep::Pad("C".into(), 16)])
        );
        assert_eq!(
            o.activation_layout,
            Some(vec![LayoutStep::Order(vec!["H".into(), "W".into(), "C".into()])])
        );
        assert!(o.cycles.is_some());
        // Without clauses the rule keeps the unit's.
        let m = ok(&r(""));
        assert_eq!((&m.offloads[0].weight_layout, &m.offloads[0].cycles), (&None, &None));
        // The items after a rule are not taken for its clauses.
        let m = ok(&r("platform \"x\"\ndef f(x) = x\npattern q = relu\noffload q to cpu call \"k2\""));
        assert_eq!((m.platform.as_deref(), m.offloads.len(), m.defs.len()), (Some("x"), 2, 1));
        let (d, _) = only_error(&r("cylces = 3"), "unknown clause `cylces`");
        assert_eq!(d.help.as_deref(), Some("did you mean `cycles`?"));
        only_error(&r("cycles = 1\ncycles = 2"), "`cycles` is given twice");
        only_error(&r("cycles = kernel"), "expected a number, found a pair");
        only_error(&r("weight_layout pad(Q, 16)"), "unknown dimension `Q` in `weight_layout`");
        only_error(&r("activation_layout = 3"), "`activation_layout` takes a value, not an expression");
    }

    #[test]
    fn merge_steps() {
        let u =
            |body: &str| target(&format!("unit u {{ macs 1/cycle; compute_in L1; weight_layout {body} }}"));
        let m = ok(&u("merge(C, FY, R), merge(R, FX, R2), pad(R2, 288), order(K, R2)"));
        let steps = &m.unit("u").unwrap().weight_layout;
        assert_eq!(steps[0], LayoutStep::Merge("C".into(), "FY".into(), "R".into()));
        // `swap` moves contents, not names: K and C stay where they are.
        ok(&u("swap(K, C), merge(K, C, KC), order(KC, FY, FX)"));
        only_error(&u("merge(C, FY, R), pad(C, 2)"), "unknown dimension `C`");
        only_error(&u("merge(FY, C, R)"), "`merge` needs `FY` directly before `C`");
        only_error(&u("merge(K, FY, R)"), "`merge` needs `K` directly before `FY`");
        only_error(&u("merge(K, K, R)"), "`merge` of `K` with itself");
        only_error(&u("merge(K, C, FY)"), "dimension `FY` already exists");
        only_error(&u("merge(K, C)"), "`merge` takes 3 arguments, found 2");
        only_error(&u("split(C, 4, c), merge(C, c, X)"), "`merge` needs the order of the dimensions");
        ok(&u("split(C, 4, c), order(K, C, c, FY, FX), merge(C, c, X), order(K, X, FY, FX)"));
        only_error(&u("bitplanes(8), merge(FX, B, X)"), "`merge` needs the order of the dimensions");
    }

    #[test]
    fn expression_names_and_types() {
        let w = |cond: &str| target(&format!("pattern p = relu\noffload p to cpu where {cond} call \"k\""));
        let (d, at) = only_error(&w("kernal == 3x3"), "unknown attribute `kernal`");
        assert_eq!((at.as_str(), d.help.as_deref()), ("kernal", Some("did you mean `kernel`?")));
        let (_, at) = only_error(&w("kernel == 3"), "expected a pair such as 3x3, found a number");
        assert_eq!(at, "3");
        let (_, at) = only_error(&w("stride <= 2"), "expected a number, found a pair such as 3x3");
        assert_eq!(at, "stride");
        let (_, at) = only_error(&w("kernel in {1x1, 3}"), "expected a pair such as 3x3, found a number");
        assert_eq!(at, "3");
        only_error(&w("K and C > 1"), "expected a condition, found a number");
        only_error(&w("not K"), "expected a condition, found a number");
        only_error(&w("(if depthwise then 1 else 2x2) == 1"), "expected a number, found a pair");
        only_error(&w("(if K then 1 else 2) == 1"), "expected a condition, found a number");
        only_error(&w("ceil(K, 2) > 1"), "`ceil` takes 1 argument, found 2");
        only_error(&w("min(K) > 1"), "`min` takes at least 2 arguments, found 1");
        only_error(&w("round(K) > 1"), "unknown function `round`");
        only_error(&w("ceil(kernel) > 1"), "expected a number, found a pair");
        ok(&w("depthwise == has_bias and kernel != 1x1 or not (K in {16, 32})"));
        ok(&w("sum(i in 0..K, i * C) > 3 and -K < 0"));
        let u = |e: &str| target(&format!("unit u {{ macs 1/cycle; compute_in L1; cycles = {e} }}"));
        let (_, at) = only_error(&u("K * C > 1024"), "expected a number, found a condition");
        assert_eq!(at, "K * C > 1024");
        only_error(&u("i * 2"), "unknown attribute `i`");
        only_error(&u("sum(i in 0..i, 1)"), "unknown attribute `i`");
    }

    #[test]
    fn defs() {
        let m = ok(&target(
            "def half(C) = C / 2\ndef is_pw() = kernel == 1x1\ndef g(k) = if is_pw() then half(k) else k",
        ));
        assert_eq!(m.defs.len(), 3);
        assert_eq!(
            m.defs[0].body,
            Expr::Binary(BinOp::Div, Box::new(Expr::Local("C".into())), Box::new(Expr::Num(2.0)))
        );
        // A def may be used before it is declared, and its type is its body's.
        ok(&target("pattern p = relu\noffload p to cpu where pw() call \"k\"\ndef pw() = kernel == 1x1"));
        only_error(
            &target(
                "pattern p = relu\noffload p to cpu where pw() + 1 > 0 call \"k\"\ndef pw() = kernel == 1x1",
            ),
            "expected a number, found a condition",
        );
        only_error(
            &target("def f(a) = a\nunit u { macs 1/cycle; compute_in L1; cycles = f(K, C) }"),
            "`f` takes 1 argument, found 2",
        );
        let (d, at) = only_error(&target("def f(n) = f(n - 1)"), "recursive def `f`");
        assert_eq!((at.as_str(), d.primary.text.as_str()), ("f", "`f` calls itself"));
        only_error(&target("def rows(n) = cols(n) + 1\ndef cols(n) = rows(n) * 2"), "recursive def `rows`");
        only_error(&target("def ceil(x) = x"), "`ceil` is a builtin function");
        only_error(&target("def f(a, a) = a"), "parameter `a` appears twice");
        only_error(&target("def f() = 3x3"), "a def must give a number or a condition");
        only_error(&target("def f(a) = a\ndef g() = f(kernel)"), "expected a number, found a pair");
        let mut chain = String::new();
        for i in 0..80 {
            chain.push_str(&format!("def f{i}() = f{}() + 1\n", i + 1));
        }
        chain.push_str("def f80() = 1\n");
        only_error(&target(&chain), "defs call each other more than 64 deep");
    }

    #[test]
    fn nesting() {
        let src = target(
            "unit u {\n        macs 1/cycle\n        compute_in L1\n        memory Q { size 1 KiB }\n    }",
        );
        let (d, at) = only_error(&src, "`memory Q` cannot be inside `unit u`");
        assert_eq!(at, "memory");
        assert_eq!(d.secondary[0].text, "`unit u` opened here");
        let src = target(
            "unit u {\n macs 1/cycle\n compute_in L1\n }\n memory Q {\n size 1 KiB\n pattern p = relu\n }",
        );
        let (d, at) = only_error(&src, "missing `}` to close `memory Q`");
        assert_eq!(at, "pattern");
        assert_eq!(d.secondary[0].text, "`memory Q` opened here");
    }

    #[test]
    fn never_panics_on_mangled_input() {
        let base = target(
            "dma L2 <-> L1 { bandwidth 8 B/cycle; dims 2; overhead 1d 1 cycles, 2d 2 cycles; start \"s\"; wait \"w\" }\n\
             unit n { spatial K 32; macs 9/cycle; compute_in L1; weight_layout pad(C, 16), split(C, 4, Ci), bitplanes(2), order(K, C, Ci, B, FY, FX)\n\
             cycles = sum(i in 0..K, f(i)) + (if depthwise then 1 else 2) }\n\
             def f(x) = max(x, 1, K % 3) / 2\n\
             pattern p = conv2d >> (relu | clip)?\n\
             offload p to n where kernel in {1x1, 3x3} and K >= 2 call \"k\"",
        );
        ok(&base);
        let bytes = base.as_bytes();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..500 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed % bytes.len() as u64) as usize;
            let j = ((seed >> 20) % bytes.len() as u64) as usize;
            let mut v = bytes.to_vec();
            match seed % 3 {
                0 => {
                    v.remove(i);
                }
                1 => v[i] = bytes[j],
                _ => v.insert(i, b"{}()-,;x0"[(seed >> 40) as usize % 9]),
            }
            if let Ok(s) = String::from_utf8(v) {
                let _ = crate::check(&s, "m.hwm").map_err(|d| d.render());
            }
        }
    }

    #[test]
    fn exact_scaling() {
        assert!(matches!(exact_scaled("1.5", 1024), Exact::Whole(1536)));
        assert!(matches!(exact_scaled("1.1", 1000), Exact::Whole(1100)));
        assert!(matches!(exact_scaled("0.3", 1), Exact::Fraction));
        assert!(matches!(exact_scaled("0.000000000000000000000001", 1 << 20), Exact::Fraction));
        assert!(matches!(exact_scaled("18446744073709551616", 1), Exact::TooLarge));
        assert!(matches!(exact_scaled("007.50", 2), Exact::Whole(15)));
    }
}

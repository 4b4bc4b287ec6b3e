//! Diagnostics: an error with a primary span, optional secondary labels
//! ("first defined here") and a help line, rendered as
//! `file:line:col: error: ...` with the source line and a caret underline.
//! A pass collects all its errors; they are rendered together at the end.

use crate::ast::Span;
use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            primary: Label { span, text: String::new() },
            secondary: Vec::new(),
            help: None,
        }
    }
    /// Text under the primary caret.
    pub fn label(mut self, text: impl Into<String>) -> Self {
        self.primary.text = text.into();
        self
    }
    pub fn secondary(mut self, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push(Label { span, text: text.into() });
        self
    }
    pub fn help(mut self, text: impl Into<String>) -> Self {
        self.help = Some(text.into());
        self
    }
}

/// All the errors of one file, with what is needed to render them.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostics {
    pub file: String,
    pub source: String,
    pub errors: Vec<Diagnostic>,
}

impl Diagnostics {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.source, offset)
    }

    /// Every error, in source order, as text without colour.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            render_one(&mut out, &self.file, &self.source, d);
        }
        let n = self.errors.len();
        let _ = writeln!(out, "\n{} error{} in {}", n, if n == 1 { "" } else { "s" }, self.file);
        out
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}

pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = clamp_to_char(source, offset);
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

fn clamp_to_char(source: &str, mut offset: usize) -> usize {
    offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The line containing `offset`: (start, end) byte offsets, without the newline.
fn line_bounds(source: &str, offset: usize) -> (usize, usize) {
    let offset = clamp_to_char(source, offset);
    let start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = source[offset..].find('\n').map_or(source.len(), |i| offset + i);
    let end = if end > start && source.as_bytes()[end - 1] == b'\r' { end - 1 } else { end };
    (start, end.max(start))
}

fn render_one(out: &mut String, file: &str, source: &str, d: &Diagnostic) {
    let (line, col) = line_col(source, d.primary.span.start);
    let _ = writeln!(out, "{file}:{line}:{col}: error: {}", d.message);
    let mut labels: Vec<(&Label, bool)> = vec![(&d.primary, true)];
    labels.extend(d.secondary.iter().map(|l| (l, false)));
    labels.sort_by_key(|(l, _)| l.span.start);
    let width =
        labels.iter().map(|(l, _)| line_col(source, l.span.start).0.to_string().len()).max().unwrap_or(1);
    let _ = writeln!(out, "{:width$} |", "");
    let mut last_line = None;
    for (label, primary) in labels {
        let (lnum, _) = line_col(source, label.span.start);
        let (ls, le) = line_bounds(source, label.span.start);
        if let Some(prev) = last_line {
            if lnum > prev + 1 {
                let _ = writeln!(out, "{:width$} ...", "");
            }
        }
        let text: String = source[ls..le].chars().map(|c| if c == '\t' { ' ' } else { c }).collect();
        if last_line != Some(lnum) {
            let _ = writeln!(out, "{lnum:>width$} | {text}");
        }
        last_line = Some(lnum);
        let start = clamp_to_char(source, label.span.start.max(ls));
        let end = clamp_to_char(source, label.span.end.min(le).max(start));
        let pad = source[ls..start].chars().count();
        let len = source[start..end].chars().count().max(1);
        let mark = if primary { "^" } else { "-" }.repeat(len);
        let tail = if label.text.is_empty() { String::new() } else { format!(" {}", label.text) };
        let _ = writeln!(out, "{:width$} | {}{mark}{tail}", "", " ".repeat(pad));
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{:width$} = help: {help}", "");
    }
}

/// The closest of `candidates` to `word` within a small edit distance, for
/// "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

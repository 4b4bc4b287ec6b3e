//! The summary `matchc check` prints for a valid target: what the compiler
//! will see, in a form a hardware engineer can check against the datasheet.

use match_dsl::model::{HwModel, PatternExpr};
use std::fmt::Write as _;

fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn mhz(hz: u64) -> String {
    if hz.is_multiple_of(1_000_000) {
        format!("{} MHz", hz / 1_000_000)
    } else {
        format!("{hz} Hz")
    }
}

fn pattern_text(p: &PatternExpr) -> String {
    match p {
        PatternExpr::Op(o) => o.clone(),
        PatternExpr::Optional(x) => format!("{}?", pattern_text(x)),
        PatternExpr::Seq(xs) => xs.iter().map(pattern_text).collect::<Vec<_>>().join(" >> "),
        PatternExpr::Alt(xs) => format!("({})", xs.iter().map(pattern_text).collect::<Vec<_>>().join(" | ")),
    }
}

pub fn summary(m: &HwModel) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "target {}: ok", m.name);
    let _ = writeln!(s, "  clock {}", mhz(m.clock_hz));
    if let Some(p) = &m.platform {
        let _ = writeln!(s, "  platform \"{p}\"");
    }
    let _ = writeln!(s, "  memories:");
    for mem in &m.memories {
        let mut flags = Vec::new();
        if mem.external {
            flags.push("external".to_string());
        }
        if mem.double_buffer {
            flags.push("double-buffered".to_string());
        }
        if !mem.holds.is_empty() {
            flags
                .push(format!("holds {}", mem.holds.iter().map(|h| h.name()).collect::<Vec<_>>().join(", ")));
        }
        let _ = writeln!(
            s,
            "    {:<8} {:>12} usable {:>10} B{}",
            mem.name,
            bytes(mem.size),
            mem.usable(),
            if flags.is_empty() { String::new() } else { format!("  ({})", flags.join("; ")) }
        );
    }
    if !m.dmas.is_empty() {
        let _ = writeln!(s, "  dma:");
        for d in &m.dmas {
            let _ = writeln!(
                s,
                "    {} {} {}  {} B/cycle, setup {} cycles, {}-d{}",
                d.from,
                if d.both_ways { "<->" } else { "->" },
                d.to,
                d.bandwidth,
                d.setup,
                d.dims,
                d.max_bytes.map(|b| format!(", max {b} B")).unwrap_or_default()
            );
        }
    }
    let _ = writeln!(s, "  units:");
    for u in &m.units {
        let spatial = if u.spatial.is_empty() {
            String::new()
        } else {
            format!(
                ", spatial {}",
                u.spatial.iter().map(|(d, f)| format!("{} {f}", d.name())).collect::<Vec<_>>().join(" x ")
            )
        };
        let _ = writeln!(
            s,
            "    {:<10} {}{} MAC/cycle in {}{}{}",
            u.name,
            if u.host { "host, " } else { "" },
            u.macs_per_cycle,
            u.compute_in,
            spatial,
            if u.cycles.is_some() { ", own cycle model" } else { "" }
        );
    }
    if !m.patterns.is_empty() {
        let _ = writeln!(s, "  patterns:");
        for p in &m.patterns {
            let _ = writeln!(s, "    {:<10} {}", p.name, pattern_text(&p.body));
        }
    }
    if !m.offloads.is_empty() {
        let _ = writeln!(s, "  offload:");
        for o in &m.offloads {
            let cond = o.condition.as_ref().map(|c| format!(" where {c}")).unwrap_or_default();
            let _ = writeln!(s, "    {} -> {} \"{}\"{}", o.pattern, o.unit, o.kernel, cond);
        }
    }
    s
}

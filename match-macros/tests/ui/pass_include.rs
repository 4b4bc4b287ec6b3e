//! `include_hwm!` on a valid file: typed items, and `model()` equal to
//! run-time checking of the same file.

mod demo {
    match_macros::include_hwm!("../../../../match-macros/tests/ui/hwm/demo.hwm");
}

use demo::{Memory, Unit};

fn main() {
    assert_eq!(demo::NAME, "demo");
    assert_eq!(demo::CLOCK_HZ, 100_000_000);
    assert_eq!(demo::PLATFORM, None);

    assert_eq!(Memory::ALL, &[Memory::L2, Memory::L3Flash]);
    assert_eq!(Memory::L2.name(), "L2");
    assert_eq!(Memory::L2.size(), 512_000);
    assert_eq!(Memory::L2.usable(), 500_000);
    assert_eq!(Memory::L3Flash.size(), 8 << 20);
    assert!(Memory::L3Flash.is_external());
    assert_eq!(Memory::from_name("l3_flash"), Some(Memory::L3Flash));
    assert_eq!(Memory::L3Flash.to_string(), "l3_flash");

    assert_eq!(Unit::ALL, &[Unit::Cpu, Unit::Ne16]);
    assert_eq!(Unit::HOST, Unit::Cpu);
    assert!(Unit::Cpu.is_host() && !Unit::Ne16.is_host());
    assert_eq!(Unit::Ne16.macs_per_cycle(), 32.0);
    assert_eq!(Unit::Cpu.cores(), 2);
    assert_eq!(Unit::Ne16.compute_in(), Memory::L2);
    assert_eq!(Unit::Ne16.name(), "ne16");

    // Usable in constant context.
    const L2_USABLE: u64 = Memory::L2.usable();
    assert_eq!(L2_USABLE, 500_000);

    assert_eq!(demo::PATTERNS.len(), 1);
    assert_eq!(demo::PATTERNS[0].name, "conv");
    assert_eq!(
        demo::PATTERNS[0].sequences,
        &[&["conv2d", "bias", "requant"][..], &["conv2d", "requant"][..]]
    );

    assert_eq!(demo::OFFLOADS.len(), 2);
    assert_eq!(demo::OFFLOADS[0].unit, Unit::Ne16);
    assert_eq!(demo::OFFLOADS[0].kernel, "ne16_conv");
    assert!(demo::OFFLOADS[0].conditional);
    assert_eq!(demo::OFFLOADS[1].unit, Unit::Cpu);
    assert!(!demo::OFFLOADS[1].conditional);

    let source = include_str!("hwm/demo.hwm");
    let checked = match_dsl::check(source, "demo.hwm").expect("demo.hwm checks");
    assert_eq!(demo::model(), checked);
}

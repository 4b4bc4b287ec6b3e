//! `include_hwm!` gives, for every shipped target, the same `HwModel` as
//! checking the file at run time, and typed items that agree with it.

mod host {
    match_macros::include_hwm!("../targets/host.hwm");
}
mod gap9 {
    match_macros::include_hwm!("../targets/gap9.hwm");
}
mod diana {
    match_macros::include_hwm!("../targets/diana.hwm");
}

use match_dsl::HwModel;

fn run_time(source: &str, file: &str) -> HwModel {
    match match_dsl::check(source, file) {
        Ok(model) => model,
        Err(diags) => panic!("{}", diags.render()),
    }
}

/// The typed items agree with the model they were generated from.
macro_rules! check_items {
    ($m:ident, $model:expr) => {{
        let model: &HwModel = $model;
        assert_eq!($m::NAME, model.name);
        assert_eq!($m::CLOCK_HZ, model.clock_hz);
        assert_eq!($m::PLATFORM, model.platform.as_deref());
        assert_eq!($m::Memory::ALL.len(), model.memories.len());
        for (m, want) in $m::Memory::ALL.iter().zip(&model.memories) {
            assert_eq!(m.name(), want.name);
            assert_eq!(m.size(), want.size);
            assert_eq!(m.usable(), want.usable());
            assert_eq!(m.is_external(), want.external);
            assert_eq!($m::Memory::from_name(&want.name), Some(*m));
        }
        assert_eq!($m::Unit::ALL.len(), model.units.len());
        for (u, want) in $m::Unit::ALL.iter().zip(&model.units) {
            assert_eq!(u.name(), want.name);
            assert_eq!(u.macs_per_cycle(), want.macs_per_cycle);
            assert_eq!(u.is_host(), want.host);
            assert_eq!(u.cores(), want.cores);
            assert_eq!(u.compute_in().name(), want.compute_in);
        }
        assert_eq!($m::Unit::HOST.name(), model.host_unit().name);
        assert_eq!($m::PATTERNS.len(), model.patterns.len());
        for (p, want) in $m::PATTERNS.iter().zip(&model.patterns) {
            assert_eq!(p.name, want.name);
            let seqs: Vec<Vec<String>> =
                p.sequences.iter().map(|s| s.iter().map(|o| o.to_string()).collect()).collect();
            assert_eq!(seqs, want.body.sequences());
        }
        assert_eq!($m::OFFLOADS.len(), model.offloads.len());
        for (o, want) in $m::OFFLOADS.iter().zip(&model.offloads) {
            assert_eq!(o.pattern, want.pattern);
            assert_eq!(o.unit.name(), want.unit);
            assert_eq!(o.kernel, want.kernel);
            assert_eq!(o.conditional, want.condition.is_some());
        }
    }};
}

#[test]
fn host_matches_run_time_checking() {
    let model = run_time(include_str!("../../targets/host.hwm"), "targets/host.hwm");
    assert_eq!(host::model(), model);
    check_items!(host, &model);
}

#[test]
fn gap9_matches_run_time_checking() {
    let model = run_time(include_str!("../../targets/gap9.hwm"), "targets/gap9.hwm");
    assert_eq!(gap9::model(), model);
    check_items!(gap9, &model);
}

#[test]
fn diana_matches_run_time_checking() {
    let model = run_time(include_str!("../../targets/diana.hwm"), "targets/diana.hwm");
    assert_eq!(diana::model(), model);
    check_items!(diana, &model);
}

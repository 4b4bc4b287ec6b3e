//! Every shipped target loads through the targets crate by name, and the
//! shared model folder the later end-to-end tests rely on is where
//! DESIGN.md says.

#[test]
fn every_shipped_target_loads_by_name() {
    let names: Vec<&str> = match_targets::names().collect();
    for expected in ["host", "gap9", "diana"] {
        assert!(names.contains(&expected), "{expected} not shipped: {names:?}");
    }
    for name in names {
        let model = match match_targets::get(name) {
            Some(Ok(m)) => m,
            Some(Err(d)) => panic!("{name}:\n{d}"),
            None => panic!("{name} listed but not found"),
        };
        // `target` names are identifiers: a file stem's `-` reads as `_`
        // (`host-tiled.hwm` holds `target host_tiled`).
        assert_eq!(model.name, name.replace('-', "_"), "a target's file name and its `target` name agree");
        assert_eq!(model.units.iter().filter(|u| u.host).count(), 1);
    }
}

#[test]
fn shared_models_are_present() {
    let Some(dir) = match_tests::shared_models() else { return };
    for model in
        ["mlperf-tiny/ad01_int8.tflite", "mlperf-tiny/vww_96_int8.tflite", "match-onnx/keyword_spotting.onnx"]
    {
        assert!(dir.join(model).is_file(), "{model} missing from {}", dir.display());
    }
}

#[test]
fn typed_modules_agree_with_run_time_checking() {
    use match_targets::typed;
    let pairs =
        [("host", typed::host::model()), ("gap9", typed::gap9::model()), ("diana", typed::diana::model())];
    for (name, compiled) in pairs {
        let at_run_time = match_targets::get(name).expect("shipped").expect("checks");
        assert_eq!(compiled, at_run_time, "{name}: include_hwm! and run-time parsing disagree");
    }
    assert_eq!(typed::gap9::Memory::L1.usable(), 120_000);
    assert_eq!(typed::gap9::CLOCK_HZ, 370_000_000);
    assert!(typed::gap9::Unit::ALL.iter().any(|u| u.name() == "ne16"));
}

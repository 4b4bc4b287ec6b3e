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
        assert_eq!(model.name, name, "a target's file name and its `target` name agree");
        assert_eq!(model.units.iter().filter(|u| u.host).count(), 1);
    }
}

#[test]
fn shared_models_are_present() {
    let Some(dir) = match_tests::shared_models() else { return };
    for model in ["mlperf-tiny/ad01_int8.tflite", "mlperf-tiny/vww_96_int8.tflite", "match-onnx/keyword_spotting.onnx"]
    {
        assert!(dir.join(model).is_file(), "{model} missing from {}", dir.display());
    }
}

//! `matchc inspect` and `matchc run --interp` on every golden model: the
//! command line reads and writes the contract's raw tensor files and gives
//! the real runtime's answer; broken models are errors with exit code 1.

use std::path::Path;
use std::process::{Command, Output};

fn matchc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matchc")).args(args).output().expect("run matchc")
}

fn manifest() -> serde_json::Value {
    let path = match_tests::repo_root().join("tests/golden/manifest.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("manifest")).expect("manifest parses")
}

#[test]
fn inspect_and_run_every_golden_model() {
    let root = match_tests::repo_root();
    let tmp = std::env::temp_dir().join(format!("matchc-models-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut ran = 0;
    for entry in manifest()["models"].as_array().expect("models") {
        let id = entry["id"].as_str().unwrap();
        let model_rel = entry["model"].as_str().unwrap();
        if model_rel.starts_with("../shared/") && match_tests::shared_models().is_none() {
            continue;
        }
        let model = root.join(model_rel);
        let model = model.to_str().unwrap();
        let mut fold = Vec::new();
        if let Some(dir) = entry["fold_inputs_from"].as_str() {
            fold = vec!["--fold-inputs-from".to_string(), root.join(dir).to_str().unwrap().to_string()];
        }
        let fold: Vec<&str> = fold.iter().map(String::as_str).collect();

        let mut args = vec!["inspect", model];
        args.extend(&fold);
        let out = matchc(&args);
        assert!(out.status.success(), "inspect {id}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("MACs"), "inspect {id}");

        let case = root.join("tests/golden").join(id).join("case_0");
        let n_in = entry["inputs"].as_array().unwrap().len();
        let n_out = entry["outputs"].as_array().unwrap().len();
        let ins: Vec<String> =
            (0..n_in).map(|i| case.join(format!("input_{i}.bin")).display().to_string()).collect();
        let outs: Vec<String> = (0..n_out)
            .map(|j| tmp.join(format!("{}_{j}.bin", id.replace('/', "_"))).display().to_string())
            .collect();
        let mut args = vec!["run", model, "--interp"];
        args.extend(&fold);
        for i in &ins {
            args.extend(["--input", i.as_str()]);
        }
        for o in &outs {
            args.extend(["--output", o.as_str()]);
        }
        let out = matchc(&args);
        assert!(out.status.success(), "run {id}: {}", String::from_utf8_lossy(&out.stderr));
        if entry["exact"].as_bool().unwrap_or(true) {
            for (j, o) in outs.iter().enumerate() {
                let got = std::fs::read(o).unwrap();
                let want = std::fs::read(case.join(format!("output_{j}.bin"))).unwrap();
                assert!(got == want, "run {id}: output {j} differs from the golden vector");
            }
        }
        ran += 1;
    }
    assert!(ran > 0);
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn broken_models_are_errors_naming_the_file() {
    let tmp = std::env::temp_dir().join(format!("matchc-broken-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("empty.tflite", b""),
        ("magic.tflite", b"\x10\x00\x00\x00XXXX\x00\x00\x00\x00\x00\x00\x00\x00"),
        ("garbage.onnx", b"\xff\xff\xff\xff\xff\xff"),
        ("model.txt", b"hello"),
    ];
    for (name, bytes) in cases {
        let path = tmp.join(name);
        std::fs::write(&path, bytes).unwrap();
        let p = path.to_str().unwrap();
        let out = matchc(&["inspect", p]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: the error names the file: {stderr}");
    }
    // A real model cut short.
    if let Some(shared) = match_tests::shared_models() {
        let full = std::fs::read(shared.join("mlperf-tiny/kws_ref_model.tflite")).unwrap();
        let cut = tmp.join("cut.tflite");
        std::fs::write(&cut, &full[..full.len() / 3]).unwrap();
        let out = matchc(&["inspect", cut.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Wrong input size: names the tensor and both sizes.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/example_int8.onnx");
    let small = tmp.join("small.bin");
    std::fs::write(&small, [0u8; 3]).unwrap();
    let out = matchc(&[
        "run",
        example.to_str().unwrap(),
        "--interp",
        "--input",
        small.to_str().unwrap(),
        "--output",
        tmp.join("o.bin").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bytes"), "{stderr}");
    std::fs::remove_dir_all(&tmp).ok();
}

/// The mapping searches on every core (`match_core::par`); what it writes
/// must not depend on how many: one thread and four give the same files
/// (code, explanation, report) for a model with converted layers on gap9
/// and one on diana.
#[test]
fn output_does_not_depend_on_the_number_of_threads() {
    let Some(models) = match_tests::shared_models() else { return };
    let tmp = std::env::temp_dir().join(format!("matchc-threads-{}", std::process::id()));
    for (model, target) in [("kws_ref_model.tflite", "gap9"), ("ad01_int8.tflite", "diana")] {
        let model = models.join("mlperf-tiny").join(model);
        let mut written = Vec::new();
        for threads in ["1", "4"] {
            // One folder for both runs: the explanation names it.
            let dir = tmp.join(target);
            let report = tmp.join(format!("{target}.json"));
            std::fs::remove_dir_all(&dir).ok();
            let out = Command::new(env!("CARGO_BIN_EXE_matchc"))
                .args(["compile", model.to_str().unwrap(), "--target", target, "--explain", "-o"])
                .arg(&dir)
                .arg("--report")
                .arg(&report)
                .env("MATCH_THREADS", threads)
                .output()
                .expect("run matchc");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
                .collect();
            files.sort();
            files.push(("explain".into(), out.stdout));
            files.push(("report".into(), std::fs::read(&report).unwrap()));
            written.push(files);
        }
        assert!(written[0].len() > 3);
        for (a, b) in written[0].iter().zip(&written[1]) {
            assert_eq!(a.0, b.0);
            assert!(a.1 == b.1, "{target}: {} differs between 1 and 4 threads", a.0);
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
}

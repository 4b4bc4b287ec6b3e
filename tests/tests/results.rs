//! docs/results.md is current. The page is written by
//! `python tools/make_results.py` (run by hand: CI runs no Python); this
//! test recomputes a few of its rows through the compiler, in the same
//! configurations, and compares the estimated cycles. It fails when a
//! change to the cost model, the mapping, the lowering or a shipped target
//! leaves the page stale: regenerate it with the script.

use match_core::compile::{self, CompileOptions};
use match_core::frontend::ImportOptions;
use match_dsl::HwModel;
use std::path::Path;

/// The two configurations checked here (the page has a third per target).
#[derive(Clone, Copy)]
enum Config {
    /// The shipped file: everything the target offers.
    All,
    /// The script's transform with nothing kept: every layer on the host.
    Host,
}

/// (target, model under ../shared/models, configuration, its label on the page).
const ROWS: &[(&str, &str, Config, &str)] = &[
    ("gap9", "mlperf-tiny/kws_ref_model.tflite", Config::All, "cluster + NE16"),
    ("gap9", "mlperf-tiny/ad01_int8.tflite", Config::All, "cluster + NE16"),
    ("gap9", "mlperf-tiny/ad01_int8.tflite", Config::Host, "fabric controller only"),
    ("diana", "mlperf-tiny/kws_ref_model.tflite", Config::All, "digital + analog"),
    ("diana", "match-onnx/keyword_spotting.onnx", Config::All, "digital + analog"),
    ("diana", "match-onnx/anomaly_detection.onnx", Config::Host, "RISC-V host only"),
];

/// tools/make_results.py's `restrict` with nothing kept: the .hwm text
/// without any `offload` statement (the line and its deeper-indented
/// continuation lines; a comment or blank line ends a statement).
fn without_offloads(text: &str) -> String {
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let mut out = String::new();
    let mut dropping: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("offload ") {
            dropping = Some(indent_of(line));
            continue;
        }
        if let Some(indent) = dropping {
            let t = t.trim_end();
            if !t.is_empty() && !t.starts_with("//") && indent_of(line) > indent {
                continue;
            }
            dropping = None;
        }
        out.push_str(line);
    }
    out
}

/// The target for a row's configuration.
fn target_for(target: &str, config: Config, tmp: &Path) -> HwModel {
    if let Config::Host = config {
        let text = std::fs::read_to_string(match_tests::repo_root().join(format!("targets/{target}.hwm")))
            .expect("read the shipped .hwm");
        let path = tmp.join(format!("{target}-host.hwm"));
        std::fs::write(&path, without_offloads(&text)).expect("write the restricted .hwm");
        match match_dsl::load(&path) {
            Ok(hw) => hw,
            Err(e) => panic!("{}: {e:?}", path.display()),
        }
    } else {
        match_targets::resolve(target).expect("a shipped target").0
    }
}

/// The "est. cycles" cell of the page's row for (target, model file, configuration).
fn cell(page: &str, target: &str, model: &str, config: &str) -> String {
    let heading = format!("## {} (estimated)", target.to_uppercase());
    let section = page.split(&heading).nth(1).unwrap_or_else(|| panic!("docs/results.md has no `{heading}`"));
    let section = section.split("\n## ").next().unwrap_or("");
    let prefix = format!("| {model} | {config} |");
    let row = section
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("docs/results.md has no row `{prefix}` under `{heading}`"));
    row.split('|').nth(3).unwrap_or("").trim().to_string()
}

/// `1234567.4` as the page writes it: `1,234,567`.
fn thousands(x: f64) -> String {
    let digits = format!("{x:.0}");
    let (sign, digits) = digits.strip_prefix('-').map_or(("", digits.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

#[test]
fn thousands_matches_python_format() {
    assert_eq!(thousands(0.0), "0");
    assert_eq!(thousands(999.4), "999");
    assert_eq!(thousands(1000.0), "1,000");
    assert_eq!(thousands(119868.75), "119,869");
    assert_eq!(thousands(12780254.0), "12,780,254");
}

#[test]
fn transform_removes_only_offload_statements() {
    let text = "target t {\n    unit a {\n        host\n    }\n    offload p to b\n            where K <= 4\n            call \"f\"\n    // kept\n    offload q to b call \"g\"\n    api {\n        header \"h.h\"\n    }\n}\n";
    let want = "target t {\n    unit a {\n        host\n    }\n    // kept\n    api {\n        header \"h.h\"\n    }\n}\n";
    assert_eq!(without_offloads(text), want);
}

#[test]
fn results_page_is_current() {
    let root = match_tests::repo_root();
    let page = std::fs::read_to_string(root.join("docs/results.md")).expect("docs/results.md exists");
    assert!(
        page.starts_with("# Results (estimated)") && page.contains("Generated by tools/make_results.py"),
        "docs/results.md does not start with its generated-by header"
    );
    let Some(shared) = match_tests::shared_models() else { return };
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("results");
    std::fs::create_dir_all(&tmp).expect("create the work folder");
    let mut stale = Vec::new();
    for &(target, model, config, label) in ROWS {
        let hw = target_for(target, config, &tmp);
        let file = model.rsplit('/').next().unwrap_or(model);
        let options = CompileOptions {
            out_dir: tmp.join(format!("{target}-{}", file.replace('.', "_"))),
            model_name: None,
            platform_dir: None,
        };
        let (graph, compiled) =
            compile::compile_file(&shared.join(model), &ImportOptions::default(), &hw, &options)
                .unwrap_or_else(|e| panic!("{model} on {target} ({label}): {e:#}"));
        let report = compile::report_json(&graph, &hw, &compiled, file);
        let cycles = report["totals"]["cycles"].as_f64().expect("totals.cycles");
        let (want, got) = (cell(&page, target, file, label), thousands(cycles));
        if want != got {
            stale.push(format!("{target} {file} ({label}): page {want}, compiler now {got}"));
        }
    }
    assert!(
        stale.is_empty(),
        "docs/results.md is stale (run python tools/make_results.py):\n{}",
        stale.join("\n")
    );
}

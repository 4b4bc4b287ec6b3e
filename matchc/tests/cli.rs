//! The command-line contract of `matchc check` and `matchc fmt`: exit codes,
//! where output goes, and that errors are located.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn matchc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matchc")).args(args).output().expect("run matchc")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn shipped_targets() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(repo().join("targets"))
        .expect("targets folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "hwm"))
        .collect();
    v.sort();
    v
}

#[test]
fn check_accepts_every_shipped_target_by_path_and_by_name() {
    let targets = shipped_targets();
    for name in ["host", "gap9", "diana"] {
        assert!(targets.iter().any(|p| p.file_stem().unwrap() == name), "targets/{name}.hwm is missing");
    }
    for path in targets {
        let out = matchc(&["check", path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(": ok"), "{stdout}");
        let name = path.file_stem().unwrap().to_str().unwrap();
        let by_name = matchc(&["check", name]);
        assert!(by_name.status.success(), "by name {name}: {}", String::from_utf8_lossy(&by_name.stderr));
        assert_eq!(by_name.stdout, out.stdout);
    }
}

#[test]
fn check_rejects_every_fail_fixture_with_located_errors() {
    let dir = repo().join("match-dsl/tests/fail");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("fail fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "hwm") {
            continue;
        }
        n += 1;
        let shown = path.to_str().unwrap();
        let out = matchc(&["check", shown]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{shown}: {stderr}");
        let errors = stderr.lines().filter(|l| l.contains(": error: ")).count();
        assert!(errors >= 1, "{shown}: no located error in\n{stderr}");
        for line in stderr.lines().filter(|l| l.contains(": error: ")) {
            // file:line:col: error: ...
            let mut parts = line.splitn(4, ':');
            assert_eq!(parts.next(), Some(shown), "{line}");
            let line_no: usize = parts.next().unwrap().parse().expect("line number");
            let col: usize = parts.next().unwrap().parse().expect("column");
            assert!(line_no >= 1 && col >= 1, "{line}");
        }
        assert!(stderr.contains('^'), "{shown}: no caret in\n{stderr}");
        assert!(out.stdout.is_empty(), "{shown}: errors go to stderr only");
    }
    assert!(n >= 25, "only {n} fail fixtures");
}

#[test]
fn target_outside_the_repository_loads_by_path() {
    let dir = std::env::temp_dir().join(format!("matchc-cli-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("soc")).unwrap();
    let file = dir.join("mysoc.hwm");
    std::fs::write(
        &file,
        "target mysoc {\n    clock 50 MHz\n    platform \"soc\"\n    memory SRAM { size 256 KiB }\n    \
         unit core { host; macs 2/cycle; compute_in SRAM }\n}\n",
    )
    .unwrap();
    let out = matchc(&["check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("target mysoc: ok"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_target_and_missing_file_are_errors_not_panics() {
    let out = matchc(&["check", "nosuchsoc"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gap9"), "the error lists the shipped targets: {stderr}");
    let out = matchc(&["check", "/nonexistent/dir/x.hwm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir/x.hwm"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(matchc(&[]).status.code(), Some(2));
    assert_eq!(matchc(&["check"]).status.code(), Some(2));
    assert_eq!(matchc(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn fmt_is_canonical_for_shipped_targets_and_check_flag_works() {
    for path in shipped_targets() {
        let p = path.to_str().unwrap();
        let out = matchc(&["fmt", p]);
        assert!(out.status.success(), "{p}: {}", String::from_utf8_lossy(&out.stderr));
        let canonical = String::from_utf8(out.stdout).unwrap();
        assert_eq!(canonical, std::fs::read_to_string(&path).unwrap(), "{p} is not in canonical form");
        assert_eq!(matchc(&["fmt", "--check", p]).status.code(), Some(0));
    }
    let dir = std::env::temp_dir().join(format!("matchc-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let messy = dir.join("messy.hwm");
    std::fs::write(
        &messy,
        "target m {clock 1 MHz\nmemory R {size 1 KiB}\nunit c {host;macs 1/cycle;compute_in R}}\n",
    )
    .unwrap();
    let m = messy.to_str().unwrap();
    assert_eq!(matchc(&["fmt", "--check", m]).status.code(), Some(1));
    let out = matchc(&["fmt", m]);
    assert!(out.status.success());
    std::fs::write(&messy, &out.stdout).unwrap();
    assert_eq!(matchc(&["fmt", "--check", m]).status.code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

//! Differential testing of the whole compiler (issue 7): a fixed-seed smoke
//! set of random networks on host, gap9, diana (shipped, on their emulation
//! platforms), generic random targets and random gap9-like and diana-like
//! targets (emulated), each compiled, built with ASan + UBSan (gcc), run and
//! compared bit for bit with the reference interpreter on the graph as
//! compiled (lowered for the target); and a replay of every saved regression
//! in `tests/regressions/`. Long campaigns: `cargo run --release -p
//! match-tests --bin campaign -- --cases N --seed S`.

use match_tests::diff::{self, Outcome, Stats, Worker};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

fn work_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("differential").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the work folder");
    d
}

fn have_gcc() -> bool {
    std::process::Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// The smoke set: 240 networks (a sixth per target kind, 5 per build), seed fixed.
const SMOKE_SEED: u64 = 20_240_607;
const SMOKE_CASES: u64 = 240;
const BATCH: u64 = 5;

#[test]
fn smoke_set_is_bit_exact_under_sanitizers() {
    assert!(have_gcc(), "gcc is required for the sanitizer builds");
    let start = std::time::Instant::now();
    let dir = work_dir("smoke");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    let next = AtomicU64::new(0);
    let total = Mutex::new(Stats::default());
    let chunk = BATCH * 4;
    std::thread::scope(|s| {
        for j in 0..threads {
            let (next, total, dir) = (&next, &total, &dir);
            s.spawn(move || {
                let worker = Worker::new(dir.join(format!("w{j}")));
                loop {
                    let b = next.fetch_add(chunk, Ordering::SeqCst);
                    if b >= SMOKE_CASES {
                        break;
                    }
                    let st = diff::run_range(&worker, SMOKE_SEED, b, (b + chunk).min(SMOKE_CASES), BATCH);
                    total.lock().unwrap().merge(st);
                }
            });
        }
    });
    let t = total.into_inner().unwrap();
    eprintln!(
        "{} cases: {} passed, {} did not fit their target (expected), {} invalid, {} failed, in {:.1} s",
        t.cases,
        t.passed,
        t.does_not_fit,
        t.invalid,
        t.failures.len(),
        start.elapsed().as_secs_f64()
    );
    let msgs: Vec<String> = t
        .failures
        .iter()
        .map(|(c, k, m)| {
            format!(
                "[{k:?}] on {}: {}\n{}\ncase: {}",
                c.target.label(),
                c.recipe.summary(),
                m,
                serde_json::to_string(c).unwrap_or_default()
            )
        })
        .collect();
    assert!(msgs.is_empty(), "{} failure(s):\n{}", msgs.len(), msgs.join("\n\n"));
    assert_eq!(t.cases as u64, SMOKE_CASES);
    assert_eq!(t.invalid, 0, "the generator made recipes that do not build");
    assert!(t.passed >= 200, "only {} cases ran to completion", t.passed);
}

#[test]
fn every_saved_regression_passes() {
    assert!(have_gcc(), "gcc is required for the sanitizer builds");
    let dir = diff::regressions_dir();
    let regs = diff::load_regressions(&dir).expect("the regressions load");
    let only = std::env::var("MATCH_REGRESSION").ok();
    let worker = Worker::new(work_dir("regressions"));
    let mut failures = Vec::new();
    for (name, reg) in &regs {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        // The saved .hwm is what the target generator wrote: it still checks
        // and is the text compiled.
        if let Some(text) = reg.case.target.hwm_text() {
            let text = text.unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let hwm = dir.join(name.replace(".json", ".hwm"));
            let saved = std::fs::read_to_string(&hwm).unwrap_or_else(|e| panic!("{}: {e}", hwm.display()));
            assert_eq!(saved, text, "{name}: the .hwm differs from its recipe");
        }
        match worker.check(&reg.case) {
            Outcome::Pass | Outcome::DoesNotFit => {}
            other => failures.push(format!("{name} (was {:?}: {}): {other:?}", reg.kind, reg.message)),
        }
    }
    eprintln!("{} regression(s) replayed", regs.len());
    assert!(failures.is_empty(), "{} regression(s) fail:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn generated_targets_check_and_generated_networks_prepare() {
    for seed in 0..300 {
        let t = match_tests::gen::generate_target(seed);
        if let Err(e) = diff::TargetSpec::Random(t).resolve() {
            panic!("seed {seed}: {e:#}");
        }
        for base in ["gap9", "diana"] {
            let t = match_tests::gen::generate_derived_target(seed, base);
            if let Err(e) = diff::TargetSpec::Derived(t).resolve() {
                panic!("{base}-like seed {seed}: {e:#}");
            }
        }
    }
    let opt = match_tests::gen::GenOptions::default();
    use match_tests::gen::Flavor::*;
    for seed in 0..300 {
        for flavor in [Any, TfLite, IntegerDialect, ShiftOnly] {
            let r = match_tests::gen::generate(seed, flavor, &opt);
            if let Err(e) = match_tests::gen::build(&r) {
                panic!("seed {seed} {flavor:?}: {e:#}\n{r:?}");
            }
            let back: match_tests::gen::Recipe =
                serde_json::from_str(&serde_json::to_string(&r).unwrap()).expect("round trip");
            assert_eq!(back, r);
        }
    }
}

#[test]
fn a_target_too_small_gives_does_not_fit() {
    let mut t = match_tests::gen::generate_target(1);
    t.home_size = 64;
    t.home_reserve = 0;
    let r = match_tests::gen::generate(3, match_tests::gen::Flavor::Any, &Default::default());
    let case = diff::Case { recipe: r, target: diff::TargetSpec::Random(t), input_seed: 1 };
    let worker = Worker::new(work_dir("too_small"));
    assert_eq!(worker.check(&case), Outcome::DoesNotFit);
}

/// The generated networks reach the accelerators, not only the host: over
/// the smoke set's targets, every unit kind but DIANA's analog core
/// (ternary weights, which the generator does not make) takes some layer.
/// (NE16 rarely wins on gap9, where the cluster is cheaper for layers this
/// small; random targets without a cluster give it layers.)
#[test]
fn generated_networks_reach_every_digital_unit() {
    use std::collections::BTreeMap;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..240u64 {
        let target = diff::campaign_target(SMOKE_SEED, i / BATCH);
        let (hw, _) = target.resolve().expect("resolves");
        let mut rng = match_tests::gen::Rng::new(i);
        let flavor = diff::flavor_for(&target, &mut rng);
        let r = match_tests::gen::generate(i, flavor, &Default::default());
        let g = match_tests::gen::build(&r).expect("builds");
        let m = match_core::mapping::map(&g, &hw).expect("maps");
        for l in &m.layers {
            let name = match &target {
                diff::TargetSpec::Shipped(n) => n.clone(),
                diff::TargetSpec::Random(_) => "random".to_string(),
                diff::TargetSpec::Derived(t) => format!("{}-like", t.base),
            };
            *seen.entry(format!("{name}:{}", l.unit)).or_default() += 1;
        }
    }
    eprintln!("{seen:?}");
    let units = [
        "host:cpu",
        "gap9:fc",
        "gap9:cluster",
        "diana:cpu",
        "diana:digital",
        "random:cpu",
        "random:cluster",
        "random:digital",
        "gap9-like:fc",
        "gap9-like:cluster",
        "diana-like:cpu",
        "diana-like:digital",
    ];
    assert!(seen.iter().any(|(k, &n)| k.ends_with(":ne16") && n > 0), "no NE16 layer: {seen:?}");
    for unit in units {
        assert!(seen.get(unit).is_some_and(|&n| n > 0), "{unit} takes no layer: {seen:?}");
    }
}

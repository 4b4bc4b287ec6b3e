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
/// Passing cases that ran a layer on DIANA's analog array, at least, on
/// diana and on diana-like targets each (the smoke set gives 8 and 6; some
/// headroom for cost-model changes that move a layer to the digital array).
const MIN_ANALOG: usize = 4;
/// The long-skip case checked on its own: the campaign seed, and the case's
/// place in its first spilling batch.
const SPILL_SEED: u64 = 6;
const SPILL_CASE: u64 = 0;

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
                    let end = (b + chunk).min(SMOKE_CASES);
                    let st = diff::run_range(&worker, SMOKE_SEED, b, end, BATCH);
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
    // DIANA's analog array really ran (its kernels counted by the
    // emulation) on enough cases: ternary layers on 7-bit inputs.
    eprintln!("passing cases per unit that ran their layers: {:?}", t.ran);
    // Activations spilled to L3 on some of the long-skip cases of the
    // gap9-like batches with L2 cut (docs/l3-activations.md).
    eprintln!("long-skip cases: {}, passing cases that spilled: {}", t.long_skip, t.spilled);
    assert!(t.spilled >= 1, "no passing case spilled: {} long-skip cases", t.long_skip);
    let analog = |k: &str| t.ran.get(k).copied().unwrap_or(0);
    assert!(
        analog("diana:analog") >= MIN_ANALOG && analog("diana-like:analog") >= MIN_ANALOG,
        "too few cases ran a layer on the analog array: {:?}",
        t.ran
    );
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

/// The spilling batches' networks build, and each reads a value again at
/// least three values after it was made (two layers or more between).
#[test]
fn long_skip_networks_build_and_reread_a_value_layers_later() {
    use match_tests::gen::{self, Flavor, LayerOp, Operand};
    for seed in 0..200 {
        for flavor in [Flavor::Any, Flavor::TfLite, Flavor::IntegerDialect] {
            let r = gen::generate_long_skip(seed, flavor);
            if let Err(e) = gen::build(&r) {
                panic!("seed {seed} {flavor:?}: {e:#}\n{r:?}");
            }
            let first = r.inputs.len();
            let skip = r.layers.iter().enumerate().any(
                |(j, l)| matches!(l.op, LayerOp::Add { other: Operand::Value(v), .. } if first + j >= v + 3),
            );
            assert!(skip, "seed {seed} {flavor:?}: no long skip: {}", r.summary());
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
/// the smoke set's targets, every unit kind takes some layer (DIANA's
/// analog core: the generator's ternary layers on inputs clipped to 7 bits).
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
        // The mapping as compiled: with the conversions into the units'
        // forms (the analog array's ternary weights and 7-bit inputs).
        let objective = match_core::schedule::Objective::Latency;
        let m = match_core::lower::lower_for_target(&g, &hw, objective, false).expect("lowers").mapping;
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
        "diana:analog",
        "diana-like:analog",
    ];
    assert!(seen.iter().any(|(k, &n)| k.ends_with(":ne16") && n > 0), "no NE16 layer: {seen:?}");
    for unit in units {
        assert!(seen.get(unit).is_some_and(|&n| n > 0), "{unit} takes no layer: {seen:?}");
    }
}

/// The emulated arenas have the sizes of the `.hwm` compiled for (matchc's
/// `match_memories.h`), not the shipped target's: a gap9-like target with
/// an L1 three times GAP9's runs a layer whose tile buffers need more than
/// the shipped 120000 usable bytes, bit-exact under the sanitizers.
#[test]
fn a_bigger_l1_gets_a_bigger_emulated_arena() {
    use match_tests::gen::{
        Act8, Activation, DerivedTarget, Grouping, InputSpec, LayerOp, LayerSpec, Recipe, RequantKind,
        Requantizer, WeightKind,
    };
    assert!(have_gcc(), "gcc is required for the sanitizer builds");
    const USABLE: u64 = 400_000;
    let target = DerivedTarget {
        name: "g9big".into(),
        base: "gap9".into(),
        drop_units: vec!["ne16".into()],
        // A DMA so slow to start that the fewest, biggest tiles win.
        edits: vec![
            ("memory L1".into(), "size".into(), Some(format!("{} B", USABLE + 11_072))),
            ("dma L2 <-> L1".into(), "setup".into(), Some("1000000 cycles".into())),
        ],
    };
    let conv = LayerOp::Conv {
        grouping: Grouping::Full,
        out_c: 48,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1, 1, 1],
        weights: WeightKind::I8,
        bias: true,
        rq: Some(Requantizer {
            kind: RequantKind::FixedPoint { per_channel: true },
            out: Act8::I8,
            out_zp: 0,
            out_scale: 0.05,
            gain: 1.0,
            act: Activation::Relu,
        }),
    };
    let recipe = Recipe {
        inputs: vec![InputSpec { shape: vec![1, 40, 40, 48], dtype: Act8::I8, scale: 0.02, zp: 0 }],
        layers: vec![LayerSpec { src: 0, op: conv, seed: 7 }],
        outputs: vec![1],
    };
    let case = diff::Case { recipe, target: diff::TargetSpec::Derived(target), input_seed: 3 };
    let dir = work_dir("big_l1");
    let worker = Worker::new(dir.clone());
    assert_eq!(worker.check(&case), Outcome::Pass);
    let project = dir.join("project");
    let sizes = std::fs::read_to_string(project.join("match_memories.h")).expect("match_memories.h");
    assert!(sizes.contains(&format!("#define MATCH_MEM_L1_BYTES {USABLE}u")), "{sizes}");
    // The generated code asks the platform for more L1 than GAP9 has.
    let model_c = std::fs::read_to_string(project.join("net.c")).expect("the model's C");
    let l1: u64 = model_c
        .split("gap9_malloc(\"L1\", ")
        .skip(1)
        .filter_map(|r| r.split('u').next()?.parse().ok())
        .max()
        .expect("an L1 arena");
    assert!(l1 > 120_000 && l1 <= USABLE, "L1 arena of {l1} B");
}

/// Long skip connections on a gap9-like target whose L2 is cut below the
/// arena ([`diff::spill_batch`], [`diff::Worker::spill_target`]): a fixed
/// case of a spilling batch compiles by spilling a tensor to L3 and
/// filling it back, and stays bit-exact under the sanitizers.
#[test]
fn a_long_skip_case_spills_to_l3_and_stays_bit_exact() {
    assert!(have_gcc(), "gcc is required for the sanitizer builds");
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let (seed, offset) = (env("MATCH_SPILL_SEED", SPILL_SEED), env("MATCH_SPILL_CASE", SPILL_CASE));
    let batch = (0..).find(|&i| diff::spill_batch(seed, i)).expect("a spilling batch");
    let case = batch * BATCH + offset;
    let worker = Worker::new(work_dir("long_skip"));
    let t = diff::run_range(&worker, seed, case, case + 1, BATCH);
    eprintln!(
        "case {case}: {} passed, {} did not fit, {} spilled, failures {:?}",
        t.passed,
        t.does_not_fit,
        t.spilled,
        t.failures.iter().map(|(c, k, m)| (k, c.recipe.summary(), m)).collect::<Vec<_>>()
    );
    assert!(t.failures.is_empty());
    assert_eq!((t.long_skip, t.passed, t.spilled), (1, 1, 1));
}

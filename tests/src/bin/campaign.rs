//! A differential-testing campaign: random networks on host, gap9, diana
//! (emulated), generic random targets and random gap9-like and diana-like
//! targets (emulated; `diff::campaign_target`), each compiled, built with
//! ASan + UBSan, run and compared bit for bit with the interpreter on the
//! lowered graph. Failures are shrunk and saved as regression fixtures.
//!
//! ```text
//! cargo run --release -p match-tests --bin campaign -- --cases N --seed S
//!     [--jobs J] [--batch B] [--shrink-budget K] [--out DIR] [--no-save]
//! ```

use match_tests::diff::{self, Regression, Stats, Worker};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

struct Args {
    cases: u64,
    seed: u64,
    jobs: usize,
    batch: u64,
    shrink_budget: usize,
    out: std::path::PathBuf,
    save: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        cases: 1000,
        seed: 1,
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        batch: 4,
        shrink_budget: 300,
        out: diff::regressions_dir(),
        save: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--cases" => a.cases = val()?.parse().map_err(|e| format!("--cases: {e}"))?,
            "--seed" => a.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--jobs" => a.jobs = val()?.parse().map_err(|e| format!("--jobs: {e}"))?,
            "--batch" => a.batch = val()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--shrink-budget" => {
                a.shrink_budget = val()?.parse().map_err(|e| format!("--shrink-budget: {e}"))?
            }
            "--out" => a.out = val()?.into(),
            "--no-save" => a.save = false,
            "-h" | "--help" => {
                println!("usage: campaign --cases N --seed S [--jobs J] [--batch B] [--shrink-budget K] [--out DIR] [--no-save]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.batch = a.batch.max(1);
    a.jobs = a.jobs.max(1);
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("campaign: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let work = std::env::temp_dir().join(format!("match-campaign-{}-{}", args.seed, std::process::id()));
    let next = AtomicU64::new(0);
    let total = Mutex::new(Stats::default());
    let chunk = args.batch * 4;
    std::thread::scope(|s| {
        for j in 0..args.jobs {
            let (next, total, work, args) = (&next, &total, &work, &args);
            s.spawn(move || {
                let worker = Worker::new(work.join(format!("w{j}")));
                loop {
                    let b = next.fetch_add(chunk, Ordering::SeqCst);
                    if b >= args.cases {
                        break;
                    }
                    let st = diff::run_range(&worker, args.seed, b, (b + chunk).min(args.cases), args.batch);
                    for (case, kind, msg) in &st.failures {
                        eprintln!(
                            "FAIL [{kind:?}] on {}: {}\n  {}",
                            case.target.label(),
                            case.recipe.summary(),
                            msg.lines().take(6).collect::<Vec<_>>().join("\n  ")
                        );
                    }
                    let mut t = total.lock().expect("lock");
                    t.merge(st);
                    eprintln!(
                        "[{:.0} s] {} cases, {} failures",
                        start.elapsed().as_secs_f64(),
                        t.cases,
                        t.failures.len()
                    );
                }
            });
        }
    });
    let total = total.into_inner().expect("lock");
    // Shrink and save every failure (one worker; failures are rare).
    let worker = Worker::new(work.join("shrink"));
    let mut written = Vec::new();
    for (i, (case, kind, msg)) in total.failures.iter().enumerate() {
        let (small, tried) = diff::shrink(&worker, case, *kind, args.shrink_budget);
        let message = match worker.check(&small) {
            diff::Outcome::Fail { message, .. } => message,
            _ => msg.clone(),
        };
        println!(
            "failure {i} [{kind:?}] shrunk in {tried} tries: {} on {}\n  {}",
            small.recipe.summary(),
            small.target.label(),
            message.lines().take(4).collect::<Vec<_>>().join("\n  ")
        );
        if args.save {
            let name = format!("campaign_s{}_{i:03}_{}", args.seed, format!("{kind:?}").to_lowercase());
            let reg = Regression { case: small, kind: *kind, message };
            match diff::save_regression(&args.out, &name, &reg) {
                Ok(p) => written.push(p),
                Err(e) => eprintln!("cannot save {name}: {e:#}"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "cases run: {}\npassed: {}\ndoes not fit (expected): {}\ninvalid recipes: {}\nfailures: {}\nshrunk fixtures written: {}",
        total.cases,
        total.passed,
        total.does_not_fit,
        total.invalid,
        total.failures.len(),
        written.len()
    );
    for p in &written {
        println!("  {}", p.display());
    }
    // Coverage: passing cases per target kind and unit that really ran
    // layers (kernel calls counted by the emulation; e.g. diana:analog).
    println!("passing cases that ran layers, per target kind and unit:");
    for (k, n) in &total.ran {
        println!("  {k}: {n}");
    }
    println!(
        "long-skip cases on gap9-like targets with L2 cut: {}; passing cases that spilled to L3: {}",
        total.long_skip, total.spilled
    );
    println!("time: {:.1} s", start.elapsed().as_secs_f64());
    if !total.failures.is_empty() {
        std::process::exit(1);
    }
}

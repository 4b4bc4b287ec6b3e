//! The host emulations of gap9 and diana (targets/<t>/<t>_platform.c):
//! their counters equal the cost model's prediction, and they stop broken
//! schedules naming the layer.
//!
//! - Counters: every MLPerf Tiny model compiled for gap9 and diana, built
//!   and run on a golden case with `MATCH_COUNTERS`; per layer the DMA
//!   commands and bytes in each direction and the tile calls must equal
//!   [`match_core::cost::predict_counters`] (carried by the emit report),
//!   and the modeled cycles the generated code passes must be the
//!   schedule's. host-tiled's platform counts nothing: `matchc run
//!   --counters` says so.
//! - Broken schedules: generated code built with `-DMT_TEST_DROP_WAIT`
//!   (a load never waited for) aborts naming the layer; small C programs
//!   against each platform check overlapping tile buffers, accesses outside
//!   the tile buffers, a layer ending with pending commands, a tile reading
//!   a pending destination, and (under AddressSanitizer) a plain read of a
//!   DMA destination before its wait.

use match_core::compile::{self, CompileOptions, Compiled};
use match_core::frontend::ImportOptions;
use match_core::ir::Graph;
use match_tests::golden::{manifest, Entry};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(parts: &[&str]) -> PathBuf {
    let mut d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emulation");
    for p in parts {
        d = d.join(p.replace(['/', '\\'], "__"));
    }
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the work folder");
    d
}

const O1: &str = "-std=c99 -O1 -Wall -Wextra -Werror";

/// Compiles a manifest entry for `target` into `dir/project`; `None` (said)
/// when the model does not fit the target's memories.
fn try_compile_entry(e: &Entry, target: &str, dir: &Path) -> Option<(Graph, Compiled)> {
    let root = match_tests::repo_root();
    let (hw, platform) = match_targets::resolve(target).expect("shipped target");
    let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
    let graph = match_core::frontend::load(&root.join(&e.model), &import)
        .unwrap_or_else(|err| panic!("{}: {err:#}", e.id));
    let options = CompileOptions {
        out_dir: dir.join("project"),
        model_name: Some(compile::model_name(&root.join(&e.model))),
        platform_dir: platform,
    };
    match compile::compile_graph(&graph, &hw, &options) {
        Ok(c) => Some((graph, c)),
        Err(err) if format!("{err:#}").contains("does not fit target") => {
            eprintln!("{} does not fit {target}: skipped", e.id);
            None
        }
        Err(err) => panic!("{} {target}: {err:#}", e.id),
    }
}

/// Compiles a manifest entry for `target` into `dir/project`.
fn compile_entry(e: &Entry, target: &str, dir: &Path) -> (Graph, Compiled) {
    try_compile_entry(e, target, dir).unwrap_or_else(|| panic!("{} does not fit {target}", e.id))
}

fn mlperf_tiny() -> Vec<Entry> {
    manifest().models.into_iter().filter(|e| e.id.starts_with("mlperf-tiny/")).collect()
}

#[test]
fn counters_equal_the_cost_model_on_mlperf_tiny() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let entries = mlperf_tiny();
    assert_eq!(entries.len(), 5, "the five MLPerf Tiny models");
    let mut tiled_layers = 0;
    let mut commands = 0;
    for target in ["gap9", "diana"] {
        for e in &entries {
            let dir = tmp(&["counters", target, &e.id]);
            let Some((graph, compiled)) = try_compile_entry(e, target, &dir) else { continue };
            let project = dir.join("project");
            let bin = compile::build(&project, &compiled.model_name, &[("CC", "gcc"), ("CFLAGS", O1)])
                .unwrap_or_else(|err| panic!("{} {target}: {err:#}", e.id));
            let (_, table) = compile::run_binary_counters(&bin, &graph, &[e.case_inputs(0)], &dir.join("io"))
                .unwrap_or_else(|err| panic!("{} {target}: {err:#}", e.id));
            assert_eq!(table.target, target);
            assert_eq!(table.runs, 1);
            let predicted = &compiled.report.counters;
            let bad = compile::counters_mismatches(predicted, &table);
            assert!(
                bad.is_empty(),
                "{} on {target}: counters differ from the cost model:\n{}",
                e.id,
                bad.join("\n")
            );
            // The modeled cycles are the schedule's, and the rows follow the mapping.
            for (row, layer) in table.layers.iter().zip(&compiled.mapping.layers) {
                let want = layer.schedule.as_ref().map_or(0.0, |s| s.cycles.total).max(0.0).round() as u64;
                assert_eq!(row.cycles, want, "{} {target} layer {}", e.id, row.index);
                assert_eq!(row.dma_l3, 0);
            }
            tiled_layers += predicted.iter().filter(|c| c.calls > 0).count();
            commands += predicted.iter().map(|c| c.dma_in + c.dma_out).sum::<u64>();
            eprintln!(
                "{} on {target}: {} layers, {} tiled, {} DMA commands, equal to the prediction",
                e.id,
                predicted.len(),
                predicted.iter().filter(|c| c.calls > 0).count(),
                predicted.iter().map(|c| c.dma_in + c.dma_out).sum::<u64>()
            );
        }
    }
    assert!(tiled_layers >= 20 && commands >= 100, "{tiled_layers} tiled layers, {commands} commands");
}

/// The prediction counts what the emitted commands split at the DMA's
/// `max`: gap9's 65535 B splits the largest weight tiles.
#[test]
fn counted_commands_split_at_the_dma_max() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let e =
        mlperf_tiny().into_iter().find(|e| e.id == "mlperf-tiny/ad01_int8").expect("ad01 in the manifest");
    let dir = tmp(&["split", &e.id]);
    let (_, compiled) = compile_entry(&e, "gap9", &dir);
    let (hw, _) = match_targets::resolve("gap9").expect("gap9");
    let max = hw.dma("L2", "L1").and_then(|d| d.max_bytes).expect("gap9's DMA has a max");
    let c = &compiled.report.counters[0];
    // More bytes per weight load than `max`: more commands than steps' loads.
    assert!(c.dma_in_bytes > max && c.dma_in > c.calls, "{c:?}");
}

/// Which targets' platforms count (their api binds the `layer` role):
/// `matchc run --counters` refuses the others with a clear error.
#[test]
fn counting_platforms() {
    for (target, counts) in [("gap9", true), ("diana", true), ("host", false), ("host-tiled", false)] {
        let (hw, _) = match_targets::resolve(target).expect("shipped target");
        assert_eq!(compile::platform_counts(&hw), counts, "{target}");
    }
}

/// Builds `project` with `cflags` into `build/`, runs one golden case, and
/// returns the failure message (the run must fail).
fn run_must_fail(
    e: &Entry,
    graph: &Graph,
    compiled: &Compiled,
    dir: &Path,
    cflags: &str,
    build: &str,
) -> String {
    let project = dir.join("project");
    let bin = compile::build(
        &project,
        &compiled.model_name,
        &[("CC", "gcc"), ("CFLAGS", cflags), ("BUILD", build)],
    )
    .unwrap_or_else(|err| panic!("{}: {err:#}", e.id));
    match compile::run_binary(&bin, graph, &[e.case_inputs(0)], &dir.join(format!("io-{build}"))) {
        Ok(_) => panic!("{}: the broken schedule ({cflags}) ran to the end", e.id),
        Err(err) => format!("{err:#}"),
    }
}

/// Generated code whose driver leaves out the wait for its input (or
/// weight) tiles aborts in the first tiled layer, which the message names.
#[test]
fn a_dropped_wait_aborts_naming_the_layer() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let e =
        mlperf_tiny().into_iter().find(|e| e.id == "mlperf-tiny/kws_ref_model").expect("kws in the manifest");
    let dir = tmp(&["dropped-wait", &e.id]);
    let (graph, compiled) = compile_entry(&e, "gap9", &dir);
    let first = compiled.report.counters.iter().position(|c| c.calls > 0).expect("a tiled layer on gap9");
    let model_c = std::fs::read_to_string(dir.join("project").join(format!("{}.c", compiled.model_name)))
        .expect("the model's C");
    // The C name the generated code passes to gap9_layer for that layer.
    let name = model_c
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("gap9_layer({first}, \"")))
        .and_then(|r| r.split('"').next())
        .expect("the layer hook")
        .to_string();
    for (channel, build) in [(0, "build-drop-in"), (1, "build-drop-w")] {
        let msg =
            run_must_fail(&e, &graph, &compiled, &dir, &format!("{O1} -DMT_TEST_DROP_WAIT={channel}"), build);
        assert!(
            msg.contains(&format!("gap9 emulation: layer '{name}'")) && msg.contains("pending DMA"),
            "channel {channel}: {msg}"
        );
    }
    // Under AddressSanitizer the same broken schedule is stopped too.
    let asan = format!("{O1} -g -fsanitize=address -fno-omit-frame-pointer -DMT_TEST_DROP_WAIT=0");
    let msg = run_must_fail(&e, &graph, &compiled, &dir, &asan, "build-drop-asan");
    assert!(msg.contains(&format!("layer '{name}'")), "{msg}");
}

/// A C program against a platform: `main(argc, argv)` runs scenario
/// argv[1] with the platform's prefix `P`.
const PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include "P_platform.h"

static const uint8_t constants[256] = {1, 2, 3, 4, 5, 6, 7, 8};

int main(int argc, char **argv)
{
    uint8_t *l2, *l1;
    const char *s = argc > 1 ? argv[1] : "";
    P_init();
    l2 = (uint8_t *)P_malloc("L2", 1024u);
    l1 = (uint8_t *)P_malloc("L1", 1024u);
    memset(l2, 7, 1024);
    P_layer(0, "first_layer", UINT64_C(100));
    P_buffer(l1, 256u);
    P_buffer(l1 + 256, 256u);
    P_buffer(l1 + 512, 256u);
    if (strcmp(s, "ok") == 0) {
        P_dma_start(l1, constants, 64u, 1u, 64u, 64u, 1u, 64u, 64u, 0);
        P_dma_start(l1 + 256, l2, 32u, 1u, 32u, 32u, 1u, 32u, 32u, 0);
#ifndef PROG_ASAN
        /* Copied at the wait, not before (a read ASan would stop). */
        if (l1[0] != 0) {
            return 3;
        }
#endif
        P_dma_wait(0);
        if (l1[0] != 1 || l1[256] != 7) {
            return 4;
        }
        P_tile(l1, l1 + 256, l1 + 512);
        l1[512] = 42;
        P_dma_start(l2 + 100, l1 + 512, 1u, 1u, 1u, 1u, 1u, 1u, 1u, 2);
        P_dma_wait(2);
        P_layer(1, "second_layer", UINT64_C(50));
        P_layer(-1, "", UINT64_C(0));
        if (l2[100] != 42) {
            return 5;
        }
        P_free("L1", l1, 1024u);
        P_free("L2", l2, 1024u);
        P_deinit();
        return 0;
    } else if (strcmp(s, "overlap") == 0) {
        P_buffer(l1 + 700, 100u);
    } else if (strcmp(s, "outside") == 0) {
        P_dma_start(l1 + 760, l2, 16u, 1u, 16u, 16u, 1u, 16u, 16u, 0);
    } else if (strcmp(s, "unallocated") == 0) {
        P_dma_start(l1, l2 + 1020, 16u, 1u, 16u, 16u, 1u, 16u, 16u, 0);
    } else if (strcmp(s, "missing_wait") == 0) {
        P_dma_start(l1, l2, 16u, 1u, 16u, 16u, 1u, 16u, 16u, 0);
        P_layer(1, "second_layer", UINT64_C(50));
    } else if (strcmp(s, "tile_reads_pending") == 0) {
        P_dma_start(l1 + 256, l2, 16u, 1u, 16u, 16u, 1u, 16u, 16u, 1);
        P_tile(l1, l1 + 256, l1 + 512);
    } else if (strcmp(s, "kernel_writes_pending_source") == 0) {
        P_dma_start(l2, l1 + 512, 16u, 1u, 16u, 16u, 1u, 16u, 16u, 2);
        P_emu_kernel("k", l1, 16u, NULL, 0u, l1 + 512, 16u);
    } else if (strcmp(s, "same_buffer") == 0) {
        P_tile(l1, NULL, l1);
    } else if (strcmp(s, "dma_reads_pending") == 0) {
        P_dma_start(l1, l2, 16u, 1u, 16u, 16u, 1u, 16u, 16u, 0);
        P_dma_start(l2 + 512, l1, 16u, 1u, 16u, 16u, 1u, 16u, 16u, 2);
    } else if (strcmp(s, "read_before_wait") == 0) {
        /* A plain read: only AddressSanitizer sees it. */
        P_dma_start(l1, l2, 16u, 1u, 16u, 16u, 1u, 16u, 16u, 0);
        printf("%d\n", ((volatile uint8_t *)l1)[3]);
        P_dma_wait(0);
    } else if (strcmp(s, "too_large") == 0) {
        P_malloc("L1", 100000000u);
    } else if (strcmp(s, "two_d") == 0) {
        /* 2 rows of 8 B: a 2-D command (gap9's DMA moves 3-D, diana's 1-D). */
        P_dma_start(l1, l2, 8u, 2u, 8u, 16u, 1u, 16u, 32u, 0);
        P_dma_wait(0);
        return l1[8] == 7 ? 0 : 6;
    }
#ifdef PROG_GAP9
    else if (strcmp(s, "l3") == 0) {
        uint8_t *l3 = (uint8_t *)gap9_malloc("L3", 256u);
        memset(l3, 9, 256);
        gap9_l3_dma_start(l2 + 512, l3, 16u, 4u, 16u, 32u, 1u, 64u, 128u, 0);
        gap9_l3_dma_wait(0);
        return l2[512 + 63] == 9 && l2[512 + 64] == 7 ? 0 : 7;
    } else if (strcmp(s, "l3_3d") == 0) {
        uint8_t *l3 = (uint8_t *)gap9_malloc("L3", 256u);
        gap9_l3_dma_start(l2, l3, 4u, 2u, 4u, 4u, 2u, 8u, 8u, 0);
    } else if (strcmp(s, "over_max") == 0) {
        uint8_t *big = (uint8_t *)gap9_malloc("L2", 70000u);
        gap9_buffer(l1 + 768, 256u);
        gap9_dma_start(l1 + 768, big, 1u, 1u, 1u, 1u, 1u, 1u, 1u, 0);
        gap9_dma_wait(0);
        P_layer(1, "second_layer", UINT64_C(0));
        P_buffer(l1, 256u);
        P_dma_start(l1, big, 65536u, 1u, 65536u, 65536u, 1u, 65536u, 65536u, 0);
    }
#endif
    return 0;
}
"#;

/// Builds PROGRAM against `target`'s platform (with `cflags`) in `dir`.
fn build_program(target: &str, dir: &Path, cflags: &[&str]) -> PathBuf {
    let define = format!("-DPROG_{}", target.to_uppercase());
    let root = match_tests::repo_root();
    let platform = root.join("targets").join(target);
    std::fs::write(dir.join("match_kernels.h"), match_core::emit::KERNELS_H).expect("write");
    // The emulation core and the memory sizes the platform includes (as
    // matchc writes them into a project for the shipped target).
    let (hw, _) = match_targets::resolve(target).expect("the target resolves");
    for (name, text) in match_core::emit::emu_files(&hw) {
        std::fs::write(dir.join(name), text).expect("write");
    }
    std::fs::write(dir.join("prog.c"), PROGRAM.replace("P_", &format!("{target}_"))).expect("write");
    let bin = dir.join("prog");
    let out = Command::new("gcc")
        .args(["-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .args(cflags)
        .arg(&define)
        .arg("-I")
        .arg(dir)
        .arg("-I")
        .arg(&platform)
        .arg("-o")
        .arg(&bin)
        .arg(dir.join("prog.c"))
        .arg(platform.join(format!("{target}_platform.c")))
        .output()
        .expect("run gcc");
    assert!(out.status.success(), "{target}: {}", String::from_utf8_lossy(&out.stderr));
    bin
}

fn run_program(bin: &Path, scenario: &str) -> (bool, String) {
    let out = Command::new(bin).arg(scenario).env_remove("MATCH_COUNTERS").output().expect("run the program");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn broken_schedules_abort_naming_the_layer() {
    for target in ["gap9", "diana"] {
        let dir = tmp(&["program", target]);
        let bin = build_program(target, &dir, &[]);
        let (ok, err) = run_program(&bin, "ok");
        assert!(ok, "{target}: the correct schedule failed: {err}");
        for (scenario, what) in [
            ("overlap", "overlaps another tile buffer"),
            ("outside", "outside the layer's tile buffers"),
            ("unallocated", "outside the allocated arenas"),
            ("missing_wait", "pending (missing wait)"),
            ("tile_reads_pending", "the destination of a pending DMA command"),
            ("kernel_writes_pending_source", "which a pending DMA command still reads"),
            ("same_buffer", "are the same buffer"),
            ("dma_reads_pending", "the destination of a pending DMA command"),
            ("too_large", "L1 is full"),
        ] {
            let (ok, err) = run_program(&bin, scenario);
            assert!(!ok, "{target} {scenario}: ran to the end");
            assert!(
                err.contains(&format!("{target} emulation: layer 'first_layer': ")) && err.contains(what),
                "{target} {scenario}: {err}"
            );
        }
        // Without ASan a plain read before the wait is not seen (the
        // emulation copies at the wait): it runs.
        assert!(run_program(&bin, "read_before_wait").0, "{target}");
        // Commands beyond the DMA's dimensions or size.
        let (ok, err) = run_program(&bin, "two_d");
        if target == "gap9" {
            assert!(ok, "{err}");
            assert!(run_program(&bin, "l3").0, "gap9 L3 -> L2");
            let (ok, err) = run_program(&bin, "l3_3d");
            assert!(!ok && err.contains("a 3-D command") && err.contains("on a 2-D DMA"), "{err}");
            let (ok, err) = run_program(&bin, "over_max");
            assert!(
                !ok && err.contains("layer 'second_layer'") && err.contains("more than the DMA's 65535 B"),
                "{err}"
            );
        } else {
            assert!(!ok && err.contains("a 2-D command") && err.contains("on a 1-D DMA"), "{err}");
        }
    }
}

/// Under AddressSanitizer the destination of a pending DMA is poisoned: a
/// plain read before the wait is reported, with the layer named.
#[test]
fn reading_a_dma_destination_before_its_wait_is_caught_under_asan() {
    for target in ["gap9", "diana"] {
        let dir = tmp(&["program-asan", target]);
        let bin =
            build_program(target, &dir, &["-fsanitize=address", "-fno-omit-frame-pointer", "-DPROG_ASAN"]);
        let (ok, err) = run_program(&bin, "ok");
        assert!(ok, "{target}: the correct schedule failed under ASan: {err}");
        let (ok, err) = run_program(&bin, "read_before_wait");
        assert!(!ok, "{target}: the read before the wait went unnoticed");
        assert!(
            err.contains("use-after-poison")
                && err
                    .contains(&format!("{target} emulation: AddressSanitizer error in layer 'first_layer'")),
            "{target}: {err}"
        );
    }
}

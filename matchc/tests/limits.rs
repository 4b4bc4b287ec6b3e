//! Resource limits: hostile but well-formed inputs (huge tensors, very deep
//! graphs, targets with absurd sizes) end in a result or a clear error, in
//! bounded memory and time, never in a crash or a hang.
//!
//! Each case runs `matchc` under an address-space limit (`ulimit -v`, so an
//! attempt to allocate the tensor a model declares fails instead of
//! swapping) and a wall-clock limit (the child is killed past it).

use match_core::frontend::onnx::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address space a case may use (the compiler's own bookkeeping only: no
/// case may allocate a declared tensor).
const MEMORY_KIB: u64 = 2 * 1024 * 1024;
/// Wall-clock limit per case (debug build, 2 busy cores).
const TIME: Duration = Duration::from_secs(120);

const INT8: i32 = 3;
const INT32: i32 = 6;

struct Outcome {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Runs matchc with `args` under the memory and time limits.
fn limited(args: &[&str]) -> Outcome {
    let mut script = format!("ulimit -v {MEMORY_KIB}; exec \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_matchc"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn matchc");
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut stderr);
            }
            return Outcome { code: status.code(), stderr, took: start.elapsed() };
        }
        if start.elapsed() > TIME {
            let _ = child.kill();
            let _ = child.wait();
            panic!("matchc {args:?} ran past {TIME:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A clean outcome: success or a located error (exit 1), never a crash
/// (signal), a panic (101) or a usage error.
fn assert_clean(o: &Outcome, what: &str) {
    assert!(
        matches!(o.code, Some(0) | Some(1)),
        "{what}: exit {:?} after {:?}\n{}",
        o.code,
        o.took,
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
}

fn value(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: elem,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| Dimension { dim_value: Some(d), dim_param: None }).collect(),
                }),
            }),
        }),
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        domain: String::new(),
        attribute,
    }
}

fn model(graph: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "limits test".into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write case");
    p.to_str().expect("utf-8 path").to_string()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("matchc-limits-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// 20000 chained integer Clip nodes: every pass must be iterative (a
/// recursive walk would overflow the stack) and near linear.
#[test]
fn a_very_deep_graph_compiles_or_errors_in_bounded_time() {
    let n = 20_000;
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let a = if i == 0 { "x".to_string() } else { format!("t{}", i - 1) };
        let b = if i + 1 == n { "y".to_string() } else { format!("t{i}") };
        nodes.push(node("Clip", &format!("clip_{i}"), &[&a], &[&b], vec![]));
    }
    let bytes = model(GraphProto {
        node: nodes,
        name: "deep".into(),
        input: vec![value("x", INT8, &[1, 64])],
        output: vec![value("y", INT8, &[1, 64])],
        ..Default::default()
    });
    let dir = scratch("deep");
    let m = write(&dir, "deep.onnx", &bytes);
    let o = limited(&["inspect", &m]);
    assert_clean(&o, "inspect");
    let out = dir.join("out");
    let o = limited(&["compile", &m, "--target", "host", "-o", out.to_str().unwrap()]);
    assert_clean(&o, "compile");
}

/// A declared input of 2^34 elements: refused at import, naming the tensor,
/// without allocating it.
#[test]
fn a_tensor_past_the_element_limit_is_an_error_naming_it() {
    let bytes = model(GraphProto {
        node: vec![node("Clip", "clip", &["x"], &["y"], vec![])],
        name: "huge".into(),
        input: vec![value("x", INT8, &[1, 65536, 65536, 4])],
        output: vec![value("y", INT8, &[1, 65536, 65536, 4])],
        ..Default::default()
    });
    let dir = scratch("huge");
    let m = write(&dir, "huge.onnx", &bytes);
    let o = limited(&["inspect", &m]);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stderr.contains('x'), "the error names the tensor: {}", o.stderr);
}

/// A legal but enormous activation (2^30 bytes) through a real layer: the
/// compiler plans it without allocating it and says it does not fit, with
/// the tensor and the excess.
#[test]
fn a_model_far_larger_than_the_target_is_a_does_not_fit_error() {
    let (h, w, c, k) = (16384i64, 16384i64, 4i64, 4i64);
    let weights = TensorProto {
        dims: vec![k, c, 1, 1],
        data_type: INT8,
        name: "w".into(),
        raw_data: vec![1u8; (k * c) as usize],
        ..Default::default()
    };
    let bytes = model(GraphProto {
        node: vec![node("ConvInteger", "conv", &["x", "w"], &["y"], vec![])],
        name: "big".into(),
        initializer: vec![weights],
        input: vec![value("x", INT8, &[1, c, h, w])],
        output: vec![value("y", INT32, &[1, k, h, w])],
        ..Default::default()
    });
    let dir = scratch("big");
    let m = write(&dir, "big.onnx", &bytes);
    for target in ["gap9", "diana"] {
        let out = dir.join(target);
        let o = limited(&["compile", &m, "--target", target, "-o", out.to_str().unwrap()]);
        assert_eq!(o.code, Some(1), "{target}: {}", o.stderr);
        assert!(o.stderr.contains("fit") || o.stderr.contains("exceed"), "{target}: {}", o.stderr);
    }
}

/// Targets with absurd numbers: a petabyte memory, one-byte DMA commands,
/// a million-wide array. They are valid `.hwm`; compiling a real model for
/// them ends in bounded time (the search and the command enumeration do not
/// grow with the memory size or explode with the command count).
#[test]
fn targets_with_absurd_sizes_compile_in_bounded_time() {
    // The project's own example model (always in the repository).
    let model = repo().join("examples/example_int8.onnx");
    assert!(model.is_file(), "examples/example_int8.onnx");
    let cases = [
        ("petabyte", "size 1000000000000000 B", "max 65536 B", "spatial K 16"),
        ("one_byte_dma", "size 64 KiB", "max 1 B", "spatial K 16"),
        ("million_wide", "size 64 KiB", "max 65536 B", "spatial K 1000000"),
    ];
    for (name, l1_size, max, spatial) in cases {
        let hwm = format!(
            "target absurd_{name} {{\n    clock 100 MHz\n    memory L2 {{\n        size 1000000000 B\n    }}\n    memory L1 {{\n        {l1_size}\n        double_buffer\n    }}\n    dma L2 <-> L1 {{\n        bandwidth 8 B/cycle\n        setup 10 cycles\n        dims 2\n        {max}\n        start \"dma_start\"\n        wait \"dma_wait\"\n    }}\n    unit cpu {{\n        host\n        macs 1/cycle\n        compute_in L2\n    }}\n    unit acc {{\n        {spatial}\n        macs 16/cycle\n        compute_in L1\n        call_overhead 10 cycles\n    }}\n    pattern conv = conv2d >> bias? >> requant >> clip?\n    offload conv to acc call \"acc_conv\"\n}}\n"
        );
        let dir = scratch(name);
        let t = write(&dir, "absurd.hwm", hwm.as_bytes());
        let o = limited(&["check", &t]);
        assert_eq!(o.code, Some(0), "{name}: {}", o.stderr);
        let out = dir.join("out");
        let o = limited(&["compile", model.to_str().unwrap(), "--target", &t, "-o", out.to_str().unwrap()]);
        assert_clean(&o, name);
    }
}

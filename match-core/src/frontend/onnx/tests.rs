//! Importer tests: the shared models (../shared) when present, the golden
//! QDQ/QOperator models, hand-made protobufs, and corrupt inputs.

use super::proto::*;
use super::*;
use crate::ir::{Graph, Op};
use std::path::{Path, PathBuf};

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/models");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var("MATCH_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("../shared/models is missing and MATCH_REQUIRE_SHARED=1");
    }
    eprintln!("skipping: ../shared/models is not present");
    None
}

fn ops(g: &Graph) -> Vec<&'static str> {
    g.topo_order().expect("acyclic").iter().map(|&n| g.nodes[n].op.pattern_name()).collect()
}

fn count(g: &Graph, name: &str) -> usize {
    ops(g).iter().filter(|&&o| o == name).count()
}

pub(super) fn load(path: &Path, fold: Option<PathBuf>) -> anyhow::Result<Graph> {
    let bytes = std::fs::read(path)?;
    import(&bytes, &ImportOptions { fold_inputs_from: fold })
}

#[test]
fn match_onnx_models() {
    let Some(dir) = shared() else { return };
    for (file, convs, dense, input, output) in [
        ("anomaly_detection.onnx", 0, 10, vec![1, 640], vec![1, 640]),
        ("keyword_spotting.onnx", 9, 1, vec![1, 1, 49, 10], vec![1, 12]),
        ("visual_wake_words.onnx", 27, 1, vec![1, 3, 96, 96], vec![1, 4]),
    ] {
        let g = load(&dir.join("match-onnx").join(file), None).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        assert_eq!(count(&g, "conv2d"), convs, "{file}");
        assert_eq!(count(&g, "dense"), dense, "{file}");
        assert_eq!(count(&g, "requant"), convs + dense - 1, "{file}");
        assert_eq!(count(&g, "clip"), convs + dense - 1, "{file}");
        assert_eq!(count(&g, "bias"), 1, "{file}");
        assert_eq!(g.tensor(g.inputs[0]).shape, input, "{file}");
        let out = g.tensor(g.outputs[0]);
        assert_eq!(out.shape, output, "{file}");
        assert_eq!(out.dtype, DType::F32, "{file}");
        // Every requantization is ScaleShift, every weight integer.
        for n in g.nodes.node_weights() {
            if let Op::Requantize { requant, .. } = &n.op {
                assert!(matches!(requant, crate::ir::Requant::ScaleShift { .. }), "{file}: {requant:?}");
            }
            if matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. }) {
                assert_ne!(g.tensor(n.inputs[1]).dtype, DType::F32, "{file}");
                assert_eq!(g.tensor(n.outputs[0]).dtype, DType::I32, "{file}");
            }
        }
        let last = g.producer(g.outputs[0]).unwrap();
        assert!(matches!(g.nodes[last].op, Op::Cast), "{file}");
    }
}

#[test]
fn onnx_node_tests() {
    let Some(dir) = shared() else { return };
    let dir = dir.join("onnx-node");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let case = e.unwrap().path();
        if !case.is_dir() {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let g = load(&case.join("model.onnx"), Some(case.join("test_data_set_0")))
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(g.inputs.len(), 1, "{name}");
        assert_eq!(g.outputs.len(), 1, "{name}");
        // The declared output shape is checked by the importer; check the
        // expected output's shape too.
        let bytes = std::fs::read(case.join("test_data_set_0/output_0.pb")).unwrap();
        let t = TensorProto::decode(bytes.as_slice()).unwrap();
        let want: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        assert_eq!(g.tensor(g.outputs[0]).shape, want, "{name}");
        assert_eq!(g.tensor(g.outputs[0]).dtype, tensor::dtype(t.data_type).unwrap(), "{name}");
        let kinds = ops(&g);
        eprintln!("{name}: {kinds:?}");
        for n in g.nodes.node_weights() {
            if matches!(n.op, Op::Quantize) {
                assert!(g.tensor(n.outputs[0]).quant.is_some(), "{name}");
            }
            if matches!(n.op, Op::Dequantize) {
                assert!(g.tensor(n.inputs[0]).quant.is_some(), "{name}");
            }
        }
        let expect = match name.as_str() {
            "test_qlinearconv" => "conv2d",
            s if s.starts_with("test_qlinearmatmul_2D") => "dense",
            s if s.starts_with("test_qlinearmatmul_3D") => "matmul",
            s if s.starts_with("test_convinteger") => "conv2d",
            "test_matmulinteger" => "dense",
            "test_maxpool_2d_uint8" => "maxpool",
            s if s.starts_with("test_add") => "add",
            s if s.starts_with("test_clip") => "clip",
            s if s.starts_with("test_quantizelinear") => "quantize",
            s if s.starts_with("test_dequantizelinear") => "dequantize",
            s => panic!("unexpected test {s}"),
        };
        assert!(kinds.contains(&expect), "{name}: {kinds:?}");
        n += 1;
    }
    assert_eq!(n, 18);
}

#[test]
fn golden_models() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/models");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("skipping: no tests/golden/models yet");
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) != Some("onnx") {
            continue;
        }
        let g = load(&p, None).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        assert!(!g.outputs.is_empty(), "{}", p.display());
        eprintln!("{}: {:?}", p.display(), ops(&g));
    }
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/onnx_import");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let p = e.ok()?.path();
                // The hand-made seeds are `*.onnx`; the fuzzer's own finds are named by hash.
                if p.extension().is_none_or(|x| x != "onnx") {
                    return None;
                }
                Some((p.file_name()?.to_string_lossy().into_owned(), std::fs::read(&p).ok()?))
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn hand_made_models() {
    let imp = |b: &[u8]| import(b, &ImportOptions::default());
    for (name, bytes) in corpus() {
        let g = imp(&bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let k = ops(&g);
        match name.as_str() {
            "qlinearconv.onnx" => {
                assert_eq!(k, ["transpose", "conv2d", "requant", "transpose"], "{name}");
                // OIHW (2, 2, 3, 3) -> OHWI (2, 3, 3, 2): w[o][i][h][w] = 18o + 9i + 3h + w.
                let conv = g.nodes.node_weights().find(|n| matches!(n.op, Op::Conv2d { .. })).unwrap();
                let w = g.tensor(conv.inputs[1]);
                assert_eq!(w.shape, [2, 3, 3, 2]);
                assert_eq!(&w.data.as_ref().unwrap().to_i64()[..4], &[0, 9, 1, 10]);
                assert!(
                    matches!(&conv.op, Op::Conv2d { pad: [1, 1, 1, 1], x_zp: 3, w_zp, .. } if w_zp == &[1, 2])
                );
            }
            "qdq.onnx" => assert_eq!(
                k,
                [
                    "transpose",
                    "quantize",
                    "conv2d",
                    "bias",
                    "requant",
                    "clip",
                    "maxpool",
                    "transpose",
                    "reshape",
                    "dequantize"
                ],
                "{name}"
            ),
            "integer.onnx" => {
                assert_eq!(
                    k,
                    [
                        "transpose",
                        "conv2d",
                        "requant",
                        "clip",
                        "transpose",
                        "reshape",
                        "dense",
                        "bias",
                        "cast"
                    ]
                );
                let rq = g.nodes.node_weights().find(|n| matches!(n.op, Op::Requantize { .. })).unwrap();
                assert_eq!(
                    rq.op,
                    Op::Requantize {
                        requant: crate::ir::Requant::ScaleShift {
                            scale: vec![3, 4],
                            bias: vec![1, -1],
                            shift: 8
                        },
                        out_zp: 0
                    }
                );
                assert_eq!(g.tensor(rq.outputs[0]).dtype, DType::U8);
            }
            "matmulinteger.onnx" => assert_eq!(k, ["dense"], "{name}"),
            _ => {}
        }
    }
}

#[test]
fn float_model_is_rejected() {
    let g = GraphProto {
        node: vec![NodeProto {
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            op_type: "MatMul".into(),
            ..Default::default()
        }],
        initializer: vec![TensorProto {
            dims: vec![2, 2],
            data_type: 1,
            float_data: vec![0.5; 4],
            name: "w".into(),
            ..Default::default()
        }],
        input: vec![vi("x", 1, &[1, 2])],
        output: vec![vi("y", 1, &[1, 2])],
        ..Default::default()
    };
    let m = ModelProto { ir_version: 7, graph: Some(g), ..Default::default() };
    let e = import(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err();
    assert!(format!("{e:#}").contains("quantized integer models"), "{e:#}");
}

fn vi(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
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

#[test]
fn errors_name_the_node() {
    let g = GraphProto {
        node: vec![NodeProto {
            input: vec!["x".into()],
            output: vec!["y".into()],
            op_type: "Softmax".into(),
            ..Default::default()
        }],
        input: vec![vi("x", 2, &[1, 4])],
        output: vec![vi("y", 2, &[1, 4])],
        ..Default::default()
    };
    let m = ModelProto { ir_version: 7, graph: Some(g), ..Default::default() };
    let e = format!("{:#}", import(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err());
    assert!(e.contains("node `#0 Softmax` (Softmax)") && e.contains("QLinearConv"), "{e}");
    // Absurd dims are an error, not an allocation.
    let g = GraphProto {
        input: vec![vi("x", 2, &[1 << 40, 1 << 40])],
        output: vec![vi("x", 2, &[1])],
        ..Default::default()
    };
    let m = ModelProto { graph: Some(g), ..Default::default() };
    assert!(import(&m.encode_to_vec(), &ImportOptions::default()).is_err());
    assert!(import(b"\x0a\x05hello", &ImportOptions::default()).is_err());
    assert!(import(&[], &ImportOptions::default()).is_err());
}

/// Truncations and bit flips of every model at hand: errors, never panics.
#[test]
fn corrupt_bytes_never_panic() {
    let mut models: Vec<Vec<u8>> = corpus().into_iter().map(|(_, b)| b).collect();
    if let Some(dir) = shared() {
        for f in ["onnx-node/test_qlinearconv/model.onnx", "match-onnx/keyword_spotting.onnx"] {
            models.push(std::fs::read(dir.join(f)).unwrap());
        }
    }
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for m in &models {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        let step = (m.len() / 60).max(1);
        for cut in (0..m.len()).step_by(step) {
            cases.push(m[..cut].to_vec());
        }
        for _ in 0..150 {
            let mut b = m.clone();
            for _ in 0..1 + rnd() % 4 {
                let i = (rnd() as usize) % b.len();
                b[i] ^= 1 << (rnd() % 8);
            }
            cases.push(b);
        }
        for b in cases {
            let r = std::panic::catch_unwind(|| {
                let _ = import(&b, &ImportOptions::default());
            });
            assert!(r.is_ok(), "panic on corrupt input of {} bytes", b.len());
        }
    }
}

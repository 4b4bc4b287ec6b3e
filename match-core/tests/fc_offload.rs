//! GAP9's fabric controller as a unit the mapper chooses (targets/gap9.hwm:
//! the `fc` unit's `cycles` expression and its offload rules): a tiny dense
//! layer costs less there than on the cluster (550 cycles per call, 370 per
//! DMA transfer) and goes to the FC, with hand-computed cycles; a large
//! dense layer and a large addition stay on the cluster, where the FC's
//! single core and L2 traffic would cost more.

use match_core::ir::{AddKind, DType, Data, Graph, Op, OpNode, Requant, Tensor, TensorId};
use match_core::mapping::{self, MappedLayer};
use match_dsl::HwModel;
use std::path::Path;

fn gap9() -> HwModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/gap9.hwm");
    match_dsl::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn tensor(g: &mut Graph, name: &str, shape: &[usize], dtype: DType, data: Option<Data>) -> TensorId {
    g.add_tensor(Tensor { name: name.into(), shape: shape.to_vec(), dtype, quant: None, data })
}

fn node(g: &mut Graph, name: &str, op: Op, inputs: &[TensorId], shape: &[usize], dtype: DType) -> TensorId {
    let out = tensor(g, &format!("{name}_out"), shape, dtype, None);
    g.add_node(OpNode { name: name.into(), op, inputs: inputs.to_vec(), outputs: vec![out] });
    out
}

/// `x i8 (1, c)` -> dense (weights i8 (k, c)) -> bias -> per-tensor
/// fixed-point requantize -> `i8 (1, k)`: no activation.
fn dense_graph(c: usize, k: usize) -> Graph {
    let mut g = Graph::default();
    let x = tensor(&mut g, "x", &[1, c], DType::I8, None);
    g.inputs.push(x);
    let w = tensor(&mut g, "w", &[k, c], DType::I8, Some(Data::I8(vec![1; k * c])));
    let b = tensor(&mut g, "b", &[k], DType::I32, Some(Data::I32(vec![0; k])));
    let acc = node(&mut g, "dense", Op::Dense { x_zp: 0, w_zp: vec![0] }, &[x, w], &[1, k], DType::I32);
    let acc = node(&mut g, "bias", Op::BiasAdd, &[acc, b], &[1, k], DType::I32);
    let rq = Op::Requantize {
        requant: Requant::FixedPoint { multiplier: vec![1 << 30], shift: vec![-3] },
        out_zp: 0,
    };
    let y = node(&mut g, "requant", rq, &[acc], &[1, k], DType::I8);
    g.outputs.push(y);
    g.rebuild_edges();
    g
}

/// Two `i8 (1, h, w, c)` inputs added (integer addition), no activation.
fn add_graph(h: usize, w: usize, c: usize) -> Graph {
    let mut g = Graph::default();
    let a = tensor(&mut g, "a", &[1, h, w, c], DType::I8, None);
    let b = tensor(&mut g, "b", &[1, h, w, c], DType::I8, None);
    g.inputs.extend([a, b]);
    let y = node(&mut g, "add", Op::Add { kind: AddKind::Integer }, &[a, b], &[1, h, w, c], DType::I8);
    g.outputs.push(y);
    g.rebuild_edges();
    g
}

/// The one layer of `g` mapped for gap9.
fn only_layer(g: &Graph) -> MappedLayer {
    let m = mapping::map(g, &gap9()).expect("maps");
    assert_eq!(m.layers.len(), 1, "{:?}", m.layers.iter().map(|l| &l.name).collect::<Vec<_>>());
    m.layers.into_iter().next().unwrap()
}

/// The cost of `unit` among the layer's alternatives.
fn alternative(l: &MappedLayer, unit: &str) -> f64 {
    l.alternatives
        .iter()
        .find(|(u, _, _)| u == unit)
        .unwrap_or_else(|| panic!("no {unit} in {:?}", l.alternatives))
        .2
}

#[test]
fn tiny_dense_runs_on_the_fc_with_hand_computed_cycles() {
    let l = only_layer(&dense_graph(64, 10));
    assert_eq!(
        (l.unit.as_str(), l.pattern.as_deref(), l.kernel.as_deref()),
        ("fc", Some("fc_layer"), Some("fc_linear"))
    );
    let s = l.schedule.as_ref().expect("costed");
    assert_eq!((s.from.as_str(), s.to.as_str()), ("L2", "L2"), "the FC computes from L2, untiled");
    // By hand, from gap9.hwm's FC model, 64 inputs -> 10 outputs:
    //   compute: 640 MACs / 4                                      = 160
    //   L2 bytes: input 64
    //           + weights 640 + zero points 4*10 + bias 4*10
    //             + per-tensor multiplier and shift 8            = 728
    //           + outputs 10 * (1 B + 4 int32 passes * 4 B)       = 170
    //     962 B at 2 B/cycle                                       = 481
    //   call: 20
    assert_eq!(s.cycles.compute, 160.0 + 481.0);
    assert_eq!(s.cycles.overhead, 20.0);
    assert_eq!(s.cycles.transfer, 0.0);
    assert_eq!(s.cycles.total, 661.0);
    // The bounds: no tiling level, so no transfer term; the roofline is
    // the MACs at the nominal peak, the bound the FC's model without its call.
    assert_eq!(s.roofline_cycles, 160.0);
    assert_eq!(s.bound_cycles, 641.0);
    // It moved because it is cheaper: the cluster pays a call and DMAs.
    let cluster = alternative(&l, "cluster");
    assert!(cluster > 661.0 + 550.0, "cluster {cluster}");
    assert_eq!(alternative(&l, "fc"), 661.0);
}

#[test]
fn large_dense_stays_on_the_cluster() {
    let l = only_layer(&dense_graph(640, 128));
    assert_eq!((l.unit.as_str(), l.kernel.as_deref()), ("cluster", Some("cluster_linear")));
    let fc = alternative(&l, "fc");
    let cluster = alternative(&l, "cluster");
    // 81920 MACs: 20480 cycles of compute alone on the FC.
    assert!(fc > 20480.0 && fc > 2.0 * cluster, "fc {fc}, cluster {cluster}");
}

#[test]
fn large_addition_stays_on_the_cluster() {
    let l = only_layer(&add_graph(16, 16, 32));
    assert_eq!((l.unit.as_str(), l.kernel.as_deref()), ("cluster", Some("cluster_add")));
    // 8192 elements: 2048 cycles of compute, 3 * 8192 B of L2 traffic
    // (12288 cycles at 2 B/cycle) and the call on the FC.
    assert_eq!(alternative(&l, "fc"), 2048.0 + 12288.0 + 20.0);
    assert!(alternative(&l, "cluster") < 2048.0 + 12288.0);
}

//! The compiler proper: graph IR, model importers, reference interpreter,
//! pattern matching, cost model, schedule search (spread over the cores by
//! [`par`]), memory planning and the C emitter. It accepts a target only as a
//! validated [`HwModel`], the proof that the `.hwm` file checked.

pub mod compile;
pub mod cost;
pub mod dump;
pub mod emit;
pub mod frontend;
pub mod interp;
pub mod ir;
pub mod layout;
pub mod lower;
pub mod mapping;
pub mod par;
pub mod passes;
pub mod plan;
pub mod schedule;
pub mod spill;

pub use match_dsl::HwModel;

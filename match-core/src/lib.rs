//! The compiler proper: graph IR, model importers, reference interpreter,
//! pattern matching, cost model, schedule search, memory planning and the
//! C emitter. It accepts a target only as a validated [`HwModel`], the
//! proof that the `.hwm` file checked.
//!
//! This issue (the `.hwm` language) provides the model side; the stages
//! above arrive with the model-import, end-to-end and mapping issues.

pub use match_dsl::HwModel;

//! Shared helpers of the end-to-end tests.
//!
//! Tests that need the real models in `../shared/models` (relative to the
//! repository root) call [`shared_models`]: on a user's fresh clone without
//! that folder they say so and skip; with `MATCH_REQUIRE_SHARED=1` (set by
//! `.ci/run`) a missing folder is a failure instead.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_path_buf()
}

/// `../shared/models`, or `None` (after printing why) when it is absent and
/// not required.
pub fn shared_models() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/models");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("MATCH_REQUIRE_SHARED").is_ok_and(|v| v == "1") {
        panic!("MATCH_REQUIRE_SHARED=1 but {} does not exist", dir.display());
    }
    eprintln!("skipping: {} not found (set MATCH_REQUIRE_SHARED=1 to fail instead)", dir.display());
    None
}

pub mod diff;
pub mod e2e;
pub mod fixtures;
pub mod gen;
pub mod golden;

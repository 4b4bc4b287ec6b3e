//! Compile-time behaviour of `include_hwm!` and `hwm!`: valid targets
//! compile and give typed items; each kind of invalid target is a compile
//! error at the right place, with the rendered diagnostic.
//!
//! Run `TRYBUILD=overwrite cargo test -p match-macros --test ui` after a
//! deliberate change of a message, then read every changed `.stderr`.
//!
//! `include_hwm!` paths in these cases are relative to the project trybuild
//! generates, `<target dir>/tests/trybuild/match-macros/`, so they reach
//! this folder with `../../../../match-macros/`: the cases assume the
//! workspace's default target directory.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}

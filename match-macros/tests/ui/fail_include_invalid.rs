mod t {
    match_macros::include_hwm!("../../../../match-macros/tests/ui/hwm/unknown_memory.hwm");
}

fn main() {}

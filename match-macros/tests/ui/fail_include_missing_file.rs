mod t {
    match_macros::include_hwm!("no_such_target.hwm");
}

fn main() {}

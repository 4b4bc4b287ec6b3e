mod t {
    match_macros::include_hwm!(gap9);
}

fn main() {}

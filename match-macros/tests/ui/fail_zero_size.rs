mod t {
    match_macros::hwm! {
        target t {
            clock 100 MHz
            memory L2 { size 0 kB }
            unit cpu { host; macs 1/cycle; compute_in L2 }
        }
    }
}

fn main() {}

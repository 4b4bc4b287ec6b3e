mod t {
    match_macros::hwm! {
        target t {
            clock 100 MHz
            memory L2 { size 512 kB }
            unit cpu { macs 1/cycle; compute_in L2 }
        }
    }
}

fn main() {}

mod t {
    match_macros::hwm! {
        target t {
            clock 100 MHz
            memory L2 { size 512 kB }
            unit cpu { host; macs 1/cycle; compute_in L2 }
            unit big_core { macs 2/cycle; compute_in L2 }
            unit bigCore { macs 4/cycle; compute_in L2 }
        }
    }
}

fn main() {}

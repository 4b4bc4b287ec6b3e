mod t {
    match_macros::hwm! {
        target t {
            clock 100 MHz
            memory L2 { size 512 kB }
            unit cpu { host; macs 1/cycle; compute_in L2 }
            pattern conv = conv2d >> requant
            offload conv to cpu where KK > 16 call "cpu_conv"
        }
    }
}

fn main() {}

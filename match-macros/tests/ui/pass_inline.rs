//! `hwm!`: the language inline, with newline-terminated properties,
//! comments and `;`, gives the same model as the same text checked at run
//! time.

mod demo {
    match_macros::hwm! {
        target demo {
            clock 100 MHz // a comment
            /* a block comment */
            memory L2 { size 512 kB }
            memory L1 {
                size 128 KiB
                bandwidth 8 B/cycle
            }
            unit cpu { host; macs 1/cycle; compute_in L2 }
            unit cluster {
                cores 8
                macs 16/cycle
                compute_in L1
            }
            pattern conv = conv2d >> bias? >> requant >> (relu | clip)?
            offload conv to cluster
                where K % 4 == 0 and FY in {1, 3}
                call "cluster_conv"
            offload conv to cpu call "cpu_conv"
        }
    }
}

mod one_line {
    match_macros::hwm!(target t { clock 1 GHz; memory m { size 1 kB }; unit u { host; macs 2/cycle; compute_in m } });
}

const SOURCE: &str = r#"
        target demo {
            clock 100 MHz
            memory L2 { size 512 kB }
            memory L1 {
                size 128 KiB
                bandwidth 8 B/cycle
            }
            unit cpu { host; macs 1/cycle; compute_in L2 }
            unit cluster {
                cores 8
                macs 16/cycle
                compute_in L1
            }
            pattern conv = conv2d >> bias? >> requant >> (relu | clip)?
            offload conv to cluster
                where K % 4 == 0 and FY in {1, 3}
                call "cluster_conv"
            offload conv to cpu call "cpu_conv"
        }
"#;

fn main() {
    use demo::{Memory, Unit};
    assert_eq!(Memory::ALL, &[Memory::L2, Memory::L1]);
    assert_eq!(Memory::L1.size(), 128 * 1024);
    assert_eq!(Unit::Cluster.cores(), 8);
    assert_eq!(Unit::Cluster.compute_in(), Memory::L1);
    assert_eq!(Unit::HOST, Unit::Cpu);
    assert_eq!(demo::PATTERNS[0].sequences.len(), 6);
    assert_eq!(demo::OFFLOADS[0].kernel, "cluster_conv");
    assert_eq!(demo::model(), match_dsl::check(SOURCE, "demo.hwm").expect("checks"));

    assert_eq!(one_line::CLOCK_HZ, 1_000_000_000);
    assert_eq!(one_line::Unit::U.macs_per_cycle(), 2.0);
    assert_eq!(one_line::Memory::M.size(), 1000);
}

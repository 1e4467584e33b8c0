//! keel-microbench: runs ONE named micro benchmark (setup, then one
//! measured call), for callgrind to count. `--list` names them all.
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect=keel_microbench_measured \
//!     target/release/keel-microbench engine_put_1000
//! ```
//! `benches/instructions.sh` does that for every benchmark.

use keel_benches::micro::{find, run, BENCHMARKS};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for benchmark in BENCHMARKS {
                println!("{}\t{}", benchmark.name, benchmark.about);
            }
        }
        [name] => match find(name) {
            Some(benchmark) => run(benchmark),
            None => {
                eprintln!("keel-microbench: no benchmark named {name:?} (try --list)");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("usage: keel-microbench NAME | --list");
            std::process::exit(2);
        }
    }
}

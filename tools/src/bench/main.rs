//! keel-bench's entry point: parse the flags, run, exit with the run's
//! status (see the `keel_tools` library for the design).

fn main() {
    let args = match keel_tools::args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    std::process::exit(keel_tools::run::run(args));
}

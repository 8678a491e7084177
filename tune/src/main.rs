//! The `tune` command.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(hyperfleet_tune::cli::main(args));
}

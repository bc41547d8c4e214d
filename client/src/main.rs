//! `burrow`: the Burrow agent.

fn main() {
    let code = burrow::run_cli(std::env::args().skip(1).collect());
    std::process::exit(code);
}

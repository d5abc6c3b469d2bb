//! Runs the sim standalone, with the same flags as `disagg sim`, until the `disagg` binary wires
//! it in: `cargo run -p disagg-sim --example sim -- --role both --itl 5ms`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "sim",
    about = "A simulated LLM engine (TensorRT-LLM, vLLM and SGLang dialects)"
)]
struct Cli {
    #[command(flatten)]
    sim: disagg_sim::SimArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = disagg_sim::run(cli.sim).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

//! The standalone bench without building the whole `disagg` binary: the same flags and the same
//! library call as `disagg bench`. Exits 0 when the results are valid, 1 when not, 2 on bad
//! settings. It uses the binary's allocator (mimalloc; see `crates/disagg/src/main.rs`), so what
//! it measures is what `disagg bench` does.

use clap::Parser as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    bench: disagg_bench::BenchArgs,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = match rt.block_on(disagg_bench::run(cli.bench)) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e @ disagg_bench::BenchError::Config(_)) => {
            eprintln!("error: {e}");
            2
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    std::process::exit(code);
}

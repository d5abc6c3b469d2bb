use disagg_core::exit;

/// The load generator: closed-loop sweeps with benchmark_serving's metrics, text summary and
/// JSON keys. Exits 1 when the results are not valid (failed requests above --max-failure-rate,
/// zero generated tokens), 2 on bad flags, datasets or tokenizers.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    bench: disagg_bench::BenchArgs,
}

pub fn main(a: Args) -> i32 {
    match super::block_on(disagg_bench::run(a.bench)) {
        Ok(true) => exit::PASS,
        Ok(false) => exit::TEST_FAILED,
        Err(
            e @ (disagg_bench::BenchError::Config(_)
            | disagg_bench::BenchError::Dataset { .. }
            | disagg_bench::BenchError::Tokenizer { .. }),
        ) => {
            // Bad input: nothing was measured.
            eprintln!("error: {e}");
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::TEST_FAILED
        }
    }
}

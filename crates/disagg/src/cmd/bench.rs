use disagg_core::exit;

/// The load generator: closed-loop sweeps with benchmark_serving's metrics, text summary and
/// JSON keys. Exits 1 when the results are not valid (failed requests above --max-failure-rate,
/// zero generated tokens), 2 on bad flags, datasets or tokenizers, 128 + the signal when one
/// stopped it (130 for SIGINT; the finished points are written to --output-dir, marked
/// interrupted).
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
        // The finished points are written and said; 128 + the signal, as the shell reports it.
        Err(disagg_bench::BenchError::Interrupted { signal, .. }) => 128 + signal,
        Err(e) => {
            eprintln!("error: {e}");
            exit::TEST_FAILED
        }
    }
}

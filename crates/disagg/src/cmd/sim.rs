use disagg_core::exit;

/// The simulated engine: an OpenAI-compatible context, generation or aggregated server speaking
/// the TensorRT-LLM, vLLM or SGLang dialect, with a real KV hand-off between sims, a timing model
/// (simple, continuous batching, or fitted to H100 data) and scripted faults.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    sim: disagg_sim::SimArgs,
}

pub fn main(a: Args) -> i32 {
    // One thread: it only accepts (and runs the batched scheduler); the sim serves from its
    // own threads (`--threads`), as measured.
    match super::block_on_with(1, disagg_sim::run(a.sim)) {
        Ok(()) => exit::PASS,
        Err(e) => {
            eprintln!("error: {e}");
            exit::TEST_FAILED
        }
    }
}

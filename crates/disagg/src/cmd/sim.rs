use disagg_core::exit;

/// The simulated engine: an OpenAI-compatible server speaking TensorRT-LLM's disaggregated
/// dialect (context_only, generation_only, aggregated), with scripted timing and faults.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    sim: disagg_sim::SimArgs,
}

pub fn main(a: Args) -> i32 {
    match super::block_on(disagg_sim::run(a.sim)) {
        Ok(()) => exit::PASS,
        Err(e) => {
            eprintln!("error: {e}");
            exit::TEST_FAILED
        }
    }
}

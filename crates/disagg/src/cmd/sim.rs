use disagg_core::exit;

/// The simulated engine: an OpenAI-compatible context, generation or aggregated server speaking
/// the TensorRT-LLM, vLLM or SGLang dialect (SGLang's also with its native /generate and
/// batched prompts), with a real KV hand-off between sims, a timing model (simple, continuous
/// batching, or fitted to H100 data) and scripted faults.
///
/// After `--`, a real engine's argv (`vllm serve ...`, `python3 -m sglang.launch_server ...`,
/// `trtllm-serve ...`): the sim stands in for that engine, taking its role, dialect, address,
/// served model name and bootstrap port from it as the engine would (vLLM's NIXL side channel
/// from VLLM_NIXL_SIDE_CHANNEL_HOST/PORT, as vLLM does), and ignoring flags it has no use for.
/// The flags before `--` still set the sim's timing and faults.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    sim: disagg_sim::SimArgs,
    /// A real engine's argv to stand in for.
    #[arg(last = true, value_name = "ENGINE ARGV")]
    engine_argv: Vec<String>,
}

pub fn main(a: Args) -> i32 {
    let sim = if a.engine_argv.is_empty() {
        a.sim
    } else {
        match disagg_sim::stand_in(a.sim, &a.engine_argv) {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    };
    // One thread: it only accepts (and runs the batched scheduler); the sim serves from its
    // own threads (`--threads`), as measured.
    match super::block_on_with(1, disagg_sim::run(sim)) {
        Ok(()) => exit::PASS,
        Err(e) => {
            eprintln!("error: {e}");
            exit::TEST_FAILED
        }
    }
}

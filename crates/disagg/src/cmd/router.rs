use disagg_core::exit;

/// The PD router: sends each request through a context (prefill) and a generation (decode)
/// server and relays the stream, in the TensorRT-LLM, vLLM or SGLang dialect, with per-group
/// policies, retries, health checks, deadlines, /workers and /metrics. Serves
/// /v1/completions and /v1/chat/completions, and in the SGLang dialect SGLang's native
/// /generate. Reads TRT-LLM's server_config.yaml, or takes the workers as flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    router: disagg_router::RouterArgs,
}

pub fn main(a: Args) -> i32 {
    match super::block_on(disagg_router::run(a.router)) {
        Ok(()) => exit::PASS,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_usage() {
                exit::USAGE
            } else {
                exit::TEST_FAILED
            }
        }
    }
}

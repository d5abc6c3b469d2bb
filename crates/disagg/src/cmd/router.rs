use disagg_core::exit;

/// The PD router: sends each request to a context server, then a generation server, and relays
/// the stream (TensorRT-LLM dialect; reads TRT-LLM's server_config.yaml).
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
            exit::TEST_FAILED
        }
    }
}

use std::path::PathBuf;

use disagg_core::exit;

/// Convert another harness's config into a case; whatever does not map is reported.
///
/// The case goes to stdout (or --output); each thing not carried over as it was is listed on
/// stderr and, as comments, at the top of the case. A case that converts but does not validate
/// (say its requests do not fit its engines' limits) is written all the same, and the error
/// points into it; exit 2.
///
/// trtllm: `$LLM_MODELS_ROOT` resolves `dataset_file` and `speculative_model` as TensorRT-LLM
/// does; the files it reads from its repo root (`extra_llm_api_config_path`, merged into the
/// engine options, and a `moe_config.load_balancer` file) are looked for relative to the current
/// directory, so run the import from a TensorRT-LLM checkout to resolve them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The format of FILE.
    #[arg(value_enum)]
    format: Format,
    /// The config to convert.
    file: PathBuf,
    /// Write the case here instead of stdout (its folder is made when missing).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Import it as TensorRT-LLM's gen_only test runs it: the first concurrency only, one
    /// round, a warm-up request only when that concurrency is 1, and on the GEN workers
    /// TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP=1 and TLLM_BENCHMARK_REQ_QUEUES_SIZE=<that
    /// concurrency, capped at the GEN server's max_batch_size (times its tp with attention
    /// DP)> (also when the config's benchmark.mode is gen_only).
    #[arg(long)]
    gen_only: bool,
    /// Read `benchmark.concurrency_list` as each generation server's concurrency, as
    /// TensorRT-LLM's Slurm benchmark scripts do (examples/disaggregated/slurm's
    /// run_benchmark.sh multiplies every value by `hardware.num_gen_servers`). Without it the
    /// list is the whole deployment's, as TensorRT-LLM's perf-sanity harness reads it.
    #[arg(long)]
    per_gen_server_concurrency: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// A TensorRT-LLM perf-sanity disaggregated config.
    Trtllm,
}

pub fn main(a: Args) -> i32 {
    let text = match std::fs::read_to_string(&a.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", a.file.display());
            return exit::USAGE;
        }
    };
    let name = a
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "imported".into());
    let imported = match a.format {
        Format::Trtllm => {
            let opts = disagg_core::import::trtllm::Options {
                gen_only: a.gen_only,
                per_gen_server_concurrency: a.per_gen_server_concurrency,
                ..disagg_core::import::trtllm::Options::from_env()
            };
            disagg_core::import::trtllm::convert_with(&text, &name, &opts)
        }
    };
    let imported = match imported {
        Ok(i) => i,
        // Converted, but the case does not validate (e.g. its requests do not fit its
        // engines' limits): write it anyway, so the fix is made where the error points.
        Err(disagg_core::import::ImportError::Invalid {
            mut error,
            case_yaml,
        }) => {
            // Where -o cannot be written, the case is printed instead: neither it nor the
            // error that points into it is lost.
            let written = a
                .output
                .as_ref()
                .filter(|p| write_case(p, &case_yaml).is_ok());
            let at = match written {
                // Its lines are the written file's: name that file.
                Some(p) => {
                    error.file = p.clone();
                    p.display().to_string()
                }
                None => {
                    print!("{case_yaml}");
                    "the case printed above".to_string()
                }
            };
            eprintln!(
                "error: {} was converted, but the case does not validate; it is written to {at} \
                 (the lines below are its lines):\n{error}",
                a.file.display()
            );
            return exit::USAGE;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", a.file.display());
            return exit::USAGE;
        }
    };
    for n in &imported.notes {
        eprintln!("not carried over: {n}");
    }
    match &a.output {
        Some(p) => {
            if let Err(code) = write_case(p, &imported.case_yaml) {
                return code;
            }
            eprintln!("wrote {}", p.display());
        }
        None => print!("{}", imported.case_yaml),
    }
    exit::PASS
}

/// Writes the case to `-o`'s path, making its folder when missing; where it cannot, says so
/// with the fix: exit 2, as for any option that cannot be used.
fn write_case(p: &std::path::Path, text: &str) -> Result<(), i32> {
    let written = match p.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| std::fs::write(p, text)),
        None => std::fs::write(p, text),
    };
    written.map_err(|e| {
        eprintln!(
            "error: --output {}: cannot write the case there: {e}\nhint: give -o a path in a \
             writable folder, or leave it out to print the case to stdout",
            p.display()
        );
        exit::USAGE
    })
}

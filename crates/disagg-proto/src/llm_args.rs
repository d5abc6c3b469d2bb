//! The top-level keys trtllm-serve's extra-options YAML may hold: the fields of TensorRT-LLM's
//! `TorchLlmArgs` (with `BaseLlmArgs`) in its releases from before 1.0 to the 1.3/1.4 line, read from
//! `tensorrt_llm/llmapi/llm_args.py`, plus what `trtllm-serve` itself takes out of the file first
//! (`disagg_cluster`, `router`, `hf_revision`) and the worker key its disaggregated harness writes.
//! The LLM constructor refuses any other key before it starts ("LLM got invalid argument"), so a
//! stand-in refuses it too. The union over releases: a key of any release passes.

pub const LLM_ARGS: &[&str] = &[
    "_mpi_session",
    "allreduce_strategy",
    "attention_dp_config",
    "attn_backend",
    "autotuner_enabled",
    "backend",
    "batch_wait_max_tokens_ratio",
    "batch_wait_timeout_iters",
    "batch_wait_timeout_ms",
    "batched_logits_processor",
    "batching_type",
    "build_config",
    "cache_transceiver_config",
    "checkpoint_format",
    "checkpoint_io_policy",
    "checkpoint_loader",
    "context_parallel_size",
    "cp_config",
    "cuda_graph_batch_sizes",
    "cuda_graph_config",
    "cuda_graph_max_batch_size",
    "cuda_graph_padding_enabled",
    "custom_tokenizer",
    "decoding_config",
    "disable_mm_encoder",
    "disable_overlap_scheduler",
    "disagg_cluster",
    "dtype",
    "dwdp_config",
    "enable_attention_dp",
    "enable_autotuner",
    "enable_build_cache",
    "enable_chunked_prefill",
    "enable_early_first_token_response",
    "enable_encoder_decoder_mixed_cuda_graph",
    "enable_energy_metrics",
    "enable_in_graph_sampling",
    "enable_iter_perf_stats",
    "enable_iter_req_stats",
    "enable_layerwise_nvtx_marker",
    "enable_lm_head_tp_in_adp",
    "enable_lora",
    "enable_low_latency_host_dispatch",
    "enable_min_latency",
    "enable_mla_skip_correction",
    "enable_prompt_adapter",
    "enable_resource_governor",
    "enable_speculative_beam_history_d2h",
    "enable_trtllm_sampler",
    "encode_only",
    "encoder_cuda_graph_config",
    "encoder_max_batch_size",
    "encoder_max_num_tokens",
    "env_overrides",
    "extended_runtime_perf_knob_config",
    "fail_fast_on_attention_window_too_large",
    "force_dynamic_quantization",
    "garbage_collection_gen0_threshold",
    "gather_generation_logits",
    "generation_config",
    "gms_config",
    "gpus_per_node",
    "guided_decoding_backend",
    "hf_revision",
    "internal_request_auth_key",
    "iter_stats_max_iterations",
    "kv_cache_compression_config",
    "kv_cache_config",
    "kv_cache_dtype",
    "kv_connector_config",
    "layer_wise_benchmarks_config",
    "load_format",
    "lora_config",
    "max_batch_size",
    "max_beam_width",
    "max_cpu_loras",
    "max_input_len",
    "max_lora_rank",
    "max_loras",
    "max_num_tokens",
    "max_prompt_adapter_token",
    "max_seq_len",
    "max_stats_len",
    "mixed_sampler",
    "mla_skip_correction_threshold",
    "mm_encoder_only",
    "model",
    "model_kwargs",
    "moe_backend",
    "moe_cluster_parallel_size",
    "moe_config",
    "moe_expert_parallel_size",
    "moe_load_balancer",
    "moe_max_num_tokens",
    "moe_tensor_parallel_size",
    "mpi_session",
    "multimodal_config",
    "mx_config",
    "normalize_log_probs",
    "num_postprocess_workers",
    "num_serve_frontends",
    "nvfp4_gemm_config",
    "orchestrator_type",
    "otlp_traces_endpoint",
    "peft_cache_config",
    "perf_metrics_max_requests",
    "perf_metrics_output_dir",
    "pipeline_parallel_size",
    "post_processor_hook",
    "postprocess_tokenizer_dir",
    "pp_partition",
    "prefill_capture_num_tokens",
    "prefill_cuda_graph_backend",
    "print_iter_log",
    "prometheus_metrics_config",
    "pytorch_backend_config",
    "quant_config",
    "ray_placement_config",
    "ray_worker_extension_cls",
    "ray_worker_nsight_options",
    "reasoning_parser",
    "reorder_policy_config",
    "request_stats_max_iterations",
    "return_perf_metrics",
    "revision",
    "router",
    "sampler_force_async_worker",
    "sampler_type",
    "scheduler_config",
    "skip_tokenizer_init",
    "sleep_config",
    "sparse_attention_config",
    "speculative_config",
    "stream_interval",
    "telemetry_config",
    "tensor_parallel_size",
    "tokenizer",
    "tokenizer_mode",
    "tokenizer_revision",
    "torch_compile_config",
    "trust_remote_code",
    "use_cuda_graph",
    "use_cute_dsl_bf16_bmm",
    "use_cute_dsl_bf16_gemm",
    "use_cute_dsl_blockscaling_bmm",
    "use_cute_dsl_blockscaling_mm",
    "use_fine_grained_sync",
];

/// The options `trtllm-serve serve` (a click command) has taken, in TensorRT-LLM's releases from
/// its single-command days (0.16) to the 1.3/1.4 line, read from
/// `tensorrt_llm/commands/serve.py` and its API-stability record
/// (`tests/unittest/api_stability/references/trtllm_serve_cli.yaml`), plus the few that forks
/// in use add. Click refuses any other ("No such option"), so a stand-in refuses it too. The
/// union over releases: an option of any release passes.
pub const SERVE_OPTIONS: &[&str] = &[
    "--agent_percentage",
    "--agent_types",
    "--backend",
    "--chat_template",
    "--cluster_size",
    "--config",
    "--context_parallel_size",
    "--cp_size",
    "--custom_module_dirs",
    "--custom_tokenizer",
    "--disagg_cluster_uri",
    "--ep_size",
    "--extra_llm_api_options",
    "--extra_visual_gen_options",
    "--free_gpu_memory_fraction",
    "--generation-config",
    "--gpus_per_node",
    "--hf_revision",
    "--host",
    "--kv_cache_dtype",
    "--kv_cache_free_gpu_memory_fraction",
    "--log_level",
    "--max_batch_size",
    "--max_beam_width",
    "--max_num_tokens",
    "--max_seq_len",
    "--media_io_kwargs",
    "--metadata_server_config_file",
    "--middleware",
    "--moe_cluster_parallel_size",
    "--moe_expert_parallel_size",
    "--num_input_processor_workers",
    "--num_media_load_workers",
    "--num_postprocess_workers",
    "--num_serve_frontends",
    "--otlp_traces_endpoint",
    "--pipeline_parallel_size",
    "--port",
    "--post_processor_hook",
    "--pp_size",
    "--reasoning_parser",
    "--report_addr",
    "--revision",
    "--served_model_name",
    "--server_role",
    "--tensor_parallel_size",
    "--tokenizer",
    "--tool_parser",
    "--tp_size",
    "--video_pruning_rate",
    "--visual_gen_args",
    // Forks' (value-taking there).
    "--disable_overlap_scheduler",
    "--event_buffer_max_size",
    "--guided_decoding_backend",
    "--host_cache_size",
    "--served-model-name",
    "--tool_call_parser",
];

/// The options of [`SERVE_OPTIONS`]' releases that take no value (click's `is_flag`), with the
/// forks' own.
pub const SERVE_SWITCHES: &[&str] = &[
    "--allow_request_chat_template",
    "--enable_attention_dp",
    "--enable_chunked_prefill",
    "--enable_visual_gen",
    "--fail_fast_on_attention_window_too_large",
    "--grpc",
    "--no-telemetry",
    "--telemetry",
    "--trust_remote_code",
    // Forks'.
    "--disable-xqa-jit",
    "--enable-xqa-jit",
    "--enable_auto_tool_choice",
];

/// The sections of the extra-options YAML whose settings models refuse a key they do not have
/// (pydantic's `extra="forbid"`: "Extra inputs are not permitted") from TensorRT-LLM 1.0 on,
/// each with the keys any release takes, read from `tensorrt_llm/llmapi/llm_args.py` (and
/// `_torch/peft/lora/config.py`); a dotted section is one inside another. Releases before 1.0
/// dropped unknown keys of these sections silently; their own names (`torch_compile_config`'s
/// `torch_compile_*`, `cache_transceiver_config.max_num_tokens`, `kv_cache_config.
/// onboard_blocks`) are in the lists, so that a file written for them passes. Sections chosen
/// by a tag (`speculative_config`'s `decoding_type`, `sparse_attention_config`'s `algorithm`)
/// and `cp_config` (a plain dict before 1.1) are not checked.
pub const NESTED_ARGS: &[(&str, &[&str])] = &[
    (
        "kv_cache_config",
        &[
            "attention_dp_events_gather_period_ms",
            "avg_seq_len",
            "block_reuse_config",
            "copy_on_partial_reuse",
            "cross_kv_cache_fraction",
            "disk_cache_path",
            "disk_cache_size",
            "disk_prefetch_num_reqs",
            "dtype",
            "enable_block_reuse",
            "enable_kv_pool_rebalance",
            "enable_partial_reuse",
            "enable_swa_scratch_reuse",
            "event_buffer_max_size",
            "fp8_context_mla_kv_len_cap",
            "free_gpu_memory_fraction",
            "host_cache_size",
            "iteration_stats_interval",
            "kv_cache_event_hash_algo",
            "kv_events_config",
            "kv_pool_rebalance_check_interval",
            "kv_pool_rebalance_cooldown_secs",
            "kv_pool_rebalance_min_sampled_kv_caches",
            "kv_pool_rebalance_moving_average_decay",
            "kv_pool_rebalance_ratio_threshold",
            "kv_pool_rebalance_target_ratio_update_interval",
            "mamba_ssm_cache_dtype",
            "mamba_ssm_philox_rounds",
            "mamba_ssm_stochastic_rounding",
            "mamba_state_cache_interval",
            "mamba_state_config",
            "max_attention_window",
            "max_gpu_total_bytes",
            "max_tokens",
            "max_util_for_resume",
            "onboard_blocks",
            "pool_ratio",
            "secondary_offload_min_priority",
            "sink_token_length",
            "tokens_per_block",
            "use_kv_cache_manager_v2",
            "use_uvm",
        ],
    ),
    (
        "kv_cache_config.kv_events_config",
        &[
            "buffer_steps",
            "enable_kv_cache_events",
            "endpoint",
            "hwm",
            "max_queue_size",
            "publisher",
            "replay_endpoint",
            "topic",
        ],
    ),
    (
        "kv_cache_config.block_reuse_config",
        &["max_num_turns", "policy"],
    ),
    (
        "kv_cache_config.mamba_state_config",
        &[
            "additional_snapshot_offsets_from_end",
            "additional_snapshot_offsets_from_start",
            "enable_branch_snapshot",
            "periodic_snapshot_interval",
        ],
    ),
    (
        "cache_transceiver_config",
        &[
            "backend",
            "enable_pipelined_transfer",
            "kv_cache_bounce_size_mb",
            "kv_transfer_poll_interval_ms",
            "kv_transfer_sender_future_timeout_ms",
            "kv_transfer_timeout_ms",
            "max_num_tokens",
            "max_tokens_in_buffer",
            "transceiver_runtime",
        ],
    ),
    (
        "cuda_graph_config",
        &[
            "batch_sizes",
            "enable_padding",
            "max_batch_size",
            "max_num_token",
            "max_seq_len",
            "mode",
            "num_tokens",
            "seq_lens",
        ],
    ),
    (
        "scheduler_config",
        &[
            "capacity_scheduler_policy",
            "context_chunking_policy",
            "dynamic_batch_config",
            "enable_prefix_aware_scheduling",
            "use_python_scheduler",
            "waiting_queue_policy",
        ],
    ),
    (
        "scheduler_config.dynamic_batch_config",
        &[
            "dynamic_batch_moving_average_window",
            "enable_batch_size_tuning",
            "enable_max_num_tokens_tuning",
        ],
    ),
    (
        "moe_config",
        &[
            "backend",
            "disable_finalize_fusion",
            "load_balancer",
            "max_num_tokens",
            "use_low_precision_moe_combine",
        ],
    ),
    (
        "moe_config.load_balancer",
        &[
            "initial_global_assignments",
            "layer_updates_per_iter",
            "num_slots",
        ],
    ),
    (
        "attention_dp_config",
        &[
            "batching_wait_iters",
            "enable_balance",
            "enable_kv_cache_aware_routing",
            "kv_cache_routing_account_for_in_transfer",
            "kv_cache_routing_cold_start_warmup",
            "kv_cache_routing_conversation_affinity",
            "kv_cache_routing_fair_share_multiplier",
            "kv_cache_routing_load_balance_weight",
            "kv_cache_routing_match_rate_threshold",
            "kv_cache_routing_max_sessions",
            "kv_cache_routing_new_conv_placement",
            "timeout_iters",
        ],
    ),
    (
        "torch_compile_config",
        &[
            "capture_num_tokens",
            "enable_fullgraph",
            "enable_inductor",
            "enable_piecewise_cuda_graph",
            "enable_userbuffers",
            "max_num_streams",
            "torch_compile_enable_userbuffers",
            "torch_compile_fullgraph",
            "torch_compile_inductor_enabled",
            "torch_compile_piecewise_cuda_graph",
        ],
    ),
    (
        "peft_cache_config",
        &[
            "device_cache_percent",
            "host_cache_size",
            "lora_prefetch_dir",
            "max_adapter_size",
            "max_pages_per_block_device",
            "max_pages_per_block_host",
            "num_copy_streams",
            "num_device_module_layer",
            "num_ensure_workers",
            "num_host_module_layer",
            "num_put_workers",
            "optimal_adapter_size",
        ],
    ),
    (
        "kv_connector_config",
        &[
            "connector",
            "connector_module",
            "connector_scheduler_class",
            "connector_worker_class",
            "server_url",
        ],
    ),
    (
        "lora_config",
        &[
            "cuda_graph_specialize_lora",
            "lora_ckpt_source",
            "lora_dir",
            "lora_target_modules",
            "max_cpu_loras",
            "max_lora_rank",
            "max_loras",
            "overlap_lora_and_base",
            "swap_gate_up_proj",
            "swap_gate_up_proj_lora_b_weight",
            "trtllm_modules_to_hf_modules",
        ],
    ),
];

/// Every key of `doc` (an extra-options mapping) inside a section of [`NESTED_ARGS`] that no
/// release takes there: (the section's dotted path, the key, the keys the section takes).
pub fn unknown_nested_keys(
    doc: &serde_yaml_ng::Mapping,
) -> Vec<(&'static str, &str, &'static [&'static str])> {
    let mut out = Vec::new();
    for &(section, known) in NESTED_ARGS {
        let mut node = Some(doc);
        for part in section.split('.') {
            node = node.and_then(|m| m.get(part)).and_then(|v| v.as_mapping());
        }
        let Some(m) = node else { continue };
        for k in m.keys().filter_map(|k| k.as_str()) {
            if !known.contains(&k) {
                out.push((section, k, known));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nested_section_is_a_known_key_and_sorted() {
        for (section, known) in NESTED_ARGS {
            let top = section.split('.').next().unwrap();
            assert!(LLM_ARGS.contains(&top), "{section}");
            let mut sorted = known.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(&sorted, known, "{section}");
            if let Some((parent, child)) = section.rsplit_once('.') {
                let (_, theirs) = NESTED_ARGS.iter().find(|(s, _)| *s == parent).unwrap();
                assert!(theirs.contains(&child), "{section}");
            }
        }
    }

    #[test]
    fn unknown_nested_keys_are_found_at_every_depth() {
        let doc: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(
            "kv_cache_config:\n  free_gpu_mem_fraction: 0.5\n  enable_block_reuse: false\n  \
             kv_events_config: {enable_kv_cache_event: true}\n\
             cuda_graph_config: null\nspeculative_config: {decoding_type: MTP, anything: 1}\n\
             moe_config: {load_balancer: /path/to/lb.yaml}\n",
        )
        .unwrap();
        let found: Vec<(&str, &str)> = unknown_nested_keys(&doc)
            .into_iter()
            .map(|(s, k, _)| (s, k))
            .collect();
        assert_eq!(
            found,
            [
                ("kv_cache_config", "free_gpu_mem_fraction"),
                ("kv_cache_config.kv_events_config", "enable_kv_cache_event"),
            ]
        );
    }
}

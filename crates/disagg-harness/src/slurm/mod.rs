//! The Slurm launcher: the same plan and the same supervisor, with `srun` steps for processes.
//!
//! ```text
//! disagg run --launcher slurm ─▶ run folder, plan.json, job.sbatch ─▶ sbatch --parsable
//!        │ follows with squeue, then sacct (accounting may be absent) │
//!        │                                     batch script: setup step per node → install.log
//!        │                                     exec disagg supervise --executor slurm
//!        │                                          │ SlurmExecutor: one srun step per role
//!        ▼                                          ▼
//!   after the job: reports from the run folder (TIMEOUT when Slurm's time limit ended it)
//! ```
//!
//! Invariants: every value from the case that enters the batch script goes through
//! [`quote::sh_quote`]; the router and benchmark steps never see MPI variables; a failed run
//! cancels its own job.

pub mod executor;
pub mod job;
pub mod quote;
pub mod script;
pub mod steps;
pub mod submit;
pub mod supervise;

pub use executor::SlurmExecutor;
pub use quote::sh_quote;

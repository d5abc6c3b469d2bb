//! The case file, its validation, config-name derivation and the plan.
//!
//! ```text
//! case.yaml ──load──▶ RawCase ──validate──▶ Case ──plan──▶ Plan
//! ```
//!
//! Loading is strict: unknown keys, wrong types and semantic mistakes (inverted deadlines,
//! unsafe names) all become a [`CaseError`] that names the file, the line and the key, says what
//! was expected and carries a `hint:`. Nothing here touches the file system beyond reading the
//! case file; the harness owns every write.

pub mod case;
pub mod engines;
pub mod error;
pub mod exit;
pub mod fit;
pub mod import;
pub mod load;
pub mod locate;
pub mod name;
pub mod plan;
pub mod slurm;
pub mod sweep;

pub use case::Case;
pub use error::CaseError;
pub use load::{load_case, parse_case};
pub use name::ConfigName;
pub use plan::{Plan, RoleName, RolePlan};

/// Run a command as a subreaper that stops everything it started when stopped itself (what
/// `disagg run` runs a case's `setup` under; internal).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    argv: Vec<String>,
}

pub fn main(a: Args) -> i32 {
    disagg_harness::role::guard(&a.argv)
}

//! `engine: command`: any argv, with placeholders. The role picks `{port}` (and
//! `{bootstrap_port}`), starts it, and waits for `/health` on that port.

use serde::{Deserialize, Serialize};

use super::{Built, WorkerSpec, fill, port_launch};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandArgs {
    /// The engine's argv; `{host}`, `{port}`, `{bootstrap_port}`, `{side_channel_port}`,
    /// `{publish_host}`, `{hostname}` (the node the rank runs on), `{gpus}`, `{role}`, `{model}`,
    /// `{served_model}` and `{disagg}` (this binary) are filled in.
    pub argv: Vec<String>,
    /// The address it binds, as `{host}`. Default: `127.0.0.1` when the workers fit on one
    /// node, `0.0.0.0` (publishing the node's hostname) when they span several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// MPI ranks of one server's step (1 unless the command is an MPI program).
    #[serde(default = "one")]
    pub ranks: u32,
}

/// No argv: `check` refuses it, naming `engine_args.argv`.
impl Default for CommandArgs {
    fn default() -> Self {
        Self {
            argv: Vec::new(),
            host: None,
            ranks: one(),
        }
    }
}

fn one() -> u32 {
    1
}

pub fn build(a: &CommandArgs, w: &WorkerSpec<'_>) -> Built {
    Built {
        launch: port_launch(
            a.argv.iter().map(|x| fill(x, w)).collect(),
            a.host.as_deref().unwrap_or(w.bind_host),
        ),
        ranks: a.ranks.max(1),
        file: None,
    }
}

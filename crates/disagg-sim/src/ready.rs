//! Publishing the bound address, so whoever started the sim can find a port chosen by the OS
//! (the shared writer is `disagg_proto::ready`).

use std::path::Path;

use crate::SimError;

pub(crate) use disagg_proto::ready::authority;

/// Writes `authority` plus a newline to `ready_file` (atomically), or prints it to stdout.
pub(crate) fn publish(ready_file: Option<&Path>, authority: &str) -> Result<(), SimError> {
    disagg_proto::ready::publish(ready_file, authority).map_err(|source| SimError::ReadyFile {
        path: ready_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| "stdout".into()),
        source,
    })
}

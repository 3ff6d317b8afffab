//! Reading an input file named on the command line: a regular file (a FIFO or a device would
//! block or never end) of bounded size, as UTF-8 text.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Input files larger than this are refused.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// The text of `path`, described as `what` in errors (`the flows file`, `the manifest`).
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading {what} {}", path.display()))?;
    if !meta.is_file() {
        bail!("{what} {} is not a regular file", path.display());
    }
    if meta.len() > MAX_INPUT_BYTES {
        bail!(
            "{what} {} is {} bytes; the limit is {MAX_INPUT_BYTES}",
            path.display(),
            meta.len()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))
}

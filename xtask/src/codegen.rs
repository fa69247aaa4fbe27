//! Code generation: the autograd backward code and gradient checks, from the derivatives table.

use std::path::PathBuf;

/// Every generated file as (path relative to the workspace root, full contents).
pub fn generate() -> anyhow::Result<Vec<(PathBuf, String)>> {
    Ok(Vec::new())
}

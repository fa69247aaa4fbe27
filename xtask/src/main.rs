//! `cargo xtask`: maintenance commands for the workspace.

mod codegen;

use std::path::PathBuf;

/// The workspace root (the parent of this crate's folder).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let root = workspace_root();
    for (path, content) in codegen::generate()? {
        let full = root.join(&path);
        let old = std::fs::read_to_string(&full).unwrap_or_default();
        if old != content {
            if check {
                anyhow::bail!("{} is stale: run `cargo xtask codegen`", path.display());
            }
            std::fs::write(&full, content)?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

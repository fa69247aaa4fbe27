//! Atomic file writes: a temporary file in the same folder, synced, renamed over the target,
//! then the folder synced, so a run killed at any moment leaves either the old file or the new
//! one under the final name, never a half-written one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically.
///
/// # Errors
/// If the temporary file cannot be created, written, synced or renamed; the temporary file is
/// removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("{} does not name a file", path.display()))?;
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.{unique}.tmp", std::process::id()));
    let tmp_path = dir.join(tmp_name);

    let written = write_and_sync(&tmp_path, bytes).and_then(|()| fs::rename(&tmp_path, path));
    if let Err(err) = written {
        // The temporary file may not exist if its creation failed; nothing more to do then.
        let _ = fs::remove_file(&tmp_path);
        return Err(err).with_context(|| format!("cannot write {}", path.display()));
    }
    // Syncing the folder makes the rename itself durable; some file systems refuse to open a
    // folder for syncing, and the rename has happened either way.
    if let Ok(dir_file) = File::open(dir) {
        let _ = dir_file.sync_all();
    }
    Ok(())
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
///
/// # Errors
/// As [`write_atomic`].
pub fn write_json_atomic<V: serde::Serialize>(path: &Path, value: &V) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).context("cannot serialise JSON")?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads and parses a JSON file, naming the file and the line and column in the error.
///
/// # Errors
/// If the file cannot be read or does not hold the expected JSON.
pub fn read_json<V: serde::de::DeserializeOwned>(path: &Path) -> Result<V> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} does not parse", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");

        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn json_round_trips_and_parse_errors_give_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        write_json_atomic(&path, &vec![1u32, 2]).unwrap();
        fs::write(dir.path().join("bad.json"), "[1,\n 2,,]").unwrap();

        let back: Vec<u32> = read_json(&path).unwrap();
        let err = read_json::<Vec<u32>>(&dir.path().join("bad.json")).unwrap_err();

        assert_eq!(back, [1, 2]);
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }
}

//! File helpers shared by the readers and writers: reads that name the file in their errors, and
//! atomic writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{DataError, Result};

/// Wraps an I/O error with the operation and the path.
pub(crate) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.to_path_buf();
    move |source| DataError::Io { op, path, source }
}

/// Writes `bytes` to `path` atomically: into a fresh temporary file in the same folder, flushed
/// to disk, then renamed over `path`, so a reader sees either the old file or the new one and a
/// crash never leaves a half-written file under the final name.
///
/// # Errors
/// [`DataError::Io`] if the temporary file cannot be created, written, synced or renamed; the
/// temporary file is removed on failure.
pub(crate) fn write_atomic(op: &'static str, path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let file_name = path.file_name().ok_or_else(|| DataError::InvalidArgument {
        op,
        reason: format!("{} does not name a file", path.display()),
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.{unique}.tmp", std::process::id()));
    let tmp_path = dir.join(tmp_name);

    let written = write_and_sync(&tmp_path, bytes).and_then(|()| fs::rename(&tmp_path, path));
    if let Err(source) = written {
        // The temporary file may not exist if creation failed; nothing more to do then.
        let _ = fs::remove_file(&tmp_path);
        return Err(DataError::Io {
            op,
            path: path.to_path_buf(),
            source,
        });
    }
    sync_dir(&dir);
    Ok(())
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Flushes the folder entry of a renamed file. Best effort: some platforms and file systems
/// cannot open or sync a folder, and the data itself is already on disk.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        fs::write(&path, b"old").unwrap();

        write_atomic("test", &path, b"new contents").unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn write_atomic_into_a_missing_folder_fails_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("out.json");

        let err = write_atomic("saving the test file", &path, b"x").unwrap_err();

        assert!(matches!(err, DataError::Io { .. }));
        assert!(
            err.to_string().starts_with("saving the test file: "),
            "{err}"
        );
        assert!(err.to_string().contains("out.json"), "{err}");
    }
}

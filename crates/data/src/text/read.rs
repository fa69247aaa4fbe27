//! Reading a text corpus from a file or a folder of files.

use std::fs;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::fsutil::io_error;

const OP: &str = "reading text";

/// Reads `path`: a UTF-8 text file, or a folder whose `.txt` files are read in order of file
/// name and joined, with a newline added after any file that does not end with one.
///
/// Other files in the folder, and subfolders, are ignored.
///
/// # Errors
/// - [`DataError::NotFound`] if `path` does not exist;
/// - [`DataError::InvalidArgument`] if the folder holds no `.txt` file;
/// - [`DataError::InvalidUtf8`] naming the file and the byte offset of the first invalid
///   sequence;
/// - [`DataError::Io`] if a file or the folder cannot be read.
pub fn read_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let metadata = fs::metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                op: OP,
                path: path.to_path_buf(),
                hint: "give a UTF-8 text file or a folder of .txt files".into(),
            }
        } else {
            io_error(OP, path)(source)
        }
    })?;
    if !metadata.is_dir() {
        return read_utf8(path);
    }

    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(io_error(OP, path))? {
        let entry = entry.map_err(io_error(OP, path))?;
        let file = entry.path();
        if file.is_file() && file.extension().is_some_and(|ext| ext == "txt") {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(DataError::InvalidArgument {
            op: OP,
            reason: format!("the folder {} holds no .txt file", path.display()),
        });
    }
    files.sort();
    let mut text = String::new();
    for file in &files {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&read_utf8(file)?);
    }
    Ok(text)
}

fn read_utf8(path: &Path) -> Result<String> {
    let bytes = fs::read(path).map_err(io_error(OP, path))?;
    String::from_utf8(bytes).map_err(|e| DataError::InvalidUtf8 {
        op: OP,
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        fs::write(&path, "to be, or not to be\n").unwrap();

        let text = read_text(&path).unwrap();

        assert_eq!(text, "to be, or not to be\n");
    }

    #[test]
    fn folder_files_are_joined_in_name_order_and_other_files_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b.txt"), "second").unwrap();
        fs::write(dir.path().join("a.txt"), "first").unwrap();
        fs::write(dir.path().join("c.txt"), "third\n").unwrap();
        fs::write(dir.path().join("notes.md"), "ignored").unwrap();
        fs::create_dir(dir.path().join("sub.txt")).unwrap();

        let text = read_text(dir.path()).unwrap();

        assert_eq!(text, "first\nsecond\nthird\n");
    }

    #[test]
    fn missing_path_is_not_found() {
        let dir = tempfile::tempdir().unwrap();

        let err = read_text(dir.path().join("absent.txt")).unwrap_err();

        assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.txt"), "{err}");
    }

    #[test]
    fn folder_without_text_files_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("data.csv"), "1,2").unwrap();

        let err = read_text(dir.path()).unwrap_err();

        assert!(err.to_string().contains("holds no .txt file"), "{err}");
    }

    #[test]
    fn invalid_utf8_names_the_file_and_the_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "fine").unwrap();
        fs::write(dir.path().join("b.txt"), b"caf\xc3\xa9 \xff!").unwrap();

        let err = read_text(dir.path()).unwrap_err();

        assert!(
            matches!(err, DataError::InvalidUtf8 { offset: 6, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("b.txt"), "{err}");
        assert!(err.to_string().contains("byte 6"), "{err}");
    }
}

//! The error type shared by every fallible operation of this crate.

use std::io;
use std::path::PathBuf;

use strata_tensor::TensorError;

/// Errors raised while reading datasets, tokenizing text and building batches.
///
/// Every variant names first the operation in the caller's terms (what was being read, saved,
/// decoded or built, not the function that failed) and then, when a file is involved, the
/// file, so a message alone says what failed and where: `reading an IDX file:
/// data/train-images-idx3-ubyte: bad magic number 0x00000801, expected 0x00000803 (...)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or folder could not be opened, read or written.
    #[error("{op}: {}: {source}", path.display())]
    Io {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A dataset folder or file does not exist.
    #[error("{op}: {} not found; {hint}", path.display())]
    NotFound {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The path that was looked for.
        path: PathBuf,
        /// How to get the missing data.
        hint: String,
    },
    /// An IDX file starts with the wrong magic number.
    #[error(
        "reading an IDX file: {}: bad magic number {found:#010x}, expected {expected:#010x} \
         ({kind})",
        path.display()
    )]
    BadMagic {
        /// The file read.
        path: PathBuf,
        /// The magic number the caller asked for.
        expected: u32,
        /// The first four bytes of the file, big-endian.
        found: u32,
        /// What the expected number stands for, such as `"u8 images [n, rows, cols]"`.
        kind: &'static str,
    },
    /// A file's length differs from the length its header implies.
    #[error(
        "{op}: {}: the header describes {expected} bytes of data (shape {shape:?}) but the file \
         holds {actual}",
        path.display()
    )]
    Length {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The file read.
        path: PathBuf,
        /// The shape stated by the header.
        shape: Vec<u64>,
        /// The number of data bytes the header implies.
        expected: u64,
        /// The number of data bytes actually present (after decompression for gzip files).
        actual: u64,
    },
    /// A file is malformed in a way other variants do not cover: a short header, a broken
    /// gzip stream, an invalid saved vocabulary.
    #[error("{op}: {}: {reason}", path.display())]
    Corrupt {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The file read.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// An image file and its label file hold different numbers of examples.
    #[error(
        "{op}: {} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A text file is not valid UTF-8.
    #[error("{op}: {}: invalid UTF-8 at byte {offset}", path.display())]
    InvalidUtf8 {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The file read.
        path: PathBuf,
        /// Byte offset of the first invalid sequence within that file.
        offset: usize,
    },
    /// A JSON file could not be parsed or written.
    #[error("{op}: {}: {source}", path.display())]
    Json {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A token sequence is too short for the context length asked for.
    #[error(
        "{op}: {what} has {len} tokens but a context of {context} needs at least {}",
        *context as u128 + 1
    )]
    TooShort {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// Which sequence: `"corpus"`, `"training split"`, `"validation split"`.
        what: &'static str,
        /// Its length in tokens.
        len: usize,
        /// The context length asked for.
        context: usize,
    },
    /// Text holds a character that the vocabulary does not know.
    #[error("{op}: character {ch:?} at byte {offset} is not in the vocabulary")]
    UnknownChar {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The character.
        ch: char,
        /// Its byte offset in the text.
        offset: usize,
    },
    /// A token id is outside the vocabulary.
    #[error("{op}: token id {id} is out of range for a vocabulary of {vocab_size}")]
    UnknownToken {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// The id.
        id: usize,
        /// Size of the vocabulary.
        vocab_size: usize,
    },
    /// Decoded bytes do not form valid UTF-8 (possible when decoding arbitrary byte-level
    /// token ids rather than the output of an encoder).
    #[error("{op}: decoded bytes are not valid UTF-8 at byte {offset}")]
    DecodedUtf8 {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// Byte offset of the first invalid sequence in the decoded bytes.
        offset: usize,
    },
    /// An argument is outside the values the operation accepts.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The operation that failed, in the caller's terms.
        op: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// Building a tensor failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, DataError>;

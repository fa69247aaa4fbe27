//! Text for language models: reading a corpus from disk, a character vocabulary, and
//! `(context, next token)` batches.
//!
//! - [`read_text`] reads a UTF-8 file, or every `.txt` file of a folder in name order;
//! - [`CharVocab`] maps each distinct character to an id (the classic char-RNN setup);
//! - [`TextDataset`] splits a token sequence into training and validation parts and samples
//!   batches of `context` tokens with the `context` tokens that follow each one.

mod dataset;
mod read;
mod vocab;

pub use dataset::{SequentialBatches, Split, TextDataset};
pub use read::read_text;
pub use vocab::CharVocab;

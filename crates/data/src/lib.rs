//! Datasets for Strata: MNIST-format image files, text corpora, character and byte-pair
//! tokenizers, and a batch loader that prepares batches on a background thread.
//!
//! - [`idx`] reads IDX files (raw or gzipped) and [`mnist`] turns them into image datasets;
//! - [`text`] reads text, maps characters to ids with [`text::CharVocab`] and samples
//!   `(context, next token)` batches with [`text::TextDataset`];
//! - [`bpe`] trains and applies a byte-level byte-pair-encoding tokenizer;
//! - [`loader`] batches any [`loader::Dataset`] with seeded shuffling;
//! - [`corpus`] embeds a small public-domain Shakespeare corpus.
//!
//! ```
//! use strata_data::corpus::SHAKESPEARE;
//! use strata_data::text::{CharVocab, Split, TextDataset};
//! use strata_tensor::Generator;
//!
//! let vocab = CharVocab::from_text(SHAKESPEARE);
//! let data = TextDataset::new(vocab.encode(SHAKESPEARE)?, 64, 0.9)?;
//! let (inputs, targets) = data.sample_batch(Split::Train, 8, &mut Generator::new(0))?;
//! assert_eq!(inputs.shape(), &[8, 64]);
//! assert_eq!(targets.shape(), &[8, 64]);
//! # Ok::<(), strata_data::DataError>(())
//! ```

pub mod bpe;
pub mod corpus;
mod error;
mod fsutil;
pub mod idx;
pub mod loader;
pub mod mnist;
pub mod text;

pub use error::{DataError, Result};

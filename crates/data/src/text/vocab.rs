//! A character-level vocabulary: one id per distinct character, in sorted order.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fsutil::{io_error, write_atomic};

/// The operations of [`CharVocab::save`] and [`CharVocab::load`], as error messages name them.
const SAVE: &str = "saving the vocabulary";
const LOAD: &str = "loading the vocabulary";

/// Maps each distinct character of a text to an id, the characters sorted by code point, so
/// the same text always gives the same ids.
///
/// ```
/// use strata_data::text::CharVocab;
///
/// let vocab = CharVocab::from_text("hello");
/// assert_eq!(vocab.chars(), &['e', 'h', 'l', 'o']);
/// let ids = vocab.encode("hole")?;
/// assert_eq!(ids, vec![1, 3, 2, 0]);
/// assert_eq!(vocab.decode(&ids)?, "hole");
/// # Ok::<(), strata_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharVocab {
    chars: Vec<char>,
    ids: HashMap<char, usize>,
}

/// The JSON form of a saved vocabulary.
#[derive(Serialize, Deserialize)]
struct SavedCharVocab {
    chars: String,
}

impl CharVocab {
    /// The vocabulary of the distinct characters of `text`.
    pub fn from_text(text: &str) -> Self {
        Self::from_chars(text.chars())
    }

    /// The vocabulary of `chars`, sorted and with repeats removed.
    pub fn from_chars(chars: impl IntoIterator<Item = char>) -> Self {
        let mut chars: Vec<char> = chars.into_iter().collect();
        chars.sort_unstable();
        chars.dedup();
        let ids = chars.iter().enumerate().map(|(id, &c)| (c, id)).collect();
        Self { chars, ids }
    }

    /// The number of characters.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters, in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of `ch`, if it is in the vocabulary.
    pub fn id(&self, ch: char) -> Option<usize> {
        self.ids.get(&ch).copied()
    }

    /// The character of `id`, if `id < self.len()`.
    pub fn char(&self, id: usize) -> Option<char> {
        self.chars.get(id).copied()
    }

    /// The id of each character of `text`.
    ///
    /// # Errors
    /// [`DataError::UnknownChar`] for the first character not in the vocabulary, with its byte
    /// offset.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        text.char_indices()
            .map(|(offset, ch)| {
                self.id(ch).ok_or(DataError::UnknownChar {
                    op: "encoding text",
                    ch,
                    offset,
                })
            })
            .collect()
    }

    /// The text whose characters have the ids `ids`.
    ///
    /// # Errors
    /// [`DataError::UnknownToken`] for the first id `>= self.len()`.
    pub fn decode(&self, ids: &[usize]) -> Result<String> {
        ids.iter()
            .map(|&id| {
                self.char(id).ok_or(DataError::UnknownToken {
                    op: "decoding token ids",
                    id,
                    vocab_size: self.len(),
                })
            })
            .collect()
    }

    /// Writes the vocabulary to `path` as JSON, `{"chars": "..."}`, atomically: a crash leaves
    /// either the previous file or the new one.
    ///
    /// # Errors
    /// [`DataError::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let saved = SavedCharVocab {
            chars: self.chars.iter().collect(),
        };
        let json = serde_json::to_vec_pretty(&saved).map_err(|source| DataError::Json {
            op: SAVE,
            path: path.to_path_buf(),
            source,
        })?;
        write_atomic(SAVE, path, &json)
    }

    /// Reads a vocabulary written by [`CharVocab::save`].
    ///
    /// # Errors
    /// - [`DataError::Io`] if the file cannot be read;
    /// - [`DataError::Json`] if it is not the JSON `save` writes;
    /// - [`DataError::Corrupt`] if its characters are not sorted and distinct, since ids
    ///   would then differ from the ones it was saved with.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(io_error(LOAD, path))?;
        let saved: SavedCharVocab =
            serde_json::from_slice(&bytes).map_err(|source| DataError::Json {
                op: LOAD,
                path: path.to_path_buf(),
                source,
            })?;
        let chars: Vec<char> = saved.chars.chars().collect();
        if let Some(pair) = chars.windows(2).find(|w| w[0] >= w[1]) {
            return Err(DataError::Corrupt {
                op: LOAD,
                path: path.to_path_buf(),
                reason: format!(
                    "characters must be sorted and distinct, but {:?} comes before {:?}",
                    pair[0], pair[1]
                ),
            });
        }
        Ok(Self::from_chars(chars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_sorted_unique_characters() {
        let vocab = CharVocab::from_text("banana\n");

        assert_eq!(vocab.chars(), &['\n', 'a', 'b', 'n']);
        assert_eq!(vocab.encode("nab").unwrap(), vec![3, 1, 2]);
    }

    #[test]
    fn encode_then_decode_is_the_identity() {
        let text = "Fair is foul, and foul is fair: ☂ 🎭\n";
        let vocab = CharVocab::from_text(text);

        let ids = vocab.encode(text).unwrap();

        assert_eq!(vocab.decode(&ids).unwrap(), text);
    }

    #[test]
    fn unknown_character_reports_its_byte_offset() {
        let vocab = CharVocab::from_text("abc");

        let err = vocab.encode("abé!").unwrap_err();

        assert!(
            matches!(
                err,
                DataError::UnknownChar {
                    ch: 'é',
                    offset: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_id_is_an_error() {
        let vocab = CharVocab::from_text("abc");

        let err = vocab.decode(&[0, 3]).unwrap_err();

        assert!(matches!(
            err,
            DataError::UnknownToken {
                id: 3,
                vocab_size: 3,
                ..
            }
        ));
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.json");
        let vocab = CharVocab::from_text("line one\n\"quoted\"\t🎭 \\ end");

        vocab.save(&path).unwrap();
        let loaded = CharVocab::load(&path).unwrap();

        assert_eq!(loaded, vocab);
    }

    #[test]
    fn loading_unsorted_characters_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.json");
        fs::write(&path, r#"{"chars": "ba"}"#).unwrap();

        let err = CharVocab::load(&path).unwrap_err();

        assert!(matches!(err, DataError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn loading_malformed_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.json");
        fs::write(&path, "{\"chars\": ").unwrap();

        let err = CharVocab::load(&path).unwrap_err();

        assert!(matches!(err, DataError::Json { .. }), "{err:?}");
        assert!(err.to_string().contains("vocab.json"), "{err}");
    }

    /// Regression: messages began with the function that failed (`CharVocab::load: ...`)
    /// instead of saying what the caller was doing.
    #[test]
    fn a_missing_file_error_names_the_operation_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.json");

        let err = CharVocab::load(&path).unwrap_err();

        assert!(matches!(err, DataError::Io { op: LOAD, .. }), "{err:?}");
        let expected = format!("loading the vocabulary: {}: ", path.display());
        assert!(err.to_string().starts_with(&expected), "{err}");
    }
}

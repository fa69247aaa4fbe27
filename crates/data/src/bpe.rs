//! A byte-level byte-pair-encoding (BPE) tokenizer, as used by GPT-2 and its successors.
//!
//! Text is first cut into chunks (see below), each chunk is read as UTF-8 bytes, and the 256
//! byte values are the first 256 tokens. Training then repeats, until the vocabulary reaches
//! the size asked for:
//!
//! ```text
//! (a, b) = the adjacent pair of tokens that occurs most often inside chunks
//!          (ties: the smallest pair, comparing a then b)
//! new token 256 + k  = a followed by b      (merge number k)
//! replace every (a, b) in every chunk, left to right, by the new token
//! ```
//!
//! Encoding applies the merges to each chunk in the order they were learned, and decoding
//! concatenates the bytes of the tokens, so `decode(encode(s)) == s` for any string, whatever
//! the training text: every byte is a token, so nothing is ever unknown.
//!
//! Chunks keep merges inside words: a chunk is a run of letters, of digits, of whitespace or of
//! other characters, a single space before a run of non-space characters belongs to that run
//! (so `" the"` is one chunk), and runs longer than 32 characters are cut.
//!
//! Training counts each distinct chunk once with its frequency and updates the pair counts
//! incrementally after each merge, touching only the chunks that contain the merged pair.
//!
//! ```
//! use strata_data::bpe::BpeTokenizer;
//!
//! let tokenizer = BpeTokenizer::train("the cat sat on the mat, the end", 262)?;
//! let ids = tokenizer.encode("the hat");
//! assert!(ids.len() < "the hat".len());
//! assert_eq!(tokenizer.decode(&ids)?, "the hat");
//! # Ok::<(), strata_data::DataError>(())
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fsutil::{io_error, write_atomic};

/// The number of byte tokens, and so the smallest vocabulary.
pub const BYTE_TOKENS: usize = 256;

/// Training stops early when no pair of tokens occurs this many times.
const MIN_PAIR_COUNT: u64 = 2;

/// Longest chunk, in characters.
const MAX_CHUNK_CHARS: usize = 32;

/// The `kind` written in saved files, checked on load.
const SAVED_KIND: &str = "strata-byte-bpe";

type Pair = (u32, u32);

/// A trained byte-level BPE tokenizer; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeTokenizer {
    merges: Vec<Pair>,
    ranks: HashMap<Pair, u32>,
    token_bytes: Vec<Vec<u8>>,
}

/// The JSON form of a saved tokenizer.
#[derive(Serialize, Deserialize)]
struct SavedBpe {
    kind: String,
    merges: Vec<(u32, u32)>,
}

impl BpeTokenizer {
    /// Learns merges from `text` until the vocabulary holds `vocab_size` tokens (256 byte
    /// tokens plus `vocab_size - 256` merges), or until no pair of tokens occurs twice, in
    /// which case [`BpeTokenizer::vocab_size`] is smaller than asked. The result depends only
    /// on `text` and `vocab_size`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `vocab_size` is below 256 or above `u32::MAX`.
    pub fn train(text: &str, vocab_size: usize) -> Result<Self> {
        if !(BYTE_TOKENS..=u32::MAX as usize).contains(&vocab_size) {
            return Err(DataError::InvalidArgument {
                op: "training the BPE tokenizer",
                reason: format!("vocab_size must be in 256..=2^32 - 1, got {vocab_size}"),
            });
        }
        let merges = Trainer::new(text).run(vocab_size - BYTE_TOKENS);
        Ok(Self::from_merges(merges))
    }

    /// A tokenizer with only the 256 byte tokens: each byte of the text is one token.
    pub fn bytes_only() -> Self {
        Self::from_merges(Vec::new())
    }

    /// The number of tokens: 256 plus the number of merges.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The merges in the order they were learned: merge `k` made token `256 + k` from the two
    /// tokens it returns.
    pub fn merges(&self) -> impl ExactSizeIterator<Item = (usize, usize)> + '_ {
        self.merges.iter().map(|&(a, b)| (a as usize, b as usize))
    }

    /// The bytes token `id` stands for, if `id < self.vocab_size()`.
    pub fn token_bytes(&self, id: usize) -> Option<&[u8]> {
        self.token_bytes.get(id).map(Vec::as_slice)
    }

    /// The tokens of `text`.
    pub fn encode(&self, text: &str) -> Vec<usize> {
        let mut ids = Vec::with_capacity(text.len() / 2);
        let mut cache: HashMap<&str, Vec<u32>> = HashMap::new();
        for chunk in split_chunks(text) {
            let chunk_ids = cache
                .entry(chunk)
                .or_insert_with(|| self.encode_chunk(chunk.as_bytes()));
            ids.extend(chunk_ids.iter().map(|&id| id as usize));
        }
        ids
    }

    /// The bytes of the tokens `ids`, concatenated.
    ///
    /// # Errors
    /// [`DataError::UnknownToken`] for the first id `>= self.vocab_size()`.
    pub fn decode_bytes(&self, ids: &[usize]) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(ids.len() * 2);
        for &id in ids {
            let token = self.token_bytes(id).ok_or(DataError::UnknownToken {
                op: "decoding BPE tokens",
                id,
                vocab_size: self.vocab_size(),
            })?;
            bytes.extend_from_slice(token);
        }
        Ok(bytes)
    }

    /// The text of the tokens `ids`; the inverse of [`BpeTokenizer::encode`].
    ///
    /// # Errors
    /// - [`DataError::UnknownToken`] for the first id `>= self.vocab_size()`;
    /// - [`DataError::DecodedUtf8`] if the bytes are not valid UTF-8, which can happen for a
    ///   sequence that `encode` did not produce (a model's samples, say); use
    ///   [`BpeTokenizer::decode_bytes`] with `String::from_utf8_lossy` to show those.
    pub fn decode(&self, ids: &[usize]) -> Result<String> {
        String::from_utf8(self.decode_bytes(ids)?).map_err(|e| DataError::DecodedUtf8 {
            op: "decoding BPE tokens",
            offset: e.utf8_error().valid_up_to(),
        })
    }

    /// Writes the merges to `path` as JSON, atomically: a crash leaves either the previous
    /// file or the new one.
    ///
    /// # Errors
    /// [`DataError::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let saved = SavedBpe {
            kind: SAVED_KIND.to_string(),
            merges: self.merges.clone(),
        };
        let json = serde_json::to_vec(&saved).map_err(|source| DataError::Json {
            op: "saving the BPE tokenizer",
            path: path.to_path_buf(),
            source,
        })?;
        write_atomic("saving the BPE tokenizer", path, &json)
    }

    /// Reads a tokenizer written by [`BpeTokenizer::save`].
    ///
    /// # Errors
    /// - [`DataError::Io`] if the file cannot be read;
    /// - [`DataError::Json`] if it is not the JSON `save` writes;
    /// - [`DataError::Corrupt`] if its kind is wrong or a merge uses a token that does not
    ///   exist before it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        const OP: &str = "loading the BPE tokenizer";
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(io_error(OP, path))?;
        let saved: SavedBpe = serde_json::from_slice(&bytes).map_err(|source| DataError::Json {
            op: OP,
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |reason| DataError::Corrupt {
            op: OP,
            path: path.to_path_buf(),
            reason,
        };
        if saved.kind != SAVED_KIND {
            return Err(corrupt(format!(
                "kind is {:?}, expected {SAVED_KIND:?}",
                saved.kind
            )));
        }
        for (k, &(a, b)) in saved.merges.iter().enumerate() {
            let existing = BYTE_TOKENS + k;
            if a as usize >= existing || b as usize >= existing {
                return Err(corrupt(format!(
                    "merge {k} joins ({a}, {b}) but only tokens below {existing} exist then"
                )));
            }
        }
        Ok(Self::from_merges(saved.merges))
    }

    fn from_merges(merges: Vec<Pair>) -> Self {
        let mut token_bytes: Vec<Vec<u8>> = (0..=u8::MAX).map(|b| vec![b]).collect();
        for &(a, b) in &merges {
            let joined = [
                token_bytes[a as usize].as_slice(),
                token_bytes[b as usize].as_slice(),
            ]
            .concat();
            token_bytes.push(joined);
        }
        let ranks = merges
            .iter()
            .enumerate()
            .map(|(rank, &pair)| (pair, rank as u32))
            .collect();
        Self {
            merges,
            ranks,
            token_bytes,
        }
    }

    /// Applies the merges to one chunk: repeatedly the earliest-learned merge present, which
    /// gives the same tokens as replaying every merge in training order.
    fn encode_chunk(&self, chunk: &[u8]) -> Vec<u32> {
        let mut ids: Vec<u32> = chunk.iter().map(|&b| u32::from(b)).collect();
        while ids.len() >= 2 {
            let best = ids
                .windows(2)
                .filter_map(|w| {
                    self.ranks
                        .get(&(w[0], w[1]))
                        .map(|&rank| (rank, (w[0], w[1])))
                })
                .min();
            let Some((rank, pair)) = best else {
                break;
            };
            ids = merge_pair(&ids, pair, BYTE_TOKENS as u32 + rank);
        }
        ids
    }
}

/// The state of a training run: distinct chunks as token sequences with their frequencies,
/// the count of every adjacent pair, and which chunks hold each pair.
struct Trainer {
    words: Vec<(Vec<u32>, u64)>,
    pair_counts: HashMap<Pair, u64>,
    /// Chunks that may hold each pair; may list a chunk twice or after it lost the pair.
    holders: HashMap<Pair, Vec<usize>>,
    /// Candidate best pairs, highest count first, then smallest pair; stale entries (whose
    /// count no longer matches `pair_counts`) are skipped when popped.
    heap: BinaryHeap<(u64, Reverse<Pair>)>,
}

impl Trainer {
    fn new(text: &str) -> Self {
        let mut frequencies: HashMap<&str, u64> = HashMap::new();
        for chunk in split_chunks(text) {
            *frequencies.entry(chunk).or_default() += 1;
        }
        let mut words: Vec<(Vec<u32>, u64)> = frequencies
            .into_iter()
            .map(|(chunk, freq)| (chunk.bytes().map(u32::from).collect(), freq))
            .collect();
        words.sort_unstable();

        let mut pair_counts: HashMap<Pair, u64> = HashMap::new();
        let mut holders: HashMap<Pair, Vec<usize>> = HashMap::new();
        for (index, (word, freq)) in words.iter().enumerate() {
            for w in word.windows(2) {
                *pair_counts.entry((w[0], w[1])).or_default() += freq;
                holders.entry((w[0], w[1])).or_default().push(index);
            }
        }
        let heap = pair_counts
            .iter()
            .map(|(&pair, &count)| (count, Reverse(pair)))
            .collect();
        Self {
            words,
            pair_counts,
            holders,
            heap,
        }
    }

    /// Learns up to `n_merges` merges.
    fn run(mut self, n_merges: usize) -> Vec<Pair> {
        let mut merges = Vec::with_capacity(n_merges);
        let mut last_visit = vec![usize::MAX; self.words.len()];
        while merges.len() < n_merges {
            let Some((count, Reverse(pair))) = self.heap.pop() else {
                break;
            };
            if self.pair_counts.get(&pair) != Some(&count) {
                continue;
            }
            if count < MIN_PAIR_COUNT {
                break;
            }
            let new_id = (BYTE_TOKENS + merges.len()) as u32;
            self.apply(pair, new_id, &mut last_visit);
            merges.push(pair);
        }
        merges
    }

    /// Replaces `pair` by `new_id` in every chunk holding it and updates the counts.
    fn apply(&mut self, pair: Pair, new_id: u32, last_visit: &mut [usize]) {
        let mut deltas: HashMap<Pair, i64> = HashMap::new();
        let holders = self.holders.remove(&pair).unwrap_or_default();
        for index in holders {
            if last_visit[index] == new_id as usize {
                continue;
            }
            last_visit[index] = new_id as usize;
            let (word, freq) = &mut self.words[index];
            if !word.windows(2).any(|w| (w[0], w[1]) == pair) {
                continue;
            }
            let freq = *freq as i64;
            for w in word.windows(2) {
                *deltas.entry((w[0], w[1])).or_default() -= freq;
            }
            let merged = merge_pair(word, pair, new_id);
            for w in merged.windows(2) {
                *deltas.entry((w[0], w[1])).or_default() += freq;
                if w[0] == new_id || w[1] == new_id {
                    self.holders.entry((w[0], w[1])).or_default().push(index);
                }
            }
            *word = merged;
        }

        self.pair_counts.remove(&pair);
        for (changed, delta) in deltas {
            if delta == 0 || changed == pair {
                continue;
            }
            let count = self.pair_counts.entry(changed).or_default();
            *count = count
                .checked_add_signed(delta)
                .expect("bug: a pair count went below zero");
            if *count == 0 {
                self.pair_counts.remove(&changed);
            } else {
                self.heap.push((*count, Reverse(changed)));
            }
        }
    }
}

/// `ids` with every occurrence of `pair`, scanned left to right, replaced by `new_id`.
fn merge_pair(ids: &[u32], pair: Pair, new_id: u32) -> Vec<u32> {
    let mut merged = Vec::with_capacity(ids.len());
    let mut i = 0;
    while i < ids.len() {
        if i + 1 < ids.len() && (ids[i], ids[i + 1]) == pair {
            merged.push(new_id);
            i += 2;
        } else {
            merged.push(ids[i]);
            i += 1;
        }
    }
    merged
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharClass {
    Letter,
    Digit,
    Space,
    Other,
}

fn char_class(ch: char) -> CharClass {
    if ch.is_alphabetic() {
        CharClass::Letter
    } else if ch.is_numeric() {
        CharClass::Digit
    } else if ch.is_whitespace() {
        CharClass::Space
    } else {
        CharClass::Other
    }
}

/// Cuts `text` into chunks as the module docs describe; the chunks concatenate back to `text`.
fn split_chunks(text: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut chars_in_chunk = 0;
    let mut previous: Option<CharClass> = None;
    for (offset, ch) in text.char_indices() {
        let class = char_class(ch);
        match previous {
            None => {}
            Some(p) if p == class && chars_in_chunk < MAX_CHUNK_CHARS => {}
            Some(CharClass::Space)
                if class != CharClass::Space && text[start..offset].ends_with(' ') =>
            {
                // The last space joins the run that follows it.
                let space = offset - 1;
                if space > start {
                    chunks.push(&text[start..space]);
                }
                start = space;
                chars_in_chunk = 1;
            }
            Some(_) => {
                chunks.push(&text[start..offset]);
                start = offset;
                chars_in_chunk = 0;
            }
        }
        chars_in_chunk += 1;
        previous = Some(class);
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::corpus::SHAKESPEARE;

    #[test]
    fn chunks_split_words_and_attach_one_leading_space() {
        let chunks = split_chunks("Hi  there, 42 cats!\n\nok");

        assert_eq!(
            chunks,
            vec!["Hi", " ", " there", ",", " 42", " cats", "!", "\n\n", "ok"]
        );
    }

    #[test]
    fn long_runs_are_cut_into_chunks_of_at_most_32_characters() {
        let text = "a".repeat(70);

        let lengths: Vec<usize> = split_chunks(&text).iter().map(|c| c.len()).collect();

        assert_eq!(lengths, vec![32, 32, 6]);
    }

    #[test]
    fn first_merge_is_the_most_frequent_pair_and_ties_go_to_the_smallest_pair() {
        // In "ab ab ab cd cd cd": pairs (a, b) and (c, d) both occur three times, as do
        // (' ', a) twice and (' ', c) three times. ' ' is 32 < 'a' = 97, so (' ', c) wins the
        // tie at three.
        let tokenizer = BpeTokenizer::train("ab ab ab cd cd cd", 257).unwrap();

        let merges: Vec<_> = tokenizer.merges().collect();

        assert_eq!(merges, vec![(b' ' as usize, b'c' as usize)]);
    }

    #[test]
    fn training_is_deterministic_and_reaches_the_vocab_size() {
        let text = &SHAKESPEARE[..60_000];

        let a = BpeTokenizer::train(text, 400).unwrap();
        let b = BpeTokenizer::train(text, 400).unwrap();

        assert_eq!(a, b);
        assert_eq!(a.vocab_size(), 400);
    }

    #[test]
    fn incremental_counts_match_a_full_recount() {
        // Replaying the learned merges by brute force must pick the same pair at each step.
        let text = &SHAKESPEARE[..20_000];
        let tokenizer = BpeTokenizer::train(text, 320).unwrap();
        let mut words: Vec<Vec<u32>> = split_chunks(text)
            .iter()
            .map(|c| c.bytes().map(u32::from).collect())
            .collect();

        for (k, merge) in tokenizer.merges().enumerate() {
            let mut counts: HashMap<Pair, u64> = HashMap::new();
            for word in &words {
                for w in word.windows(2) {
                    *counts.entry((w[0], w[1])).or_default() += 1;
                }
            }
            let best = counts.iter().map(|(&p, &c)| (c, Reverse(p))).max().unwrap();
            assert_eq!(
                (best.1 .0 .0 as usize, best.1 .0 .1 as usize),
                merge,
                "merge {k}"
            );
            let new_id = (BYTE_TOKENS + k) as u32;
            for word in &mut words {
                *word = merge_pair(word, best.1 .0, new_id);
            }
        }
    }

    #[test]
    fn training_stops_when_no_pair_repeats() {
        let tokenizer = BpeTokenizer::train("abcdef", 1000).unwrap();

        assert_eq!(tokenizer.vocab_size(), 256);
    }

    #[test]
    fn encoding_compresses_the_training_text_and_round_trips() {
        let text = &SHAKESPEARE[..50_000];
        let tokenizer = BpeTokenizer::train(text, 512).unwrap();

        let ids = tokenizer.encode(text);

        assert!(
            ids.len() * 2 < text.len(),
            "{} tokens for {} bytes",
            ids.len(),
            text.len()
        );
        assert_eq!(tokenizer.decode(&ids).unwrap(), text);
    }

    #[test]
    fn empty_string_and_emoji_round_trip() {
        let tokenizer = BpeTokenizer::train("🎭🎭 héllo wörld 🎭🎭 héllo", 300).unwrap();

        let empty = tokenizer.encode("");
        let emoji = "👩‍👩‍👧 🎭 héllo, 世界";

        assert!(empty.is_empty());
        assert_eq!(tokenizer.decode(&empty).unwrap(), "");
        assert_eq!(tokenizer.decode(&tokenizer.encode(emoji)).unwrap(), emoji);
    }

    #[test]
    fn decoding_an_unknown_id_or_a_split_character_is_an_error() {
        let tokenizer = BpeTokenizer::bytes_only();

        let unknown = tokenizer.decode(&[256]).unwrap_err();
        let split = tokenizer.decode(&[0xc3]).unwrap_err();

        assert!(
            matches!(unknown, DataError::UnknownToken { id: 256, .. }),
            "{unknown:?}"
        );
        assert!(
            matches!(split, DataError::DecodedUtf8 { offset: 0, .. }),
            "{split:?}"
        );
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bpe.json");
        let tokenizer = BpeTokenizer::train(&SHAKESPEARE[..10_000], 300).unwrap();

        tokenizer.save(&path).unwrap();
        let loaded = BpeTokenizer::load(&path).unwrap();

        assert_eq!(loaded, tokenizer);
    }

    #[test]
    fn loading_a_merge_of_a_future_token_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bpe.json");
        fs::write(
            &path,
            r#"{"kind": "strata-byte-bpe", "merges": [[97, 98], [257, 97]]}"#,
        )
        .unwrap();

        let err = BpeTokenizer::load(&path).unwrap_err();

        assert!(matches!(err, DataError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("merge 1"), "{err}");
    }

    #[test]
    fn vocab_size_below_256_is_rejected() {
        let err = BpeTokenizer::train("text", 255).unwrap_err();

        assert!(matches!(err, DataError::InvalidArgument { .. }), "{err:?}");
    }

    proptest! {
        #[test]
        fn chunks_concatenate_back_to_the_text(text in any::<String>()) {
            prop_assert_eq!(split_chunks(&text).concat(), text);
        }

        #[test]
        fn any_string_round_trips(
            training in "[a-c 🎭é\n]{0,60}",
            text in any::<String>(),
            extra in 0usize..40,
        ) {
            let tokenizer = BpeTokenizer::train(&training, 256 + extra).unwrap();

            let ids = tokenizer.encode(&text);

            prop_assert!(ids.iter().all(|&id| id < tokenizer.vocab_size()));
            prop_assert_eq!(tokenizer.decode(&ids).unwrap(), text);
        }

        #[test]
        fn text_round_trips_through_a_tokenizer_trained_on_it(text in any::<String>()) {
            let tokenizer = BpeTokenizer::train(&text, 300).unwrap();

            prop_assert_eq!(tokenizer.decode(&tokenizer.encode(&text)).unwrap(), text);
        }
    }
}

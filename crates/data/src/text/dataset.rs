//! Training and validation batches from a token sequence, for next-token prediction.

use strata_tensor::{Generator, IndexTensor};

use crate::error::{DataError, Result};

/// Which part of a [`TextDataset`] to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The first part of the tokens, for training.
    Train,
    /// The last part of the tokens, for validation.
    Validation,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Train => "training split",
            Split::Validation => "validation split",
        }
    }
}

/// A token sequence split into a training part (the first `train_fraction` of the tokens) and
/// a validation part (the rest), read as windows of `context` tokens.
///
/// Each example is a window `x = tokens[s..s + context]` with its targets
/// `y = tokens[s + 1..s + context + 1]`: position `t` of `y` is the token that follows
/// position `t` of `x`.
///
/// ```
/// use strata_data::text::{Split, TextDataset};
/// use strata_tensor::Generator;
///
/// let tokens: Vec<usize> = (0..100).collect();
/// let data = TextDataset::new(tokens, 8, 0.9)?;
/// let (x, y) = data.sample_batch(Split::Train, 4, &mut Generator::new(1))?;
/// assert_eq!(x.shape(), &[4, 8]);
/// assert_eq!(x.as_slice()[0] + 1, y.as_slice()[0]);
/// # Ok::<(), strata_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextDataset {
    tokens: Vec<usize>,
    split_at: usize,
    context: usize,
}

impl TextDataset {
    /// Splits `tokens` after the first `floor(len * train_fraction)` tokens.
    ///
    /// A `train_fraction` of 1 leaves no validation split.
    ///
    /// # Errors
    /// - [`DataError::InvalidArgument`] if `context` is 0 or `train_fraction` is not in
    ///   `(0, 1]`;
    /// - [`DataError::TooShort`] if the corpus, the training split, or a non-empty
    ///   validation split has fewer than `context + 1` tokens, giving both lengths.
    pub fn new(tokens: Vec<usize>, context: usize, train_fraction: f64) -> Result<Self> {
        const OP: &str = "building the text dataset";
        if context == 0 {
            return Err(DataError::InvalidArgument {
                op: OP,
                reason: "context must be at least 1".into(),
            });
        }
        if !(train_fraction > 0.0 && train_fraction <= 1.0) {
            return Err(DataError::InvalidArgument {
                op: OP,
                reason: format!("train_fraction must be in (0, 1], got {train_fraction}"),
            });
        }
        let too_short = |what, len| DataError::TooShort {
            op: OP,
            what,
            len,
            context,
        };
        if tokens.len() <= context {
            return Err(too_short("corpus", tokens.len()));
        }

        let split_at = ((tokens.len() as f64 * train_fraction).floor() as usize).min(tokens.len());
        let validation_len = tokens.len() - split_at;
        if split_at <= context {
            return Err(too_short(Split::Train.name(), split_at));
        }
        if validation_len > 0 && validation_len <= context {
            return Err(too_short(Split::Validation.name(), validation_len));
        }
        Ok(Self {
            tokens,
            split_at,
            context,
        })
    }

    /// The context length: tokens per example.
    pub fn context(&self) -> usize {
        self.context
    }

    /// All tokens, training then validation.
    pub fn all_tokens(&self) -> &[usize] {
        &self.tokens
    }

    /// The tokens of `split`.
    pub fn tokens(&self, split: Split) -> &[usize] {
        match split {
            Split::Train => &self.tokens[..self.split_at],
            Split::Validation => &self.tokens[self.split_at..],
        }
    }

    /// `batch_size` windows of `split` at uniformly random start positions drawn from `gen`,
    /// with their targets; the same generator state gives the same batch.
    ///
    /// # Shapes
    /// - output: inputs `(batch_size, context)`, targets `(batch_size, context)`
    ///
    /// # Errors
    /// - [`DataError::InvalidArgument`] if `batch_size` is 0;
    /// - [`DataError::TooShort`] if `split` has fewer than `context + 1` tokens (only an
    ///   empty validation split can).
    pub fn sample_batch(
        &self,
        split: Split,
        batch_size: usize,
        gen: &mut Generator,
    ) -> Result<(IndexTensor, IndexTensor)> {
        let tokens = self.checked_tokens("sampling a text batch", split, batch_size)?;
        let starts: Vec<usize> = (0..batch_size)
            .map(|_| gen.below(tokens.len() - self.context))
            .collect();
        self.windows(tokens, &starts)
    }

    /// Consecutive, non-overlapping windows covering `split` from its start, `batch_size` at a
    /// time, for evaluation: window `w` starts at token `w * context`, and the last batch may
    /// be smaller. Tokens at the end that do not fill a window with its targets are left out.
    ///
    /// # Shapes
    /// - each item: inputs `(b, context)`, targets `(b, context)` with `b <= batch_size`
    ///
    /// # Errors
    /// As [`TextDataset::sample_batch`].
    pub fn sequential_batches(
        &self,
        split: Split,
        batch_size: usize,
    ) -> Result<SequentialBatches<'_>> {
        let tokens = self.checked_tokens("batching text in order", split, batch_size)?;
        Ok(SequentialBatches {
            dataset: self,
            tokens,
            batch_size,
            next_window: 0,
            windows: (tokens.len() - 1) / self.context,
        })
    }

    fn checked_tokens(
        &self,
        op: &'static str,
        split: Split,
        batch_size: usize,
    ) -> Result<&[usize]> {
        if batch_size == 0 {
            return Err(DataError::InvalidArgument {
                op,
                reason: "batch_size must be at least 1".into(),
            });
        }
        let tokens = self.tokens(split);
        if tokens.len() <= self.context {
            return Err(DataError::TooShort {
                op,
                what: split.name(),
                len: tokens.len(),
                context: self.context,
            });
        }
        Ok(tokens)
    }

    /// The windows of `tokens` starting at `starts`, with their targets.
    fn windows(&self, tokens: &[usize], starts: &[usize]) -> Result<(IndexTensor, IndexTensor)> {
        let context = self.context;
        let mut inputs = Vec::with_capacity(starts.len() * context);
        let mut targets = Vec::with_capacity(starts.len() * context);
        for &start in starts {
            inputs.extend_from_slice(&tokens[start..start + context]);
            targets.extend_from_slice(&tokens[start + 1..start + context + 1]);
        }
        let shape = [starts.len(), context];
        Ok((
            IndexTensor::from_vec(inputs, &shape)?,
            IndexTensor::from_vec(targets, &shape)?,
        ))
    }
}

/// The batches of [`TextDataset::sequential_batches`], in order.
#[derive(Debug, Clone)]
pub struct SequentialBatches<'a> {
    dataset: &'a TextDataset,
    tokens: &'a [usize],
    batch_size: usize,
    next_window: usize,
    windows: usize,
}

impl Iterator for SequentialBatches<'_> {
    type Item = (IndexTensor, IndexTensor);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_window >= self.windows {
            return None;
        }
        let end = (self.next_window + self.batch_size).min(self.windows);
        let context = self.dataset.context;
        let starts: Vec<usize> = (self.next_window..end).map(|w| w * context).collect();
        self.next_window = end;
        let batch = self.dataset.windows(self.tokens, &starts);
        Some(batch.expect("bug: a batch holds rows * context indices"))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.windows - self.next_window).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for SequentialBatches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens `0..n`, so every window is a run of consecutive numbers.
    fn counting(n: usize, context: usize) -> TextDataset {
        TextDataset::new((0..n).collect(), context, 0.9).unwrap()
    }

    #[test]
    fn split_keeps_the_first_ninety_percent_for_training() {
        let data = counting(1000, 8);

        let (train, validation) = (data.tokens(Split::Train), data.tokens(Split::Validation));

        assert_eq!(train.len(), 900);
        assert_eq!(validation.first(), Some(&900));
        assert_eq!(validation.len(), 100);
    }

    #[test]
    fn random_batches_have_the_right_shape_and_targets_are_inputs_shifted_by_one() {
        // Use a token sequence that is not a simple count, so the shift is checked against
        // the data rather than against arithmetic.
        let tokens: Vec<usize> = (0..500).map(|i| (i * 37 + 11) % 101).collect();
        let data = TextDataset::new(tokens.clone(), 16, 0.9).unwrap();
        let mut gen = Generator::new(3);

        let (x, y) = data.sample_batch(Split::Validation, 5, &mut gen).unwrap();

        assert_eq!(x.shape(), &[5, 16]);
        assert_eq!(y.shape(), &[5, 16]);
        let validation = &tokens[450..];
        for (row_x, row_y) in x.as_slice().chunks(16).zip(y.as_slice().chunks(16)) {
            let start = validation
                .windows(17)
                .position(|w| w[..16] == *row_x && w[1..] == *row_y);
            assert!(
                start.is_some(),
                "row {row_x:?} / {row_y:?} is not a shifted window"
            );
        }
    }

    #[test]
    fn random_batches_are_deterministic_for_a_seed() {
        let data = counting(2000, 8);

        let a = data
            .sample_batch(Split::Train, 4, &mut Generator::new(9))
            .unwrap();
        let b = data
            .sample_batch(Split::Train, 4, &mut Generator::new(9))
            .unwrap();
        let c = data
            .sample_batch(Split::Train, 4, &mut Generator::new(10))
            .unwrap();

        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn random_windows_reach_both_ends_of_the_split() {
        // 12 tokens, all for training, and context 4 allow starts 0..=7; the last window's
        // targets end at token 11.
        let data = TextDataset::new((0..12).collect(), 4, 1.0).unwrap();
        let mut gen = Generator::new(0);

        let (x, y) = data.sample_batch(Split::Train, 400, &mut gen).unwrap();

        let firsts: std::collections::BTreeSet<_> = x.as_slice().chunks(4).map(|r| r[0]).collect();
        assert_eq!(
            firsts.into_iter().collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(y.as_slice().iter().max(), Some(&11));
    }

    #[test]
    fn sequential_batches_cover_the_split_in_order() {
        // 90 training tokens (of 101), context 10: windows start at 0, 10, ..., 70 (80 would
        // need token 90 as its last target).
        let data = counting(101, 10);

        let batches: Vec<_> = data.sequential_batches(Split::Train, 3).unwrap().collect();

        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].0.shape(), &[2, 10]);
        let starts: Vec<usize> = batches
            .iter()
            .flat_map(|(x, _)| x.as_slice().chunks(10).map(|r| r[0]).collect::<Vec<_>>())
            .collect();
        assert_eq!(starts, vec![0, 10, 20, 30, 40, 50, 60, 70]);
        assert_eq!(batches[2].1.as_slice().last(), Some(&80));
    }

    #[test]
    fn corpus_shorter_than_context_plus_one_reports_both_lengths() {
        let err = TextDataset::new((0..10).collect(), 10, 0.9).unwrap_err();

        assert!(
            matches!(
                err,
                DataError::TooShort {
                    what: "corpus",
                    len: 10,
                    context: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "building the text dataset: corpus has 10 tokens but a context of 10 needs at least 11"
        );
    }

    #[test]
    fn validation_split_too_short_for_the_context_is_an_error() {
        let err = TextDataset::new((0..100).collect(), 10, 0.95).unwrap_err();

        assert!(
            matches!(
                err,
                DataError::TooShort {
                    what: "validation split",
                    len: 5,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn without_validation_split_sampling_it_is_an_error() {
        let data = TextDataset::new((0..100).collect(), 10, 1.0).unwrap();

        let err = data
            .sample_batch(Split::Validation, 2, &mut Generator::new(0))
            .unwrap_err();

        assert!(matches!(err, DataError::TooShort { len: 0, .. }), "{err:?}");
    }

    #[test]
    fn invalid_arguments_are_rejected() {
        let zero_context = TextDataset::new((0..100).collect(), 0, 0.9);
        let bad_fraction = TextDataset::new((0..100).collect(), 4, 0.0);
        let nan_fraction = TextDataset::new((0..100).collect(), 4, f64::NAN);
        let zero_batch = counting(100, 4).sample_batch(Split::Train, 0, &mut Generator::new(0));

        assert!(zero_context.is_err());
        assert!(bad_fraction.is_err());
        assert!(nan_fraction.is_err());
        assert!(zero_batch.is_err());
    }
}

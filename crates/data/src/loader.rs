//! Mini-batches from any indexable dataset, prepared on a background thread (PyTorch's
//! `DataLoader` with one worker).
//!
//! A [`DataLoader`] splits the indices `0..len` of a [`Dataset`] into batches, optionally in a
//! fresh random order each epoch, and hands the items of each batch to a collate function that
//! turns them into whatever the training loop wants (by default the `Vec` of items itself).
//! [`DataLoader::epoch`] starts one thread for the epoch; it prepares batches ahead of the
//! consumer, at most [`LoaderConfig::prefetch`] of them waiting in a bounded channel. The
//! batches arrive in the same order whatever the timing, because one thread builds them in
//! order. Dropping the iterator mid-epoch stops the thread and waits for it.
//!
//! ```
//! use std::sync::Arc;
//! use strata_data::loader::{DataLoader, Dataset, LoaderConfig};
//!
//! struct Squares;
//! impl Dataset for Squares {
//!     type Item = u64;
//!     fn len(&self) -> usize { 10 }
//!     fn get(&self, index: usize) -> u64 { (index * index) as u64 }
//! }
//!
//! let config = LoaderConfig { batch_size: 4, ..LoaderConfig::default() };
//! let loader = DataLoader::new(Arc::new(Squares), config)?;
//! let batches: Vec<Vec<u64>> = loader.epoch(0).collect();
//! assert_eq!(batches, vec![vec![0, 1, 4, 9], vec![16, 25, 36, 49], vec![64, 81]]);
//! # Ok::<(), strata_data::DataError>(())
//! ```

use std::fmt;
use std::panic;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use strata_tensor::Generator;

use crate::error::{DataError, Result};

/// A collection of examples that can be read by index (PyTorch's map-style `Dataset`).
///
/// Implementations are shared with the loader's background thread, hence `Send + Sync`.
pub trait Dataset: Send + Sync {
    /// One example, such as an `(image, label)` pair. A dataset that can fail while reading
    /// (from disk, say) uses a `Result` here and lets the collate function gather the errors.
    type Item: Send;

    /// The number of examples.
    fn len(&self) -> usize;

    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example `index`. The loader only asks for `index < self.len()`.
    fn get(&self, index: usize) -> Self::Item;
}

/// How a [`DataLoader`] batches and orders a dataset; `Default` matches PyTorch's defaults
/// except for `prefetch`, which PyTorch calls `prefetch_factor` and also sets to 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Examples per batch. Default 1.
    pub batch_size: usize,
    /// Whether to visit the examples in a new random order each epoch. Default `false`.
    pub shuffle: bool,
    /// Whether to leave out a last batch smaller than `batch_size`. Default `false`.
    pub drop_last: bool,
    /// Seed of the shuffling; the order of epoch `e` depends only on `seed` and `e`. Default 0.
    pub seed: u64,
    /// How many finished batches may wait for the consumer; 0 makes the background thread hand
    /// over each batch only when the consumer asks for it. Default 2.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 1,
            shuffle: false,
            drop_last: false,
            seed: 0,
            prefetch: 2,
        }
    }
}

/// The collate function of [`DataLoader::new`]: a batch is the `Vec` of its items.
pub type VecCollate<T> = fn(Vec<T>) -> Vec<T>;

/// Batches of a [`Dataset`], built on a background thread; see the [module docs](self).
pub struct DataLoader<D: Dataset, F = VecCollate<<D as Dataset>::Item>> {
    dataset: Arc<D>,
    config: LoaderConfig,
    collate: Arc<F>,
}

impl<D: Dataset, F> fmt::Debug for DataLoader<D, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The dataset and the collate function (often a closure) need not be `Debug`.
        f.debug_struct("DataLoader")
            .field("dataset_len", &self.dataset.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<D> DataLoader<D>
where
    D: Dataset + 'static,
    D::Item: 'static,
{
    /// A loader whose batches are `Vec`s of items.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `config.batch_size` is 0.
    pub fn new(dataset: Arc<D>, config: LoaderConfig) -> Result<Self> {
        Self::with_collate(dataset, config, identity::<D::Item>)
    }
}

impl<D, F, B> DataLoader<D, F>
where
    D: Dataset + 'static,
    D::Item: 'static,
    F: Fn(Vec<D::Item>) -> B + Send + Sync + 'static,
    B: Send + 'static,
{
    /// A loader that turns the items of each batch into a `B` with `collate` (PyTorch's
    /// `collate_fn`), on the background thread.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `config.batch_size` is 0.
    pub fn with_collate(dataset: Arc<D>, config: LoaderConfig, collate: F) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(DataError::InvalidArgument {
                op: "building the data loader",
                reason: "batch_size must be at least 1".into(),
            });
        }
        Ok(Self {
            dataset,
            config,
            collate: Arc::new(collate),
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The number of batches in an epoch.
    pub fn len(&self) -> usize {
        let (n, size) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            n / size
        } else {
            n.div_ceil(size)
        }
    }

    /// Whether an epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The order in which epoch `epoch` visits the examples: `0..len` without shuffling, else
    /// a permutation drawn from a generator seeded by `config.seed` and `epoch` together.
    pub fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        let n = self.dataset.len();
        if self.config.shuffle {
            Generator::new(epoch_seed(self.config.seed, epoch)).randperm(n)
        } else {
            (0..n).collect()
        }
    }

    /// Starts epoch `epoch`: a background thread builds its batches in order while the returned
    /// iterator hands them out. Dropping the iterator early stops the thread.
    ///
    /// # Panics
    /// The iterator re-raises a panic of the dataset or of the collate function on the
    /// consumer's thread, when it reaches the batch that failed.
    pub fn epoch(&self, epoch: u64) -> Batches<B> {
        let indices = self.epoch_indices(epoch);
        let batches = self.len();
        let (sender, receiver) = mpsc::sync_channel(self.config.prefetch);
        let stop = Arc::new(AtomicBool::new(false));
        let worker_stop = Arc::clone(&stop);
        let dataset = Arc::clone(&self.dataset);
        let collate = Arc::clone(&self.collate);
        let batch_size = self.config.batch_size;

        let worker = thread::Builder::new()
            .name("strata-data-loader".into())
            .spawn(move || {
                for chunk in indices.chunks(batch_size).take(batches) {
                    let mut items = Vec::with_capacity(chunk.len());
                    for &index in chunk {
                        if worker_stop.load(Ordering::Relaxed) {
                            return;
                        }
                        items.push(dataset.get(index));
                    }
                    if sender.send(collate(items)).is_err() {
                        return;
                    }
                }
            })
            .expect("bug: the operating system refused to start the loader thread");
        Batches {
            receiver: Some(receiver),
            stop,
            worker: Some(worker),
            remaining: batches,
        }
    }
}

/// The batches of one epoch, in order; returned by [`DataLoader::epoch`].
///
/// Dropping it before the end stops the background thread and waits for it to finish the item
/// it is reading.
#[derive(Debug)]
pub struct Batches<B> {
    receiver: Option<Receiver<B>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl<B> Iterator for Batches<B> {
    type Item = B;

    fn next(&mut self) -> Option<B> {
        let received = self.receiver.as_ref()?.recv();
        match received {
            Ok(batch) => {
                self.remaining = self.remaining.saturating_sub(1);
                Some(batch)
            }
            Err(_) => {
                // The sender is gone: the epoch is over, or the worker panicked.
                self.receiver = None;
                self.remaining = 0;
                if let Some(worker) = self.worker.take() {
                    if let Err(payload) = worker.join() {
                        panic::resume_unwind(payload);
                    }
                }
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<B> ExactSizeIterator for Batches<B> {}

impl<B> Drop for Batches<B> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver makes a worker blocked in `send` return at once.
        self.receiver = None;
        if let Some(worker) = self.worker.take() {
            // A panic here was never observed by the consumer, who stopped early; re-raising
            // it from a destructor could abort, so it is dropped with the thread.
            let _ = worker.join();
        }
    }
}

fn identity<T>(items: Vec<T>) -> Vec<T> {
    items
}

/// A seed for epoch `epoch`, mixing both numbers so that nearby seeds and epochs give unrelated
/// streams (the SplitMix64 finaliser).
fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use super::*;

    /// Items are their own indices; counts how many were read.
    struct Numbers {
        len: usize,
        reads: AtomicUsize,
    }

    impl Numbers {
        fn new(len: usize) -> Arc<Self> {
            Arc::new(Self {
                len,
                reads: AtomicUsize::new(0),
            })
        }
    }

    impl Dataset for Numbers {
        type Item = usize;

        fn len(&self) -> usize {
            self.len
        }

        fn get(&self, index: usize) -> usize {
            self.reads.fetch_add(1, Ordering::SeqCst);
            index
        }
    }

    fn config(batch_size: usize, shuffle: bool, drop_last: bool) -> LoaderConfig {
        LoaderConfig {
            batch_size,
            shuffle,
            drop_last,
            seed: 42,
            prefetch: 2,
        }
    }

    #[test]
    fn unshuffled_batches_are_in_order_and_keep_the_short_last_batch() {
        let loader = DataLoader::new(Numbers::new(7), config(3, false, false)).unwrap();

        let batches: Vec<_> = loader.epoch(0).collect();

        assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(loader.len(), 3);
    }

    #[test]
    fn drop_last_leaves_out_the_short_batch() {
        let loader = DataLoader::new(Numbers::new(10), config(3, true, true)).unwrap();

        let batches: Vec<_> = loader.epoch(0).collect();

        assert_eq!(loader.len(), 3);
        assert_eq!(batches.len(), 3);
        assert!(batches.iter().all(|b| b.len() == 3));
        let mut seen: Vec<usize> = batches.concat();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 9, "an example was repeated");
    }

    #[test]
    fn shuffled_order_depends_only_on_seed_and_epoch_not_on_timing() {
        let loader = DataLoader::new(Numbers::new(50), config(4, true, false)).unwrap();
        let twin = DataLoader::new(Numbers::new(50), config(4, true, false)).unwrap();

        let fast: Vec<_> = loader.epoch(3).collect();
        let slow: Vec<_> = twin
            .epoch(3)
            .inspect(|_| thread::sleep(Duration::from_millis(2)))
            .collect();
        let next_epoch: Vec<_> = loader.epoch(4).collect();

        assert_eq!(fast, slow);
        assert_ne!(fast, next_epoch);
        let mut all = fast.concat();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn different_seeds_give_different_orders() {
        let a = DataLoader::new(Numbers::new(30), config(30, true, false)).unwrap();
        let mut other = config(30, true, false);
        other.seed = 43;
        let b = DataLoader::new(Numbers::new(30), other).unwrap();

        assert_ne!(a.epoch_indices(0), b.epoch_indices(0));
    }

    #[test]
    fn collate_runs_on_each_batch() {
        let sum = |items: Vec<usize>| items.iter().sum::<usize>();
        let loader = DataLoader::with_collate(Numbers::new(6), config(2, false, false), sum);

        let sums: Vec<usize> = loader.unwrap().epoch(0).collect();

        assert_eq!(sums, vec![1, 5, 9]);
    }

    #[test]
    fn iterator_reports_the_exact_number_of_batches_left() {
        let loader = DataLoader::new(Numbers::new(10), config(4, false, false)).unwrap();
        let mut batches = loader.epoch(0);

        let before = batches.len();
        batches.next();
        let after = batches.len();

        assert_eq!((before, after), (3, 2));
    }

    #[test]
    fn zero_batch_size_is_rejected() {
        let err = DataLoader::new(Numbers::new(3), config(0, false, false)).unwrap_err();

        assert!(err.to_string().contains("batch_size"), "{err}");
    }

    #[test]
    fn dropping_mid_epoch_stops_the_worker_thread() {
        // A worker blocked on a full channel must notice the consumer left; before the drop
        // handling existed, such a thread would wait forever.
        let dataset = Numbers::new(100_000);
        let loader = DataLoader::new(Arc::clone(&dataset), config(10, true, false)).unwrap();
        let (done_tx, done_rx) = mpsc::channel();

        let consumer = thread::spawn(move || {
            let mut batches = loader.epoch(0);
            let first = batches.next();
            thread::sleep(Duration::from_millis(20));
            drop(batches);
            drop(loader);
            done_tx.send(first.is_some()).unwrap();
        });
        let got_first = done_rx.recv_timeout(Duration::from_secs(20));

        assert_eq!(got_first, Ok(true), "dropping the batches hung");
        consumer.join().unwrap();
        assert_eq!(
            Arc::strong_count(&dataset),
            1,
            "the worker still holds the dataset"
        );
        assert!(dataset.reads.load(Ordering::SeqCst) < 100_000);
    }

    #[test]
    fn worker_stays_at_most_prefetch_batches_ahead() {
        let dataset = Numbers::new(1000);
        let loader = DataLoader::new(Arc::clone(&dataset), config(10, false, false)).unwrap();
        let reads = || dataset.reads.load(Ordering::SeqCst);

        let mut batches = loader.epoch(0);
        batches.next();
        let deadline = Instant::now() + Duration::from_secs(10);
        while reads() < 30 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(50));

        // One batch consumed, two waiting in the channel, one built and blocked in `send`.
        assert!(
            reads() >= 30,
            "the worker did not prefetch: {} items read",
            reads()
        );
        assert!(
            reads() <= 40,
            "{} items read ahead of the consumer",
            reads()
        );
    }

    /// Panics when asked for item 5.
    struct Faulty;

    impl Dataset for Faulty {
        type Item = usize;

        fn len(&self) -> usize {
            10
        }

        fn get(&self, index: usize) -> usize {
            assert_ne!(index, 5, "item five is unreadable");
            index
        }
    }

    #[test]
    #[should_panic(expected = "item five is unreadable")]
    fn a_panic_in_the_dataset_reaches_the_consumer() {
        let loader = DataLoader::new(Arc::new(Faulty), config(2, false, false)).unwrap();

        let _ = loader.epoch(0).count();
    }

    #[test]
    fn a_panic_after_the_consumer_left_is_not_raised_from_drop() {
        // The worker runs ahead, reaches item 5 and panics while the consumer holds batch 0.
        let mut roomy = config(1, false, false);
        roomy.prefetch = 10;
        let loader = DataLoader::new(Arc::new(Faulty), roomy).unwrap();

        let mut batches = loader.epoch(0);
        let first = batches.next();
        thread::sleep(Duration::from_millis(50));
        let dropped = panic::catch_unwind(panic::AssertUnwindSafe(move || drop(batches)));

        assert_eq!(first, Some(vec![0]));
        assert!(
            dropped.is_ok(),
            "dropping the batches re-raised the worker's panic"
        );
    }
}

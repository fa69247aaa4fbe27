//! Image classification datasets in the MNIST layout: [`ImageDataset`] holds greyscale images
//! with class labels, and [`Mnist`] loads the four IDX files of an MNIST or Fashion-MNIST
//! folder.
//!
//! Pixels are kept as bytes and turned into `f32` in `[0, 1]` when a batch is taken, so the
//! 60,000 training images of MNIST take 47 MB rather than 188 MB.
//!
//! On Debian, `apt-get install dataset-fashion-mnist` puts Fashion-MNIST under
//! [`Mnist::FASHION_MNIST_DIR`]:
//!
//! ```no_run
//! use strata_data::mnist::{Mnist, MnistConfig};
//!
//! let data = Mnist::load(Mnist::FASHION_MNIST_DIR, &MnistConfig { padding: 2 })?;
//! let (images, labels) = data.train.batch(&[0, 1, 2, 3])?;
//! assert_eq!(images.shape(), &[4, 1, 32, 32]);
//! assert_eq!(labels.shape(), &[4]);
//! # Ok::<(), strata_data::DataError>(())
//! ```

use std::path::{Path, PathBuf};

use strata_tensor::{IndexTensor, Tensor};

use crate::error::{DataError, Result};
use crate::idx::{self, IdxImages};
use crate::loader::Dataset;

/// The operation of [`Mnist::load`], as error messages name it.
const LOAD: &str = "loading MNIST";

/// How to get the data when a folder or file is missing.
const HINT: &str = "`apt-get install dataset-fashion-mnist` puts Fashion-MNIST under \
                    /usr/share/datasets/fashion-mnist/";

/// Greyscale images `[1, height, width]` with a class label each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDataset {
    images: IdxImages,
    labels: Vec<usize>,
}

impl ImageDataset {
    /// Pairs images with labels.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if there are not as many labels as images.
    pub fn new(images: IdxImages, labels: Vec<usize>) -> Result<Self> {
        if images.len() != labels.len() {
            return Err(DataError::InvalidArgument {
                op: "pairing images with labels",
                reason: format!("{} images but {} labels", images.len(), labels.len()),
            });
        }
        Ok(Self { images, labels })
    }

    /// Reads an IDX image file and its IDX label file (raw or gzipped), adding `padding` zero
    /// pixels on each side of every image (2 turns MNIST's 28x28 into LeNet's 32x32).
    ///
    /// # Errors
    /// The errors of [`idx::read_images`] and [`idx::read_labels`], and
    /// [`DataError::CountMismatch`] if the two files hold different numbers of examples.
    pub fn from_files(
        images_path: impl AsRef<Path>,
        labels_path: impl AsRef<Path>,
        padding: usize,
    ) -> Result<Self> {
        let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
        let images = idx::read_images(images_path)?;
        let labels = idx::read_labels(labels_path)?;
        if images.len() != labels.len() {
            return Err(DataError::CountMismatch {
                op: "pairing image and label files",
                images_path: images_path.to_path_buf(),
                labels_path: labels_path.to_path_buf(),
                images: images.len(),
                labels: labels.len(),
            });
        }
        Ok(Self {
            images: pad(&images, padding),
            labels: labels.into_iter().map(usize::from).collect(),
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one image, `[channels = 1, height, width]`.
    pub fn image_shape(&self) -> [usize; 3] {
        [1, self.images.rows(), self.images.cols()]
    }

    /// The images as bytes, padding included.
    pub fn images(&self) -> &IdxImages {
        &self.images
    }

    /// The label of every example.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The number of classes: the largest label plus one (0 for an empty dataset).
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m + 1)
    }

    /// Image `index` as `f32` in `[0, 1]`, pixel / 255.
    ///
    /// # Shapes
    /// - output: `(1, height, width)`
    ///
    /// # Panics
    /// If `index >= self.len()`.
    pub fn image(&self, index: usize) -> Tensor<f32> {
        let pixels = to_unit_f32(self.images.image(index));
        Tensor::from_vec(pixels, &self.image_shape())
            .expect("bug: an image holds height * width pixels")
    }

    /// The images and labels of `indices`, stacked.
    ///
    /// # Shapes
    /// - output: images `(batch, 1, height, width)` in `[0, 1]`, labels `(batch,)`
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if an index is `>= self.len()`.
    pub fn batch(&self, indices: &[usize]) -> Result<(Tensor<f32>, IndexTensor)> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::InvalidArgument {
                op: "building an image batch",
                reason: format!("index {bad} out of range for {} examples", self.len()),
            });
        }
        let [_, rows, cols] = self.image_shape();
        let mut pixels = Vec::with_capacity(indices.len() * rows * cols);
        for &i in indices {
            pixels.extend(self.images.image(i).iter().map(|&p| f32::from(p) / 255.0));
        }
        let labels: Vec<usize> = indices.iter().map(|&i| self.labels[i]).collect();
        let images = Tensor::from_vec(pixels, &[indices.len(), 1, rows, cols])?;
        Ok((images, IndexTensor::from_slice(&labels)))
    }

    /// Stacks `(image, label)` items, as [`Dataset::get`] returns them, into one batch: the
    /// collate function to give [`DataLoader::with_collate`](crate::loader::DataLoader).
    ///
    /// # Shapes
    /// - `items`: images `(1, height, width)`; output: `(batch, 1, height, width)`, `(batch,)`
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `items` is empty or the images differ in shape.
    pub fn collate(items: Vec<(Tensor<f32>, usize)>) -> Result<(Tensor<f32>, IndexTensor)> {
        let first_shape = match items.first() {
            Some((image, _)) => image.shape().to_vec(),
            None => {
                return Err(DataError::InvalidArgument {
                    op: "collating images into a batch",
                    reason: "no items to stack".into(),
                })
            }
        };
        let mut pixels = Vec::with_capacity(items.len() * first_shape.iter().product::<usize>());
        let mut labels = Vec::with_capacity(items.len());
        for (image, label) in &items {
            if image.shape() != first_shape.as_slice() {
                return Err(DataError::InvalidArgument {
                    op: "collating images into a batch",
                    reason: format!(
                        "images of shape {:?} and {:?} cannot be stacked",
                        first_shape,
                        image.shape()
                    ),
                });
            }
            pixels.extend_from_slice(&image.contiguous_slice());
            labels.push(*label);
        }
        let mut shape = vec![items.len()];
        shape.extend_from_slice(&first_shape);
        Ok((
            Tensor::from_vec(pixels, &shape)?,
            IndexTensor::from_slice(&labels),
        ))
    }
}

impl Dataset for ImageDataset {
    type Item = (Tensor<f32>, usize);

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> (Tensor<f32>, usize) {
        (self.image(index), self.labels[index])
    }
}

/// Options of [`Mnist::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MnistConfig {
    /// Zero pixels added on each side of every image. Default 0; 2 gives LeNet's 32x32.
    pub padding: usize,
}

/// The training and test sets of an MNIST-layout folder (MNIST, Fashion-MNIST, KMNIST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// The training set (60,000 examples for MNIST and Fashion-MNIST).
    pub train: ImageDataset,
    /// The test set (10,000 examples for MNIST and Fashion-MNIST).
    pub test: ImageDataset,
}

impl Mnist {
    /// Where Debian's `dataset-fashion-mnist` package puts Fashion-MNIST.
    pub const FASHION_MNIST_DIR: &'static str = "/usr/share/datasets/fashion-mnist";

    /// Loads the four files of `dir`: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each raw or gzipped with a
    /// `.gz` suffix (the spelling with `.idx3-ubyte` instead of `-idx3-ubyte` is accepted
    /// too).
    ///
    /// # Errors
    /// - [`DataError::NotFound`] if `dir` or one of the files is missing, with a message
    ///   saying how to install Fashion-MNIST;
    /// - the errors of [`ImageDataset::from_files`] for each pair of files.
    pub fn load(dir: impl AsRef<Path>, config: &MnistConfig) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(DataError::NotFound {
                op: LOAD,
                path: dir.to_path_buf(),
                hint: HINT.to_string(),
            });
        }
        let train = ImageDataset::from_files(
            find_file(dir, "train-images-idx3-ubyte")?,
            find_file(dir, "train-labels-idx1-ubyte")?,
            config.padding,
        )?;
        let test = ImageDataset::from_files(
            find_file(dir, "t10k-images-idx3-ubyte")?,
            find_file(dir, "t10k-labels-idx1-ubyte")?,
            config.padding,
        )?;
        Ok(Self { train, test })
    }
}

/// The first existing spelling of `stem` in `dir`.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    let candidates = [
        stem.to_string(),
        format!("{stem}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ];
    candidates
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| DataError::NotFound {
            op: LOAD,
            path: dir.join(format!("{stem}[.gz]")),
            hint: HINT.to_string(),
        })
}

/// Adds `padding` zero pixels around every image.
fn pad(images: &IdxImages, padding: usize) -> IdxImages {
    if padding == 0 {
        return images.clone();
    }
    let (rows, cols) = (images.rows(), images.cols());
    let (out_rows, out_cols) = (rows + 2 * padding, cols + 2 * padding);
    let mut pixels = vec![0u8; images.len() * out_rows * out_cols];
    for (index, out) in pixels.chunks_exact_mut(out_rows * out_cols).enumerate() {
        let image = images.image(index);
        for r in 0..rows {
            let start = (r + padding) * out_cols + padding;
            out[start..start + cols].copy_from_slice(&image[r * cols..(r + 1) * cols]);
        }
    }
    IdxImages::new(images.len(), out_rows, out_cols, pixels)
        .expect("bug: padded images hold len * out_rows * out_cols pixels")
}

fn to_unit_f32(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| f32::from(p) / 255.0).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::idx::tests::{gzip, idx_bytes};
    use crate::idx::{IMAGES_MAGIC, LABELS_MAGIC};
    use crate::loader::{DataLoader, LoaderConfig};

    /// Writes an MNIST-layout folder of `n_train` and `n_test` 2x3 images whose pixels count
    /// up from the example index; the training files are gzipped, the test files raw.
    fn write_folder(dir: &Path, n_train: u32, n_test: u32) {
        let images = |n: u32| {
            let pixels: Vec<u8> = (0..n * 6).map(|i| (i / 6 * 10 + i % 6) as u8).collect();
            idx_bytes(IMAGES_MAGIC, &[n, 2, 3], &pixels)
        };
        let labels = |n: u32| {
            idx_bytes(
                LABELS_MAGIC,
                &[n],
                &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>(),
            )
        };
        let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
        write("train-images-idx3-ubyte.gz", gzip(&images(n_train)));
        write("train-labels-idx1-ubyte.gz", gzip(&labels(n_train)));
        write("t10k-images-idx3-ubyte", images(n_test));
        write("t10k-labels-idx1-ubyte", labels(n_test));
    }

    #[test]
    fn load_reads_gzipped_and_raw_files_and_scales_to_unit_range() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 12, 4);

        let data = Mnist::load(dir.path(), &MnistConfig::default()).unwrap();

        assert_eq!((data.train.len(), data.test.len()), (12, 4));
        assert_eq!(data.train.image_shape(), [1, 2, 3]);
        assert_eq!(data.train.labels()[11], 1);
        assert_eq!(data.train.num_classes(), 10);
        let image = data.test.image(3).to_vec();
        let expected: Vec<f32> = (30..36).map(|p| p as f32 / 255.0).collect();
        assert_eq!(image, expected);
    }

    #[test]
    fn padding_surrounds_each_image_with_zeros() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 2, 2);

        let data = Mnist::load(dir.path(), &MnistConfig { padding: 2 }).unwrap();

        assert_eq!(data.train.image_shape(), [1, 6, 7]);
        let image = data.train.images().image(1);
        let inner: Vec<u8> = (0..2)
            .flat_map(|r| image[(r + 2) * 7 + 2..(r + 2) * 7 + 5].to_vec())
            .collect();
        assert_eq!(inner, vec![10, 11, 12, 13, 14, 15]);
        assert_eq!(image.iter().map(|&p| u32::from(p)).sum::<u32>(), 75);
    }

    #[test]
    fn batch_stacks_images_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 5, 1);
        let data = Mnist::load(dir.path(), &MnistConfig::default()).unwrap();

        let (images, labels) = data.train.batch(&[4, 0, 2]).unwrap();

        assert_eq!(images.shape(), &[3, 1, 2, 3]);
        assert_eq!(labels.as_slice(), &[4, 0, 2]);
        assert_eq!(images.get(&[0, 0, 1, 2]).unwrap(), 45.0 / 255.0);
        assert!(data.train.batch(&[5]).is_err());
    }

    #[test]
    fn loader_with_collate_gives_the_same_batches_as_batch() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 7, 1);
        let train = Arc::new(
            Mnist::load(dir.path(), &MnistConfig::default())
                .unwrap()
                .train,
        );
        let config = LoaderConfig {
            batch_size: 3,
            shuffle: true,
            ..LoaderConfig::default()
        };
        let loader = DataLoader::with_collate(Arc::clone(&train), config, ImageDataset::collate);
        let loader = loader.unwrap();

        let batches: Vec<_> = loader.epoch(1).map(|b| b.unwrap()).collect();

        let order = loader.epoch_indices(1);
        for (batch, indices) in batches.iter().zip(order.chunks(3)) {
            let (images, labels) = train.batch(indices).unwrap();
            assert_eq!(batch.0, images);
            assert_eq!(batch.1, labels);
        }
        assert_eq!(batches.len(), 3);
    }

    #[test]
    fn missing_folder_says_how_to_get_the_data() {
        let dir = tempfile::tempdir().unwrap();

        let err = Mnist::load(dir.path().join("nowhere"), &MnistConfig::default()).unwrap_err();

        let message = err.to_string();
        assert!(matches!(err, DataError::NotFound { .. }));
        let expected = format!(
            "loading MNIST: {} not found",
            dir.path().join("nowhere").display()
        );
        assert!(message.starts_with(&expected), "{message}");
        assert!(
            message.contains("apt-get install dataset-fashion-mnist"),
            "{message}"
        );
        assert!(
            message.contains("/usr/share/datasets/fashion-mnist/"),
            "{message}"
        );
    }

    #[test]
    fn missing_file_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 2, 2);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();

        let err = Mnist::load(dir.path(), &MnistConfig::default()).unwrap_err();

        let message = err.to_string();
        assert!(
            message.contains("t10k-labels-idx1-ubyte[.gz] not found"),
            "{message}"
        );
        assert!(
            message.contains("apt-get install dataset-fashion-mnist"),
            "{message}"
        );
    }

    #[test]
    fn wrong_label_count_is_a_count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 3, 2);
        let labels = idx_bytes(LABELS_MAGIC, &[3], &[0, 1, 2]);
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), labels).unwrap();

        let err = Mnist::load(dir.path(), &MnistConfig::default()).unwrap_err();

        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 2,
                    labels: 3,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn collate_rejects_images_of_different_shapes() {
        let a = (Tensor::zeros(&[1, 2, 2]), 0);
        let b = (Tensor::zeros(&[1, 3, 3]), 1);

        let err = ImageDataset::collate(vec![a, b]).unwrap_err();

        assert!(err.to_string().contains("cannot be stacked"), "{err}");
    }
}

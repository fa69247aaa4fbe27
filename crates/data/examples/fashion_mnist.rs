//! Loads Fashion-MNIST from disk and checks it: 60,000 training and 10,000 test images of
//! 28x28 pixels (32x32 with LeNet's padding), ten balanced classes, pixels in [0, 1], then
//! times one shuffled epoch through the background loader.
//!
//! ```text
//! apt-get install dataset-fashion-mnist
//! cargo run -p strata-data --example fashion_mnist [folder]
//! ```

use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Result};
use strata_data::loader::{DataLoader, LoaderConfig};
use strata_data::mnist::{ImageDataset, Mnist, MnistConfig};

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| Mnist::FASHION_MNIST_DIR.to_string());

    let start = Instant::now();
    let data = Mnist::load(&dir, &MnistConfig { padding: 2 })?;
    println!(
        "loaded {dir} in {:.2} s: {} training and {} test images of {:?}",
        start.elapsed().as_secs_f64(),
        data.train.len(),
        data.test.len(),
        data.train.image_shape()
    );

    ensure!(
        data.train.len() == 60_000 && data.test.len() == 10_000,
        "unexpected sizes"
    );
    ensure!(
        data.train.image_shape() == [1, 32, 32],
        "padding did not give 32x32"
    );
    for (name, set, per_class) in [("train", &data.train, 6_000), ("test", &data.test, 1_000)] {
        let mut counts = [0usize; 10];
        for &label in set.labels() {
            counts[label] += 1;
        }
        println!("{name} images per class: {counts:?}");
        ensure!(
            counts.iter().all(|&c| c == per_class),
            "{name} classes are not balanced"
        );
        let pixels = set.images().pixels();
        let mean = pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / pixels.len() as f64;
        println!("{name} mean pixel (with padding): {:.4}", mean / 255.0);
    }

    let config = LoaderConfig {
        batch_size: 256,
        shuffle: true,
        drop_last: true,
        seed: 0,
        prefetch: 2,
    };
    let train = Arc::new(data.train);
    let loader = DataLoader::with_collate(Arc::clone(&train), config, ImageDataset::collate)?;
    let start = Instant::now();
    let mut seen = 0;
    for batch in loader.epoch(0) {
        let (images, labels) = batch?;
        let max = images.to_vec().into_iter().fold(0.0f32, f32::max);
        ensure!((0.0..=1.0).contains(&max), "pixel above 1: {max}");
        seen += labels.numel();
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "one shuffled epoch: {} batches, {seen} images in {seconds:.2} s ({:.0} images/s)",
        loader.len(),
        seen as f64 / seconds
    );
    Ok(())
}

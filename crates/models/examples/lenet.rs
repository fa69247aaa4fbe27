//! Trains LeNet-5 on Fashion-MNIST (or, where it is not installed, on synthetic images) with
//! SGD with momentum, and reports test accuracy.
//!
//! ```text
//! cargo run --release -p strata-models --example lenet
//! ```
//!
//! Fashion-MNIST is read from `/usr/share/datasets/fashion-mnist` (Debian's
//! `dataset-fashion-mnist` package) and padded from 28x28 to LeNet's 32x32. Without it the
//! program makes a synthetic 10-class problem: each class is a fixed random 32x32 pattern and
//! each image is its class pattern plus noise. The first line printed says which data is used.
//! To stay well under a minute on a CPU it trains on a few hundred mini-batches only.

use strata_autograd::{no_grad, Var};
use strata_data::mnist::{Mnist, MnistConfig};
use strata_models::{LeNet, LeNetConfig};
use strata_nn_layers::{cross_entropy, Module};
use strata_optim::{Optimizer, Sgd, SgdConfig};
use strata_tensor::{Generator, IndexTensor, Tensor};

/// Where the images come from: a training and a test set as `(images, labels)`.
struct Data {
    source: &'static str,
    train: (Tensor<f32>, IndexTensor),
    test: (Tensor<f32>, IndexTensor),
}

/// Fashion-MNIST at 32x32, `train_n` training and `test_n` test images, if it is installed.
fn fashion_mnist(train_n: usize, test_n: usize) -> Option<Data> {
    let mnist = Mnist::load(Mnist::FASHION_MNIST_DIR, &MnistConfig { padding: 2 }).ok()?;
    let train: Vec<usize> = (0..train_n.min(mnist.train.len())).collect();
    let test: Vec<usize> = (0..test_n.min(mnist.test.len())).collect();
    Some(Data {
        source: "Fashion-MNIST from /usr/share/datasets/fashion-mnist",
        train: mnist.train.batch(&train).ok()?,
        test: mnist.test.batch(&test).ok()?,
    })
}

/// `n` noisy copies of ten fixed random patterns, `(n, 1, 32, 32)`, with their class ids.
fn synthetic(
    patterns: &Tensor<f32>,
    n: usize,
    gen: &mut Generator,
) -> anyhow::Result<(Tensor<f32>, IndexTensor)> {
    let labels: Vec<usize> = (0..n).map(|_| gen.below(10)).collect();
    let labels = IndexTensor::from_vec(labels, &[n])?;
    let clean = patterns.index_select(0, &labels)?;
    let noise: Tensor<f32> = gen.normal(&[n, 1, 32, 32], 0.0, 0.5);
    Ok((clean.add(&noise)?, labels))
}

/// The fraction of `images` that `model` labels correctly, without recording a graph.
fn accuracy(
    model: &LeNet<f32>,
    (images, labels): &(Tensor<f32>, IndexTensor),
) -> anyhow::Result<f64> {
    let _guard = no_grad();
    let predicted = model
        .forward(&Var::new(images.clone()))?
        .value()
        .argmax(-1)?;
    let correct = predicted
        .as_slice()
        .iter()
        .zip(labels.as_slice())
        .filter(|(p, y)| p == y)
        .count();
    Ok(correct as f64 / labels.numel() as f64)
}

fn main() -> anyhow::Result<()> {
    let mut gen = Generator::new(0);
    let data = match fashion_mnist(12_800, 2_000) {
        Some(data) => data,
        None => {
            let patterns: Tensor<f32> = gen.rand(&[10, 1, 32, 32]);
            Data {
                source: "synthetic images (Fashion-MNIST is not installed)",
                train: synthetic(&patterns, 12_800, &mut gen)?,
                test: synthetic(&patterns, 2_000, &mut gen)?,
            }
        }
    };
    println!("data: {}", data.source);
    let (train_x, train_y) = &data.train;
    let n = train_y.numel();

    // LeNet-5: conv1 (6, 5x5) -> pool -> conv2 (16, 5x5) -> pool -> fc 120 -> 84 -> 10.
    let mut model = LeNet::<f32>::new(&LeNetConfig::default(), &mut gen)?;
    println!("LeNet-5 with {} parameters", model.num_parameters());

    let mut opt = Sgd::new(
        model.parameters(),
        SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            ..SgdConfig::default()
        },
    )?;

    // One pass over 12,800 images in batches of 64: 200 steps.
    let batch = 64;
    model.train(); // model.train(): LeNet has no dropout, but this is the habit
    let order = gen.randperm(n);
    let mut running = 0.0;
    for (step, chunk) in order.chunks(batch).enumerate() {
        let index = IndexTensor::from_slice(chunk);
        let xb = Var::new(train_x.index_select(0, &index)?);
        let labels: Vec<usize> = chunk.iter().map(|&i| train_y.as_slice()[i]).collect();
        let yb = IndexTensor::from_slice(&labels);
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(&xb)?, &yb)?;
        loss.backward()?;
        opt.step()?;
        running += loss.value().item()? as f64;
        if (step + 1) % 25 == 0 {
            println!(
                "step {:>3}  mean loss of the last 25 batches {:.4}",
                step + 1,
                running / 25.0
            );
            running = 0.0;
        }
    }
    model.eval();
    let acc = accuracy(&model, &data.test)?;
    println!(
        "test accuracy on {} images: {:.1}%",
        data.test.1.numel(),
        acc * 100.0
    );
    Ok(())
}

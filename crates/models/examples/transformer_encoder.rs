//! Trains a small Transformer encoder classifier on padded, variable-length synthetic token
//! sequences, with a key padding mask, AdamW, dropout in training mode and `eval()` for the
//! test.
//!
//! ```text
//! cargo run --release -p strata-models --example transformer_encoder
//! ```
//!
//! Each sequence holds 4 to 16 random tokens from `2..20`, padded with id 0 to length 16. Its
//! class is 1 when token 2 occurs more often than token 3, else 0: the model must attend to
//! the whole sequence and ignore the padding. The mask follows PyTorch's
//! `src_key_padding_mask`: non-zero (true) marks padding.

use strata_autograd::no_grad;
use strata_models::{Pooling, TransformerEncoderClassifier, TransformerEncoderClassifierConfig};
use strata_nn_layers::{cross_entropy, Module};
use strata_optim::{AdamW, AdamWConfig, Optimizer};
use strata_tensor::{Generator, IndexTensor};

const PAD: usize = 0;
const MAX_LEN: usize = 16;

/// A batch of `n` padded sequences `(n, MAX_LEN)` and their labels `(n,)`.
fn batch(n: usize, gen: &mut Generator) -> anyhow::Result<(IndexTensor, IndexTensor)> {
    let mut ids = Vec::with_capacity(n * MAX_LEN);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let len = 4 + gen.below(MAX_LEN - 3);
        let row: Vec<usize> = (0..len).map(|_| 2 + gen.below(18)).collect();
        let count = |t| row.iter().filter(|&&x| x == t).count();
        labels.push(usize::from(count(2) > count(3)));
        ids.extend(&row);
        ids.extend(std::iter::repeat_n(PAD, MAX_LEN - len));
    }
    Ok((
        IndexTensor::from_vec(ids, &[n, MAX_LEN])?,
        IndexTensor::from_vec(labels, &[n])?,
    ))
}

fn main() -> anyhow::Result<()> {
    let mut gen = Generator::new(3);

    // nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model=32, nhead=4,
    //     dim_feedforward=64, dropout=0.1, batch_first=True, norm_first=True), num_layers=2)
    // with a token embedding, a learned position table, mean pooling and a linear head.
    let config = TransformerEncoderClassifierConfig {
        vocab_size: 20,
        max_len: MAX_LEN,
        d_model: 32,
        n_head: 4,
        n_layer: 2,
        dim_feedforward: 64,
        dropout: 0.1,
        norm_first: true,
        pooling: Pooling::Mean,
        num_classes: 2,
        ..TransformerEncoderClassifierConfig::default()
    };
    let mut model = TransformerEncoderClassifier::<f32>::new(&config, &mut gen)?;
    println!(
        "encoder classifier with {} parameters",
        model.num_parameters()
    );

    let mut opt = AdamW::new(
        model.parameters(),
        AdamWConfig {
            lr: 3e-3,
            weight_decay: 0.01,
            ..AdamWConfig::default()
        },
    )?;

    let (test_x, test_y) = batch(1000, &mut gen)?;
    let test_mask = TransformerEncoderClassifier::<f32>::padding_mask(&test_x, PAD);
    let steps = 400;
    let mut running = 0.0;
    model.train(); // dropout on
    for step in 1..=steps {
        let (xs, ys) = batch(64, &mut gen)?;
        let mask = TransformerEncoderClassifier::<f32>::padding_mask(&xs, PAD);
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(&xs, Some(&mask))?, &ys)?;
        loss.backward()?;
        opt.step()?;
        running += loss.value().item()?;
        if step % 50 == 0 {
            println!(
                "step {step:>3}  mean loss of the last 50 batches {:.4}",
                running / 50.0
            );
            running = 0.0;
        }
    }

    // model.eval(); with torch.no_grad(): ...
    model.eval();
    let _guard = no_grad();
    let predicted = model
        .forward(&test_x, Some(&test_mask))?
        .value()
        .argmax(-1)?;
    let correct = predicted
        .as_slice()
        .iter()
        .zip(test_y.as_slice())
        .filter(|(p, y)| p == y)
        .count();
    let majority = test_y.as_slice().iter().filter(|&&y| y == 0).count();
    println!(
        "test accuracy {:.1}% on 1000 fresh sequences (always guessing 0: {:.1}%)",
        correct as f64 / 10.0,
        majority as f64 / 10.0
    );
    Ok(())
}

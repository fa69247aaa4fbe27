//! Trains a character-level LSTM language model on the Shakespeare corpus embedded in
//! `strata-data`, then samples a few lines from it.
//!
//! ```text
//! cargo run --release -p strata-models --example char_rnn
//! ```
//!
//! Each step draws 32 random windows of 64 characters (inputs) and the same windows shifted by
//! one (targets), and minimises the next-character cross entropy with Adam and gradient-norm
//! clipping. A few hundred steps take the loss from `ln 75 = 4.32` (uniform over the
//! 75 characters) to below 2, enough for words and line breaks to appear in samples.

use strata_autograd::no_grad;
use strata_data::corpus::SHAKESPEARE;
use strata_data::text::{CharVocab, Split, TextDataset};
use strata_models::{CellKind, CharRnn, CharRnnConfig, SamplingConfig};
use strata_nn_layers::Module;
use strata_optim::{clip_grad_norm, Adam, AdamConfig, Optimizer};
use strata_tensor::{Generator, IndexTensor};

fn main() -> anyhow::Result<()> {
    let mut gen = Generator::new(1337);

    // The vocabulary is the sorted set of characters of the corpus (75 for these plays).
    let vocab = CharVocab::from_text(SHAKESPEARE);
    let context = 64;
    let data = TextDataset::new(vocab.encode(SHAKESPEARE)?, context, 0.9)?;
    println!(
        "corpus: {} characters, vocabulary of {}",
        SHAKESPEARE.len(),
        vocab.len()
    );

    // nn.Embedding(75, 32) -> nn.LSTM(32, 128, batch_first=True) -> nn.Linear(128, 75)
    let config = CharRnnConfig {
        vocab_size: vocab.len(),
        embedding_dim: 32,
        hidden_size: 128,
        num_layers: 1,
        cell: CellKind::Lstm,
        dropout: 0.0,
    };
    let model = CharRnn::<f32>::new(&config, &mut gen)?;
    println!("LSTM with {} parameters", model.num_parameters());

    let params = model.parameters();
    let mut opt = Adam::new(
        params.clone(),
        AdamConfig {
            lr: 1e-2,
            ..AdamConfig::default()
        },
    )?;

    let (steps, batch) = (300, 32);
    for step in 0..steps {
        let (xs, ys) = data.sample_batch(Split::Train, batch, &mut gen)?;
        opt.zero_grad();
        let loss = model.loss(&xs, &ys)?;
        loss.backward()?;
        // torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0): the norm type is explicit.
        clip_grad_norm(&params, 1.0, 2.0)?;
        opt.step()?;
        if step % 50 == 0 || step + 1 == steps {
            // Validation loss on a few held-out windows, without recording a graph.
            let _guard = no_grad();
            let (vx, vy) = data.sample_batch(Split::Validation, 64, &mut gen)?;
            let val = model.loss(&vx, &vy)?.value().item()?;
            println!(
                "step {step:>3}  train loss {:.3}  validation loss {val:.3}",
                loss.value().item()?
            );
        }
    }

    // Sampling carries the LSTM state from token to token; temperature 0.8 sharpens a little.
    let prompt = IndexTensor::from_vec(vocab.encode("ROMEO:\n")?, &[1, 7])?;
    let sampling = SamplingConfig {
        temperature: 0.8,
        ..SamplingConfig::default()
    };
    let out = model.generate(&prompt, 200, &sampling, &mut gen)?;
    println!(
        "--- sample ---\n{}\n--------------",
        vocab.decode(out.as_slice())?
    );
    Ok(())
}

//! Trains a tiny character-level GPT on the Shakespeare corpus embedded in `strata-data`,
//! samples from it, then saves its state dict as safetensors and loads it into a fresh model.
//!
//! ```text
//! cargo run --release -p strata-models --example gpt
//! ```
//!
//! This is nanoGPT's `train.py` in miniature: AdamW with weight decay on matrices only
//! (`configure_optimizers`), a warm-up then cosine learning-rate schedule, gradient clipping at
//! norm 1. The safetensors file uses PyTorch's names (`transformer.h.0.attn.c_attn.weight`,
//! ..., with the tied `lm_head.weight` written too), so PyTorch's nanoGPT `GPT` loads it with
//! `model.load_state_dict(safetensors.torch.load_file(path))`.

use strata_autograd::no_grad;
use strata_data::corpus::SHAKESPEARE;
use strata_data::text::{CharVocab, Split, TextDataset};
use strata_models::{Gpt, GptConfig, SamplingConfig};
use strata_nn_layers::Module;
use strata_optim::{
    clip_grad_norm, AdamW, AdamWConfig, LrScheduler, Optimizer, ParamGroup, WarmupCosineLr,
};
use strata_tensor::{Generator, IndexTensor};

fn main() -> anyhow::Result<()> {
    let mut gen = Generator::new(1337);
    let vocab = CharVocab::from_text(SHAKESPEARE);
    let config = GptConfig {
        vocab_size: vocab.len(),
        block_size: 64,
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        dropout: 0.0,
        bias: false,
    };
    let data = TextDataset::new(vocab.encode(SHAKESPEARE)?, config.block_size, 0.9)?;
    let model = Gpt::<f32>::new(&config, &mut gen)?;
    println!(
        "GPT: {} layers, {} heads, width {}, {} parameters",
        config.n_layer,
        config.n_head,
        config.n_embd,
        model.num_parameters()
    );

    // Two parameter groups, as nanoGPT: 2-D weights decay, biases and LayerNorm weights do not.
    let base = AdamWConfig {
        lr: 3e-3,
        betas: (0.9, 0.99),
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let (decay, no_decay) = model.param_groups_for_decay();
    let no_decay_config = AdamWConfig {
        weight_decay: 0.0,
        ..base
    };
    let mut opt = AdamW::with_groups(vec![
        ParamGroup::new(decay, base),
        ParamGroup::new(no_decay, no_decay_config),
    ])?;
    let (steps, batch) = (400, 16);
    let sched = WarmupCosineLr::new(base.lr, base.lr / 10.0, 20, steps)?;
    let params = model.parameters();

    for step in 0..steps {
        let lr = sched.apply(&mut opt, step);
        let (xs, ys) = data.sample_batch(Split::Train, batch, &mut gen)?;
        opt.zero_grad();
        let loss = model.loss(&xs, &ys)?;
        loss.backward()?;
        clip_grad_norm(&params, 1.0, 2.0)?;
        opt.step()?;
        if step % 100 == 0 || step + 1 == steps {
            let _guard = no_grad();
            let (vx, vy) = data.sample_batch(Split::Validation, 32, &mut gen)?;
            let val = model.loss(&vx, &vy)?.value().item()?;
            println!(
                "step {step:>3}  lr {lr:.2e}  train loss {:.3}  validation loss {val:.3}",
                loss.value().item()?
            );
        }
    }

    // generate() runs with a KV cache and no graph; top-k keeps the 10 likeliest characters.
    let prompt_text = "JULIET:\n";
    let prompt = IndexTensor::from_vec(vocab.encode(prompt_text)?, &[1, prompt_text.len()])?;
    let sampling = SamplingConfig {
        temperature: 0.8,
        top_k: Some(10),
        top_p: None,
    };
    let mut sample_gen = Generator::new(0);
    let out = model.generate(&prompt, 200, &sampling, &mut sample_gen)?;
    let text = vocab.decode(out.as_slice())?;
    println!("--- sample ---\n{text}\n--------------");

    // torch.save(model.state_dict(), path) becomes a safetensors file with the same names.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("gpt.safetensors");
    model.save_safetensors(&path)?;
    println!(
        "saved {} tensors ({} bytes) to {}",
        model.state_dict().len(),
        std::fs::metadata(&path)?.len(),
        path.display()
    );

    // A fresh model with other random weights; load_safetensors checks every name and shape.
    let restored = Gpt::<f32>::new(&config, &mut Generator::new(99))?;
    restored.load_safetensors(&path)?;
    let again = restored.generate(&prompt, 200, &sampling, &mut Generator::new(0))?;
    anyhow::ensure!(
        again.as_slice() == out.as_slice(),
        "the reloaded model samples differently"
    );
    println!("reloaded the state dict into a fresh model: same sample from the same seed");
    Ok(())
}

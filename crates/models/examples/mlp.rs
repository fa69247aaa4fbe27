//! Trains a 2-layer MLP classifier on a synthetic "two moons"-like problem with Adam: the
//! Strata version of the usual PyTorch training loop (`docs/coming-from-pytorch.md` shows the
//! two side by side).
//!
//! ```text
//! cargo run --release -p strata-models --example mlp
//! ```
//!
//! The data are 512 points in 2-D, drawn from a seeded `Generator`, labelled by which side of
//! the curve `y = sin(2x)` they fall on. The model is `Linear(2, 32) -> ReLU -> Linear(32, 2)`.

use strata_autograd::{no_grad, Var};
use strata_models::{Activation, Mlp, MlpConfig};
use strata_nn_layers::{cross_entropy, Module};
use strata_optim::{Adam, AdamConfig, Optimizer};
use strata_tensor::{Generator, IndexTensor, Tensor};

fn main() -> anyhow::Result<()> {
    // torch.manual_seed(0): every random draw in Strata comes from an explicit Generator.
    let mut gen = Generator::new(0);

    // Synthetic data: xs (N, 2) uniform in [-2, 2), label 1 above the curve y = sin(2x).
    let n = 512;
    let xs: Tensor<f32> = gen.uniform(&[n, 2], -2.0, 2.0);
    let labels: Vec<usize> = xs
        .to_vec()
        .chunks(2)
        .map(|p| usize::from(p[1] > (2.0 * p[0]).sin()))
        .collect();
    let ys = IndexTensor::from_vec(labels, &[n])?;

    // model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    let config = MlpConfig {
        widths: vec![2, 32, 2],
        activation: Activation::Relu,
        bias: true,
    };
    let model = Mlp::<f32>::new(&config, &mut gen)?;
    println!("model parameters (PyTorch names):");
    for (name, p) in model.named_parameters() {
        println!("  {name:<16} {:?}", p.shape());
    }

    // optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 1e-2,
            ..AdamConfig::default()
        },
    )?;

    // Inputs are constants of the graph: Var::new records no gradient for them.
    let inputs = Var::new(xs.clone());
    let steps = 300;
    let mut first = None;
    let mut last = 0.0;
    for step in 0..steps {
        // optimizer.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); step()
        opt.zero_grad();
        let logits = model.forward(&inputs)?;
        let loss = cross_entropy(&logits, &ys)?;
        loss.backward()?;
        opt.step()?;

        last = loss.value().item()?;
        first.get_or_insert(last);
        if step % 50 == 0 || step + 1 == steps {
            println!("step {step:>3}  loss {last:.4}");
        }
    }

    // Evaluation without recording a graph: `with torch.no_grad():`.
    let accuracy = {
        let _guard = no_grad();
        let predicted = model.forward(&inputs)?.value().argmax(-1)?;
        let correct = predicted
            .as_slice()
            .iter()
            .zip(ys.as_slice())
            .filter(|(p, y)| p == y)
            .count();
        correct as f64 / n as f64
    };
    let first = first.unwrap_or(last);
    println!("trained {steps} full-batch Adam steps on {n} points");
    println!(
        "loss {first:.4} -> {last:.4}, training accuracy {:.1}%",
        accuracy * 100.0
    );
    anyhow::ensure!(last < first, "the loss did not go down");
    Ok(())
}

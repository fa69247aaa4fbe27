//! Fits `y = x W^T + b` to noisy synthetic data with SGD with momentum and a step learning-rate
//! schedule, then compares the fitted weights with the true ones.
//!
//! ```text
//! cargo run --release -p strata-models --example linear_regression
//! ```
//!
//! The data are 256 rows of 3 features from a seeded `Generator`, with targets
//! `y = 1.5 x0 - 2 x1 + 0.5 x2 + 0.3 + noise`, noise `N(0, 0.1^2)`. Training draws
//! mini-batches of 32 rows from a fresh permutation each epoch, as a PyTorch `DataLoader`
//! with `shuffle=True` would.

use strata_autograd::{no_grad, Var};
use strata_models::{LinearRegression, LinearRegressionConfig};
use strata_nn_layers::Module;
use strata_optim::{LrScheduler, Optimizer, Sgd, SgdConfig, StepLr};
use strata_tensor::{Generator, IndexTensor, Tensor};

fn main() -> anyhow::Result<()> {
    let mut gen = Generator::new(42);

    // True parameters and synthetic data: y = x w^T + b + noise.
    let (n, d) = (256, 3);
    let true_w = Tensor::from_vec(vec![1.5f32, -2.0, 0.5], &[1, d])?;
    let true_b = 0.3f32;
    let xs: Tensor<f32> = gen.randn(&[n, d]);
    let noise: Tensor<f32> = gen.normal(&[n, 1], 0.0, 0.1);
    // Broadcasting works as in PyTorch: (n, 3) @ (3, 1) -> (n, 1), plus a scalar, plus (n, 1).
    let ys = xs.matmul(&true_w.t()?)?.add_scalar(true_b).add(&noise)?;

    // model = nn.Linear(3, 1): LinearRegression names its parameters linear.weight/.bias.
    let config = LinearRegressionConfig {
        in_features: d,
        out_features: 1,
        bias: true,
    };
    let model = LinearRegression::<f32>::new(&config, &mut gen)?;

    // optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9);
    // scheduler = StepLR(optimizer, step_size=10, gamma=0.5), stepped once per epoch.
    let mut opt = Sgd::new(
        model.parameters(),
        SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            ..SgdConfig::default()
        },
    )?;
    let sched = StepLr::new(0.05, 10, 0.5)?;

    let batch = 32;
    let epochs = 30;
    for epoch in 0..epochs {
        // Strata schedules are functions of the step: apply(opt, epoch) sets the lr.
        let lr = sched.apply(&mut opt, epoch);
        let order = gen.randperm(n);
        let mut total = 0.0;
        for chunk in order.chunks(batch) {
            let index = IndexTensor::from_slice(chunk);
            let xb = Var::new(xs.index_select(0, &index)?);
            let yb = Var::new(ys.index_select(0, &index)?);
            opt.zero_grad();
            let loss = model.loss(&xb, &yb)?; // F.mse_loss(model(xb), yb)
            loss.backward()?;
            opt.step()?;
            total += loss.value().item()? as f64;
        }
        if epoch % 5 == 0 || epoch + 1 == epochs {
            let mean = total / (n / batch) as f64;
            println!("epoch {epoch:>2}  lr {lr:.4}  mean batch mse {mean:.5}");
        }
    }

    let full_mse = {
        let _guard = no_grad();
        model.loss(&Var::new(xs), &Var::new(ys))?.value().item()?
    };
    let w = model.weight().value().to_vec();
    let b = model.bias().map(|b| b.value().to_vec()[0]).unwrap_or(0.0);
    println!("fitted w = {w:.3?}, b = {b:.3}");
    println!("true   w = {:.3?}, b = {true_b:.3}", true_w.to_vec());
    println!("full-data mse {full_mse:.5} (the noise variance is 0.01)");
    anyhow::ensure!(full_mse < 0.02, "the fit did not converge");
    Ok(())
}

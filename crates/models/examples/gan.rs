//! Trains a small GAN to draw points on a ring: two MLPs, two Adam optimizers, alternating
//! discriminator and generator steps.
//!
//! ```text
//! cargo run --release -p strata-models --example gan
//! ```
//!
//! Real samples are 2-D points at radius 2 around the origin (plus a little noise), drawn
//! from a seeded `Generator`. A GAN's losses do not fall monotonically (the two networks play
//! against each other): at the balance point the discriminator cannot tell real from fake,
//! `loss_D -> 2 ln 2 = 1.386` and `loss_G -> ln 2 = 0.693`. So the program also prints the
//! mean radius of generated points, which goes from near 0 to about 2.

use strata_autograd::no_grad;
use strata_models::{Gan, GanConfig};
use strata_nn_layers::Module;
use strata_optim::{Adam, AdamConfig};
use strata_tensor::{Generator, Tensor};

/// `n` points on the circle of radius 2, with `N(0, 0.05^2)` radial noise, `(n, 2)`.
fn ring(n: usize, gen: &mut Generator) -> anyhow::Result<Tensor<f32>> {
    let mut data = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let angle = gen.uniform_f64() * std::f64::consts::TAU;
        let radius = 2.0 + 0.05 * gen.normal_f64();
        data.push((radius * angle.cos()) as f32);
        data.push((radius * angle.sin()) as f32);
    }
    Ok(Tensor::from_vec(data, &[n, 2])?)
}

/// The mean distance from the origin of `points`, `(n, 2)`.
fn mean_radius(points: &Tensor<f32>) -> f64 {
    let v = points.to_vec();
    let n = v.len() / 2;
    v.chunks(2)
        .map(|p| f64::from(p[0].hypot(p[1])))
        .sum::<f64>()
        / n as f64
}

fn main() -> anyhow::Result<()> {
    let mut gen = Generator::new(7);

    // The default config: latent 16 -> 64 -> 64 -> 2 generator (ReLU), and a
    // 2 -> 64 -> 64 -> 1 discriminator (LeakyReLU 0.2) that outputs a logit.
    let config = GanConfig::default();
    let gan = Gan::<f32>::new(&config, &mut gen)?;

    // One optimizer per network, with the DCGAN betas (0.5, 0.999).
    let adam = AdamConfig {
        lr: 2e-4,
        betas: (0.5, 0.999),
        ..AdamConfig::default()
    };
    let mut opt_g = Adam::new(gan.generator().parameters(), adam)?;
    let mut opt_d = Adam::new(gan.discriminator().parameters(), adam)?;

    let report = |gen: &mut Generator| -> anyhow::Result<f64> {
        let _guard = no_grad();
        Ok(mean_radius(&gan.generate(512, gen)?.value()))
    };
    println!(
        "before training: mean radius of generated points {:.3}",
        report(&mut gen)?
    );

    let (steps, batch) = (3000, 64);
    let (mut sum_d, mut sum_g) = (0.0, 0.0);
    for step in 1..=steps {
        // train_step = one discriminator step on real vs detached fakes (BCE(D(x), 1) +
        // BCE(D(G(z)), 0)), then one generator step on BCE(D(G(z)), 1).
        let real = ring(batch, &mut gen)?;
        let losses = gan.train_step(&real, &mut opt_g, &mut opt_d, &mut gen)?;
        sum_d += losses.discriminator;
        sum_g += losses.generator;
        if step % 500 == 0 {
            println!(
                "step {step:>4}  loss_D {:.3}  loss_G {:.3}  mean radius {:.3}",
                sum_d / 500.0,
                sum_g / 500.0,
                report(&mut gen)?
            );
            (sum_d, sum_g) = (0.0, 0.0);
        }
    }
    let radius = report(&mut gen)?;
    println!("after {steps} steps: mean radius {radius:.3} (real data: 2.0)");
    Ok(())
}

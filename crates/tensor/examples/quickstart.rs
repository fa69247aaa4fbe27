//! A first look at strata-tensor: creating tensors, broadcasting, elementwise math, a
//! reduction, and copy-on-write storage.
//!
//! Run it with `cargo run --release -p strata-tensor --example quickstart`.

use strata_tensor::{Generator, Tensor, TensorError};

fn main() -> Result<(), TensorError> {
    // Creation: from data with a shape, from a range, and from a seeded generator (the same
    // seed gives the same numbers on every machine and thread count).
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    let bias = Tensor::arange(0.0f32, 3.0, 1.0)?;
    let mut gen = Generator::new(42);
    let noise: Tensor<f32> = gen.randn(&[2, 3]);
    println!("x {:?} =\n{x}\nbias {:?} = {bias}", x.shape(), bias.shape());

    // Broadcasting follows NumPy's rules: [2, 3] + [3] adds `bias` to every row.
    let shifted = x.add(&bias)?;
    println!("x + bias =\n{shifted}");

    // Elementwise math, operator sugar and masks, as in PyTorch.
    let squashed = (&shifted * 0.25).tanh();
    let cap = Tensor::scalar(0.9f32);
    let over = squashed.gt(&cap)?;
    let capped = Tensor::where_cond(&over, &cap, &squashed)?;
    println!("min(tanh((x + bias) / 4), 0.9) =\n{capped:.4}");

    // Shapes that do not broadcast give an error naming the op and both shapes.
    let mismatch = x.add(&Tensor::ones(&[2])).unwrap_err();
    println!("x + ones([2]) -> error: {mismatch}");

    // A reduction over every element of a noisy copy of `x`.
    let noisy = x.add(&noise.mul_scalar(0.1))?;
    let total: f32 = noisy.view().sum();
    let mean = total / noisy.numel() as f32;
    println!("sum(x + 0.1 * noise) = {total:.4}, mean = {mean:.4}");

    // Clones share storage until one of them is written to.
    let mut y = x.clone();
    let shared_before = y.shares_storage_with(&x);
    y.data_mut()[0] = 100.0;
    println!(
        "clone shares storage: {shared_before}; after a write: {} (x[0, 0] is still {})",
        y.shares_storage_with(&x),
        x.get(&[0, 0])
            .expect("index [0, 0] is inside a [2, 3] tensor"),
    );
    Ok(())
}

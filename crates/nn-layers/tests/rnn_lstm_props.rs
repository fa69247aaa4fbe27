//! Properties of `Lstm` through its public API, on the fused path (no projection): finite
//! difference gradient checks of input and states on drawn shapes, second derivatives, and
//! results that do not depend on the number of threads.

use std::process::Command;

use proptest::prelude::*;
use strata_autograd::{gradcheck, gradgradcheck, AutogradError, GradcheckOptions, Var};
use strata_nn_layers::{Lstm, Module, NnError, RecurrentConfig};
use strata_tensor::{Generator, Tensor};

/// Set in the child processes of the thread-count test.
const DIGEST_ENV: &str = "STRATA_RNN_LSTM_DIGEST";

fn autograd(e: NnError) -> AutogradError {
    match e {
        NnError::Autograd(e) => e,
        other => panic!("unexpected error: {other}"),
    }
}

/// Output, `h_n` and `c_n` of `lstm` from `v = [input, h0, c0]`, flattened into one vector.
fn run(lstm: &Lstm<f64>, v: &[Var<f64>]) -> strata_autograd::Result<Var<f64>> {
    let (out, (h_n, c_n)) = lstm
        .forward(&v[0], Some((&v[1], &v[2])))
        .map_err(autograd)?;
    let parts = [
        out.flatten(0, -1)?,
        h_n.flatten(0, -1)?,
        c_n.flatten(0, -1)?,
    ];
    Var::concat(&parts.iter().collect::<Vec<_>>(), 0)
}

fn draw(shape: &[usize], gen: &mut Generator) -> Tensor<f64> {
    gen.uniform(shape, -1.0, 1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn lstm_input_and_state_gradients_pass_gradcheck(
        seq_len in 1usize..4,
        batch in 1usize..3,
        input_size in 1usize..3,
        hidden in 1usize..4,
        num_layers in 1usize..3,
        bias in any::<bool>(),
        bidirectional in any::<bool>(),
        batch_first in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let config = RecurrentConfig {
            num_layers,
            bias,
            bidirectional,
            batch_first,
            ..Default::default()
        };
        let mut gen = Generator::new(seed);
        let lstm = Lstm::<f64>::new(input_size, hidden, config, &mut gen).unwrap();
        let layers = num_layers * if bidirectional { 2 } else { 1 };
        let input_shape = if batch_first {
            [batch, seq_len, input_size]
        } else {
            [seq_len, batch, input_size]
        };
        let inputs = [
            draw(&input_shape, &mut gen),
            draw(&[layers, batch, hidden], &mut gen),
            draw(&[layers, batch, hidden], &mut gen),
        ];

        let result = gradcheck(|v| run(&lstm, v), &inputs, GradcheckOptions::default());

        prop_assert!(result.is_ok(), "{result:?}");
    }
}

#[test]
fn lstm_second_derivatives_pass_gradgradcheck() {
    let config = RecurrentConfig {
        num_layers: 2,
        bidirectional: true,
        ..Default::default()
    };
    let mut gen = Generator::new(3);
    let lstm = Lstm::<f64>::new(2, 3, config, &mut gen).unwrap();
    let inputs = [
        draw(&[3, 2, 2], &mut gen),
        draw(&[4, 2, 3], &mut gen),
        draw(&[4, 2, 3], &mut gen),
    ];

    let result = gradgradcheck(|v| run(&lstm, v), &inputs, GradcheckOptions::default());

    assert!(result.is_ok(), "{result:?}");
}

/// A hash of the bits of the output, the input gradient and every parameter gradient of a
/// training-sized f32 LSTM, large enough that its products are split between threads.
fn lstm_digest() -> u64 {
    let config = RecurrentConfig {
        num_layers: 2,
        bidirectional: true,
        ..Default::default()
    };
    let mut gen = Generator::new(11);
    let lstm = Lstm::<f32>::new(48, 128, config, &mut gen).unwrap();
    let xs = Var::parameter(gen.uniform(&[12, 32, 48], -1.0, 1.0));
    let (out, _) = lstm.forward(&xs, None).unwrap();
    let weights = Var::new(gen.uniform(out.shape(), -1.0, 1.0));
    out.mul(&weights).unwrap().sum_all().backward().unwrap();

    let mut tensors = vec![out.value(), xs.grad().unwrap()];
    tensors.extend(lstm.parameters().iter().map(|p| p.grad().unwrap()));
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for value in tensors.iter().flat_map(Tensor::to_vec) {
        hash = (hash ^ u64::from(value.to_bits())).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[test]
fn lstm_results_do_not_depend_on_the_thread_count() {
    if std::env::var_os(DIGEST_ENV).is_some() {
        println!("digest {:016x}", lstm_digest());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let digest_with = |threads: &str| {
        let output = Command::new(&exe)
            .args([
                "lstm_results_do_not_depend_on_the_thread_count",
                "--exact",
                "--nocapture",
            ])
            .env(DIGEST_ENV, "1")
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "child failed: {stdout}");
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("digest ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no digest in: {stdout}"))
    };

    let one = digest_with("1");
    let two = digest_with("2");
    let four = digest_with("4");

    assert_eq!(one, two);
    assert_eq!(one, four);
    assert_eq!(one, format!("{:016x}", lstm_digest()));
}

//! Property tests of the conv, pool, batch norm and recurrent layers over small random
//! configurations: "same" padding keeps the size, unbatched input equals a batch of one,
//! ceil mode only appends windows, batch statistics normalise, batch-first is a transpose.

use proptest::prelude::*;
use strata_autograd::Var;
use strata_nn_layers::{
    BatchNorm2d, BatchNormConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Forward, Gru,
    MaxPool2d, MaxPool2dConfig, Padding, RecurrentConfig,
};
use strata_tensor::{Generator, Tensor};

fn randn(shape: &[usize], seed: u64) -> Var<f64> {
    Var::new(Generator::new(seed).randn(shape))
}

fn assert_all_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "[{i}]: {g} vs {w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn same_padding_keeps_the_spatial_size(
        kh in 1usize..6, kw in 1usize..6, dh in 1usize..4, dw in 1usize..4,
        h in 1usize..8, w in 1usize..8, groups in 1usize..3, seed in 0u64..1000,
    ) {
        let config = Conv2dConfig {
            padding: Padding::Same,
            dilation: [dh, dw],
            groups,
            ..Default::default()
        };
        let conv = Conv2d::<f64>::new(2 * groups, 3 * groups, [kh, kw], config,
            &mut Generator::new(seed)).unwrap();

        let ys = conv.forward(&randn(&[2, 2 * groups, h, w], seed)).unwrap();

        prop_assert_eq!(ys.shape(), &[2, 3 * groups, h, w]);
    }

    #[test]
    fn unbatched_conv_equals_a_batch_of_one(
        k in 1usize..4, stride in 1usize..3, padding in 0usize..2, dilation in 1usize..3,
        len in 6usize..10, seed in 0u64..1000,
    ) {
        let config = Conv1dConfig {
            stride,
            padding: Padding::Explicit(padding),
            dilation,
            ..Default::default()
        };
        let conv = Conv1d::<f64>::new(2, 3, k, config, &mut Generator::new(seed)).unwrap();
        let xs = randn(&[2, len], seed);

        let single = conv.forward(&xs).unwrap();
        let batched = conv.forward(&xs.unsqueeze(0).unwrap()).unwrap();

        prop_assert_eq!(&batched.shape()[1..], single.shape());
        assert_all_close(&single.value().to_vec(), &batched.value().to_vec(), 1e-12);
    }

    #[test]
    fn ceil_mode_only_appends_windows(
        k in 1usize..4, stride in 1usize..4, pad in 0usize..2, h in 3usize..9,
        w in 3usize..9, seed in 0u64..1000,
    ) {
        let pad = pad.min(k / 2);
        let base = MaxPool2dConfig {
            stride: Some([stride, stride]),
            padding: [pad, pad],
            ..Default::default()
        };
        let ceil = MaxPool2dConfig { ceil_mode: true, ..base };
        let xs = randn(&[1, 2, h, w], seed);

        let floor_ys = MaxPool2d::new([k, k], base).unwrap().forward(&xs).unwrap();
        let ceil_ys = MaxPool2d::new([k, k], ceil).unwrap().forward(&xs).unwrap();

        let (fh, fw) = (floor_ys.shape()[2], floor_ys.shape()[3]);
        let (ch, cw) = (ceil_ys.shape()[2], ceil_ys.shape()[3]);
        prop_assert!(ch == fh || ch == fh + 1);
        prop_assert!(cw == fw || cw == fw + 1);
        let overlap = ceil_ys.narrow(2, 0, fh).unwrap().narrow(3, 0, fw).unwrap();
        prop_assert_eq!(overlap.value().to_vec(), floor_ys.value().to_vec());
        prop_assert!(ceil_ys.value().to_vec().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn training_batch_norm_normalises_each_channel(
        n in 2usize..4, h in 1usize..4, w in 1usize..4, seed in 0u64..1000,
    ) {
        let bn = BatchNorm2d::<f64>::new(3, BatchNormConfig { eps: 0.0, ..Default::default() })
            .unwrap();
        let xs = randn(&[n, 3, h, w], seed).mul_scalar(3.0).add_scalar(2.0);

        let ys = bn.forward(&xs).unwrap().value();

        let mean = ys.mean(&[0, 2, 3]).unwrap().to_vec();
        let var = ys.var(&[0, 2, 3], 0).unwrap().to_vec();
        assert_all_close(&mean, &[0.0; 3], 1e-9);
        assert_all_close(&var, &[1.0; 3], 1e-9);
    }

    #[test]
    fn batch_first_is_a_transpose_of_time_major(
        layers in 1usize..3, bidirectional: bool, seq_len in 1usize..5, seed in 0u64..1000,
    ) {
        let config = RecurrentConfig { num_layers: layers, bidirectional, ..Default::default() };
        let time_major = Gru::<f64>::new(2, 3, config, &mut Generator::new(seed)).unwrap();
        let batch_first = Gru::<f64>::new(2, 3, RecurrentConfig { batch_first: true, ..config },
            &mut Generator::new(seed)).unwrap();
        let xs = randn(&[seq_len, 2, 2], seed);

        let (out_t, h_t) = time_major.forward(&xs, None).unwrap();
        let (out_b, h_b) = batch_first.forward(&xs.transpose(0, 1).unwrap(), None).unwrap();

        let out_b = Tensor::contiguous(&out_b.transpose(0, 1).unwrap().value());
        assert_all_close(&out_b.to_vec(), &out_t.value().to_vec(), 1e-12);
        prop_assert_eq!(h_b.value().to_vec(), h_t.value().to_vec());
    }
}

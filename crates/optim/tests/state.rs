//! Saving and restoring optimizer state: a run saved after 5 steps and resumed in a fresh
//! optimizer ends bit for bit where an uninterrupted 10-step run ends, and bad state files
//! are reported with typed errors.

use std::path::Path;

use strata_autograd::Var;
use strata_optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, LrScheduler, OptimError,
    Optimizer, ParamGroup, RmsProp, RmsPropConfig, Sgd, SgdConfig, WarmupCosineLr,
};
use strata_tensor::{Generator, Tensor};

/// Two parameters, `w (4, 3)` and `b (3,)`, drawn from a fixed seed.
fn params() -> Vec<Var<f32>> {
    let mut gen = Generator::new(7);
    vec![
        Var::parameter(gen.randn(&[4, 3])),
        Var::parameter(gen.randn(&[3])),
    ]
}

/// `sum(tanh(x @ w + b)^2)` for a fixed `x`, differentiated into the parameters' gradients.
fn backward(params: &[Var<f32>], step: usize) {
    let mut gen = Generator::new(100 + step as u64);
    let x = Var::new(gen.randn(&[5, 4]));
    let out = x
        .matmul(&params[0])
        .unwrap()
        .add(&params[1])
        .unwrap()
        .tanh();
    out.square().sum_all().backward().unwrap();
}

type Make = fn(&[Var<f32>]) -> Box<dyn Optimizer<f32>>;

fn two_groups<C: Clone>(params: &[Var<f32>], a: C, b: C) -> Vec<ParamGroup<f32, C>> {
    vec![
        ParamGroup::new(vec![params[0].clone()], a),
        ParamGroup::new(vec![params[1].clone()], b),
    ]
}

fn makers() -> Vec<(&'static str, Make)> {
    vec![
        ("adamw", |p| {
            let a = AdamWConfig {
                lr: 0.05,
                amsgrad: true,
                ..Default::default()
            };
            let b = AdamWConfig {
                weight_decay: 0.0,
                ..a
            };
            Box::new(AdamW::with_groups(two_groups(p, a, b)).unwrap())
        }),
        ("adam", |p| {
            let a = AdamConfig {
                lr: 0.02,
                weight_decay: 0.1,
                ..Default::default()
            };
            Box::new(Adam::with_groups(two_groups(p, a, AdamConfig { lr: 0.01, ..a })).unwrap())
        }),
        ("sgd", |p| {
            let a = SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                ..Default::default()
            };
            Box::new(Sgd::with_groups(two_groups(p, a, SgdConfig { lr: 0.05, ..a })).unwrap())
        }),
        ("rmsprop", |p| {
            let a = RmsPropConfig {
                momentum: 0.5,
                centered: true,
                ..Default::default()
            };
            Box::new(RmsProp::with_groups(two_groups(p, a, a)).unwrap())
        }),
        ("adagrad", |p| {
            let a = AdagradConfig {
                lr_decay: 0.1,
                ..Default::default()
            };
            Box::new(Adagrad::with_groups(two_groups(p, a, a)).unwrap())
        }),
    ]
}

fn train(opt: &mut dyn Optimizer<f32>, params: &[Var<f32>], steps: std::ops::Range<usize>) {
    let sched = WarmupCosineLr::new(0.05, 0.005, 3, 8).unwrap();
    for step in steps {
        let lr = sched.lr(step);
        for g in 0..opt.num_groups() {
            // Keep the groups' ratio of learning rates while following the schedule.
            let base = if g == 0 { 1.0 } else { 0.5 };
            opt.set_group_lr(g, lr * base).unwrap();
        }
        opt.zero_grad();
        backward(params, step);
        opt.step().unwrap();
    }
}

fn bits(params: &[Var<f32>]) -> Vec<u32> {
    params
        .iter()
        .flat_map(|p| p.value().to_vec())
        .map(f32::to_bits)
        .collect()
}

#[test]
fn resumed_run_equals_uninterrupted_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, make) in makers() {
        let straight = params();
        let mut opt = make(&straight);
        train(opt.as_mut(), &straight, 0..10);

        let resumed = params();
        let mut first = make(&resumed);
        train(first.as_mut(), &resumed, 0..5);
        let path = dir.path().join(format!("{name}.safetensors"));
        first.save(&path).unwrap();
        drop(first);
        let mut second = make(&resumed);
        second.load(&path).unwrap();
        train(second.as_mut(), &resumed, 5..10);

        assert_eq!(bits(&resumed), bits(&straight), "{name}");
        assert_ne!(
            bits(&resumed),
            bits(&params()),
            "{name}: training moved nothing"
        );
    }
}

#[test]
fn load_restores_hyperparameters() {
    let p = params();
    let config = AdamWConfig {
        lr: 0.123,
        weight_decay: 0.3,
        ..Default::default()
    };
    let mut saved = AdamW::new(p.clone(), config).unwrap();
    backward(&p, 0);
    saved.step().unwrap();
    let mut fresh = AdamW::new(p, AdamWConfig::default()).unwrap();

    fresh.load_state_dict(&saved.state_dict()).unwrap();

    assert_eq!(fresh.param_groups()[0].config, config);
}

#[test]
fn save_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = params();
    let mut opt = Adam::new(p.clone(), AdamConfig::default()).unwrap();
    backward(&p, 0);
    opt.step().unwrap();

    opt.save(&dir.path().join("opt.safetensors")).unwrap();
    opt.save(&dir.path().join("opt.safetensors")).unwrap();

    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("opt.safetensors")]);
}

/// Regression: the metadata map (kind, format, groups, hyperparameters) went into the header
/// in `HashMap` order, so two saves of one state gave files with different bytes.
#[test]
fn saving_the_same_state_twice_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, make) in makers() {
        let p = params();
        let mut opt = make(&p);
        train(opt.as_mut(), &p, 0..2);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));

        opt.save(&a).unwrap();
        opt.save(&b).unwrap();

        let bytes = std::fs::read(&a).unwrap();
        assert_eq!(bytes, std::fs::read(&b).unwrap(), "{name}");
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        let keys = [
            "\"format\"",
            "\"optimizer\"",
            "\"param_groups\"",
            "\"param_groups.0.",
        ];
        let positions: Vec<usize> = keys.iter().map(|k| header.find(k).unwrap()).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "{name}: {header}"
        );
        let mut fresh = make(&p);
        fresh.load(&a).unwrap();
        assert_eq!(fresh.state_dict(), opt.state_dict(), "{name}");
    }
}

fn stepped_adam(params: &[Var<f32>]) -> Adam<f32> {
    let mut opt = Adam::new(params.to_vec(), AdamConfig::default()).unwrap();
    backward(params, 0);
    opt.step().unwrap();
    opt
}

fn mismatch(err: OptimError) -> String {
    match err {
        OptimError::StateMismatch { what } => what,
        other => panic!("expected StateMismatch, got {other}"),
    }
}

#[test]
fn state_of_another_optimizer_is_rejected() {
    let p = params();
    let state = stepped_adam(&p).state_dict();
    let mut sgd = Sgd::new(p, SgdConfig::default()).unwrap();

    let what = mismatch(sgd.load_state_dict(&state).unwrap_err());

    assert!(what.contains("Adam") && what.contains("SGD"), "{what}");
}

#[test]
fn state_with_another_parameter_count_is_rejected() {
    let p = params();
    let state = stepped_adam(&p).state_dict();
    let mut fewer = Adam::new(vec![p[0].clone()], AdamConfig::default()).unwrap();

    let what = mismatch(fewer.load_state_dict(&state).unwrap_err());

    assert!(
        what.contains("2 parameters") && what.contains("1 in the optimizer"),
        "{what}"
    );
}

#[test]
fn state_with_another_shape_is_rejected_and_nothing_changes() {
    let p = params();
    let state = stepped_adam(&p).state_dict();
    let other = vec![Var::parameter(Tensor::zeros(&[3, 4])), p[1].clone()];
    let mut opt = Adam::new(
        other,
        AdamConfig {
            lr: 0.5,
            ..Default::default()
        },
    )
    .unwrap();

    let what = mismatch(opt.load_state_dict(&state).unwrap_err());

    assert!(
        what.contains("state.0.exp_avg") && what.contains("[4, 3]"),
        "{what}"
    );
    assert_eq!(opt.lr(), 0.5);
    assert!(opt.state_dict().tensors.is_empty());
}

#[test]
fn state_with_another_group_count_is_rejected() {
    let p = params();
    let state = stepped_adam(&p).state_dict();
    let groups = two_groups(&p, AdamConfig::default(), AdamConfig::default());
    let mut opt = Adam::with_groups(groups).unwrap();

    let what = mismatch(opt.load_state_dict(&state).unwrap_err());

    assert!(what.contains("1 parameter groups"), "{what}");
}

#[test]
fn state_with_a_missing_buffer_is_rejected() {
    let p = params();
    let mut state = stepped_adam(&p).state_dict();
    state.tensors.remove("state.1.exp_avg_sq");
    let mut opt = Adam::new(p, AdamConfig::default()).unwrap();

    let what = mismatch(opt.load_state_dict(&state).unwrap_err());

    assert!(
        what.contains("parameter 1") && what.contains("exp_avg_sq"),
        "{what}"
    );
}

#[test]
fn truncated_file_is_corrupt_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    let p = params();
    stepped_adam(&p).save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let mut opt = Adam::new(p, AdamConfig::default()).unwrap();

    let err = opt.load(&path).unwrap_err();

    assert!(matches!(err, OptimError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("opt.safetensors"), "{err}");
}

#[test]
fn garbage_and_missing_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file at all").unwrap();
    let mut opt = Adam::new(params(), AdamConfig::default()).unwrap();

    let corrupt = opt.load(&garbage).unwrap_err();
    let missing = opt
        .load(Path::new("/nonexistent/opt.safetensors"))
        .unwrap_err();

    assert!(matches!(corrupt, OptimError::Corrupt { .. }), "{corrupt}");
    assert!(matches!(missing, OptimError::Io { .. }), "{missing}");
    assert!(
        missing.to_string().contains("/nonexistent/opt.safetensors"),
        "{missing}"
    );
}

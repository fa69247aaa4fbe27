//! State dicts against PyTorch: a safetensors file written by `safetensors.torch.save_file`
//! loads into the equivalent Strata module and gives PyTorch's output; a file written here
//! round-trips with the names, shapes, dtypes and metadata that `safetensors.torch.load_file`
//! reads; and mismatches, truncated files and missing files give clear errors.
//!
//! The fixtures come from fixtures/nn_fixtures.py, whose docstring also describes the check by
//! hand that PyTorch loads a file written here (set `STRATA_STATE_CHECK` to a path and this
//! test writes the file there too).

mod nn_util;

use nn_util::{assert_close, fixture, indices, sizes};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use strata_autograd::Var;
use strata_nn_layers::{
    load_state_dict, load_state_dict_from_bytes, prefixed, save_state_dict, state_dict, Embedding,
    Forward, LayerNorm, Linear, Module, NnError, ReLU, Sequential,
};
use strata_tensor::{Generator, IndexTensor};

const TORCH_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/nn_state.safetensors"
);

/// The `Net` of the fixture script: Embedding -> Linear -> ReLU -> Linear -> LayerNorm.
struct Net {
    emb: Embedding<f32>,
    mlp: Sequential<f32>,
    norm: LayerNorm<f32>,
}

impl Net {
    fn new(seed: u64) -> Self {
        let mut gen = Generator::new(seed);
        Self {
            emb: Embedding::new(10, 4, &mut gen),
            mlp: Sequential::new()
                .push(Linear::new(4, 8, &mut gen))
                .push(ReLU)
                .push(Linear::new(8, 3, &mut gen)),
            norm: LayerNorm::new(&[3]),
        }
    }

    fn forward(&self, ids: &IndexTensor) -> Var<f32> {
        let h = self.mlp.forward(&self.emb.forward(ids).unwrap()).unwrap();
        self.norm.forward(&h).unwrap()
    }
}

impl Module<f32> for Net {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<f32>)) {
        self.emb.visit_parameters(&prefixed(prefix, "emb"), f);
        self.mlp.visit_parameters(&prefixed(prefix, "mlp"), f);
        self.norm.visit_parameters(&prefixed(prefix, "norm"), f);
    }
}

fn case() -> Value {
    fixture(include_str!("fixtures/nn_layers.json"))["state_dict"].clone()
}

#[test]
fn pytorch_file_loads_and_gives_pytorch_output() {
    let c = case();
    let net = Net::new(0);
    let optimizer_view = net.parameters();

    load_state_dict(&net, TORCH_FILE).unwrap();
    let out = net.forward(&indices(&c["indices"]));

    assert_close("out", &out.value(), &c["out"]);
    // Values were set in place: handles taken before loading see them.
    assert_eq!(optimizer_view[0].value(), net.emb.weight().value());
}

#[test]
fn names_and_order_equal_pytorch_state_dict() {
    let c = case();
    let want: Vec<&str> = c["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();

    let entries = state_dict(&Net::new(0));

    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, want);
    for ((_, t), shape) in entries.iter().zip(c["shapes"].as_array().unwrap()) {
        assert_eq!(t.shape(), sizes(shape).as_slice());
    }
}

#[test]
fn written_file_has_what_safetensors_torch_expects_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let net = Net::new(0);
    load_state_dict(&net, TORCH_FILE).unwrap();

    save_state_dict(&net, &path).unwrap();
    if let Ok(check) = std::env::var("STRATA_STATE_CHECK") {
        save_state_dict(&net, check).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let fresh = Net::new(1);
    load_state_dict(&fresh, &path).unwrap();

    let torch_bytes = std::fs::read(TORCH_FILE).unwrap();
    let torch = SafeTensors::deserialize(&torch_bytes).unwrap();
    let mut names = file.names();
    let mut torch_names = torch.names();
    names.sort_unstable();
    torch_names.sort_unstable();
    assert_eq!(names, torch_names);
    for name in names {
        let (ours, theirs) = (file.tensor(name).unwrap(), torch.tensor(name).unwrap());
        assert_eq!(ours.dtype(), Dtype::F32);
        assert_eq!(ours.shape(), theirs.shape(), "{name}");
        assert_eq!(ours.data(), theirs.data(), "{name}");
    }
    assert_eq!(metadata.metadata().as_ref().unwrap()["format"], "pt");
    let ids = indices(&case()["indices"]);
    assert_eq!(fresh.forward(&ids).value(), net.forward(&ids).value());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "the temporary file was renamed away");
}

#[test]
fn mismatched_module_lists_every_problem() {
    let torch_bytes = std::fs::read(TORCH_FILE).unwrap();
    let mut gen = Generator::new(0);
    // emb is 10 x 5 instead of 10 x 4, mlp.2 is missing from the module, and `extra` is
    // not in the file.
    struct Other {
        emb: Embedding<f32>,
        first: Linear<f32>,
        norm: LayerNorm<f32>,
        extra: Linear<f32>,
    }
    impl Module<f32> for Other {
        fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<f32>)) {
            self.emb.visit_parameters(&prefixed(prefix, "emb"), f);
            self.first.visit_parameters(&prefixed(prefix, "mlp.0"), f);
            self.norm.visit_parameters(&prefixed(prefix, "norm"), f);
            self.extra.visit_parameters(&prefixed(prefix, "extra"), f);
        }
    }
    let other = Other {
        emb: Embedding::new(10, 5, &mut gen),
        first: Linear::new(4, 8, &mut gen),
        norm: LayerNorm::new(&[3]),
        extra: Linear::new(2, 2, &mut gen),
    };
    let before = other.first.weight().value();

    let err = load_state_dict_from_bytes(&other, &torch_bytes).unwrap_err();

    let NnError::StateDict { problems } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        problems,
        &[
            "`emb.weight`: shape [10, 4] in the file, [10, 5] in the module",
            "missing key `extra.weight`",
            "missing key `extra.bias`",
            "unexpected key `mlp.2.bias`",
            "unexpected key `mlp.2.weight`",
        ]
    );
    assert!(err
        .to_string()
        .starts_with("load_state_dict: 5 mismatch(es): "));
    assert_eq!(
        other.first.weight().value(),
        before,
        "nothing is loaded on a mismatch"
    );
}

#[test]
fn truncated_and_missing_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("cut.safetensors");
    let bytes = std::fs::read(TORCH_FILE).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let net = Net::new(0);

    for path in [truncated, dir.path().join("absent.safetensors")] {
        let err = load_state_dict(&net, &path).unwrap_err();

        assert!(
            matches!(&err, NnError::File { path: p, .. } if *p == path),
            "{err}"
        );
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{err}"
        );
    }
}

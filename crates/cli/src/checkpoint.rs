//! Checkpoints: named `f32` tensors in safetensors files, written atomically, and loading them
//! back into a model's parameters with every name and shape checked.
//!
//! Every file written here has a canonical header (see
//! [`strata_autograd::safetensors_file::serialize`]), so the same tensors and metadata always
//! give the same bytes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use strata_autograd::{safetensors_file, Var};
use strata_tensor::Tensor;

use crate::fsutil::write_atomic;

/// Writes `tensors` (name, tensor) and string `metadata` to a safetensors file atomically.
///
/// # Errors
/// If two tensors share a name or the file cannot be written.
pub fn save_tensors(
    path: &Path,
    tensors: &[(String, Tensor<f32>)],
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let bytes = t
                .contiguous_slice()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            (name.clone(), t.shape().to_vec(), bytes)
        })
        .collect();
    let mut views = BTreeMap::new();
    for (name, shape, bytes) in &buffers {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .expect("bug: a tensor's bytes match its shape");
        if views.insert(name.as_str(), view).is_some() {
            bail!("{}: two tensors are named {name}", path.display());
        }
    }
    let bytes = safetensors_file::serialize(views, &metadata)
        .with_context(|| format!("cannot encode {}", path.display()))?;
    write_atomic(path, &bytes)
}

/// The tensors and metadata of a safetensors file written by [`save_tensors`].
#[derive(Debug, Clone, Default)]
pub struct TensorFile {
    /// The tensors by name.
    pub tensors: HashMap<String, Tensor<f32>>,
    /// The string metadata of the header.
    pub metadata: HashMap<String, String>,
}

/// Reads a safetensors file of `f32` tensors.
///
/// # Errors
/// If the file cannot be read, is not a valid safetensors file, holds another dtype, or holds
/// a NaN or an infinity (a model with such a weight produces nothing but NaN).
pub fn load_tensors(path: &Path) -> Result<TensorFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let corrupt = || format!("{} is corrupt or not a safetensors file", path.display());
    let (_, header) = SafeTensors::read_metadata(&bytes).with_context(corrupt)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).with_context(corrupt)?;
    let mut tensors = HashMap::new();
    for (name, view) in file.iter() {
        if view.dtype() != Dtype::F32 {
            bail!(
                "{}: {name} is {:?}, expected F32",
                path.display(),
                view.dtype()
            );
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("bug: chunks of 4 bytes")))
            .collect::<Vec<f32>>();
        if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            bail!(
                "{}: tensor {name} holds {value} at flat index {index}; a checkpoint must hold \
                 finite numbers only",
                path.display()
            );
        }
        let tensor = Tensor::from_vec(values, view.shape()).with_context(corrupt)?;
        tensors.insert(name.to_owned(), tensor);
    }
    Ok(TensorFile { tensors, metadata })
}

/// Loads `tensors` into `vars` by name, checking every name and shape first.
///
/// # Errors
/// If names are missing, unexpected or of another shape, listing every problem.
pub fn load_vars(
    path: &Path,
    vars: &[(String, Var<f32>)],
    mut tensors: HashMap<String, Tensor<f32>>,
) -> Result<()> {
    let mut problems = Vec::new();
    let mut updates = Vec::new();
    for (name, var) in vars {
        match tensors.remove(name) {
            Some(value) if value.shape() == var.shape() => updates.push((var, value)),
            Some(value) => problems.push(format!(
                "{name} has shape {:?} in the file but {:?} in the model",
                value.shape(),
                var.shape()
            )),
            None => problems.push(format!("{name} is missing")),
        }
    }
    let mut unexpected: Vec<&String> = tensors.keys().collect();
    unexpected.sort();
    problems.extend(
        unexpected
            .into_iter()
            .map(|name| format!("unexpected {name}")),
    );
    if !problems.is_empty() {
        bail!(
            "{} does not match the model: {}",
            path.display(),
            problems.join("; ")
        );
    }
    for (var, value) in updates {
        var.set_value(value)
            .with_context(|| format!("{}: cannot load a tensor", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip_bit_for_bit_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let a = Tensor::from_vec(vec![0.1f32, -2.5, f32::MIN_POSITIVE], &[3]).unwrap();
        let b = Tensor::from_vec(vec![1.0f32; 6], &[2, 3]).unwrap();
        let meta = BTreeMap::from([("step".to_string(), "7".to_string())]);

        save_tensors(
            &path,
            &[("a".into(), a.clone()), ("b".into(), b.clone())],
            meta,
        )
        .unwrap();
        let back = load_tensors(&path).unwrap();

        assert_eq!(back.tensors["a"].to_vec(), a.to_vec());
        assert_eq!(back.tensors["b"].shape(), &[2, 3]);
        assert_eq!(back.metadata["step"], "7");
    }

    /// Regression: the `__metadata__` map was written from a `HashMap`, so the same weights
    /// and metadata gave files whose header bytes differed from one save to the next.
    #[test]
    fn same_tensors_and_metadata_give_the_same_file_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tensor::from_vec(vec![0.5f32, -1.0], &[2]).unwrap();
        let tensors = [("z".to_string(), a.clone()), ("a".to_string(), a)];
        let metadata = || {
            (0..6)
                .map(|i| (format!("key{i}"), i.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let mut files = Vec::new();
        for i in 0..8 {
            let path = dir.path().join(format!("m{i}.safetensors"));
            save_tensors(&path, &tensors, metadata()).unwrap();
            files.push(std::fs::read(&path).unwrap());
        }

        assert!(files.windows(2).all(|w| w[0] == w[1]));
        let header = String::from_utf8_lossy(&files[0][8..]).into_owned();
        let positions: Vec<usize> = (0..6)
            .map(|i| header.find(&format!("\"key{i}\"")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{header}");
        assert_eq!(files[0].len() % 8, 0, "the data stays 8-byte aligned");
        let back = load_tensors(&dir.path().join("m0.safetensors")).unwrap();
        assert_eq!(back.tensors["z"].to_vec(), [0.5, -1.0]);
        assert_eq!(back.metadata["key3"], "3");
    }

    /// Regression: a checkpoint holding NaN weights loaded without complaint, and `sample`
    /// then printed newlines and `eval` printed "validation loss: NaN" with exit status 0.
    #[test]
    fn non_finite_weights_are_rejected_naming_file_and_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let good = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let bad = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0], &[3]).unwrap();
        save_tensors(
            &path,
            &[("a.weight".into(), good), ("b.weight".into(), bad)],
            BTreeMap::new(),
        )
        .unwrap();

        let err = load_tensors(&path).unwrap_err().to_string();

        assert!(err.contains("model.safetensors"), "{err}");
        assert!(err.contains("b.weight holds NaN at flat index 1"), "{err}");
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        std::fs::write(&path, b"\x10\0\0\0\0\0\0\0{not json}").unwrap();

        let err = load_tensors(&path).unwrap_err();

        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[test]
    fn mismatched_names_and_shapes_are_all_listed() {
        let vars = vec![
            (
                "w".to_string(),
                Var::parameter(Tensor::<f32>::zeros(&[2, 2])),
            ),
            ("b".to_string(), Var::parameter(Tensor::<f32>::zeros(&[2]))),
        ];
        let tensors = HashMap::from([
            ("w".to_string(), Tensor::<f32>::zeros(&[3])),
            ("x".to_string(), Tensor::<f32>::zeros(&[1])),
        ]);

        let err = load_vars(Path::new("m"), &vars, tensors)
            .unwrap_err()
            .to_string();

        assert!(err.contains("w has shape [3]"), "{err}");
        assert!(err.contains("b is missing"), "{err}");
        assert!(err.contains("unexpected x"), "{err}");
    }
}

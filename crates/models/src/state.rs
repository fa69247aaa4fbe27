//! State dicts: loading named tensors into parameters, and safetensors files.
//!
//! A state dict here is a map from PyTorch's dotted names to tensors. Loading checks every
//! name and shape and reports all problems at once; tied parameters (one variable under two
//! names, like GPT's `lm_head.weight` and `transformer.wte.weight`) load from either name.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use strata_autograd::{safetensors_file, Var};
use strata_tensor::{DType, Element, Tensor};

use crate::error::{ModelError, Result};

/// Loads `dict` into `params`; `aliases` lists `(alias, canonical)` names of tied parameters.
///
/// A tied parameter loads from its canonical name, or from its alias when only that is
/// present; when both are present they must hold equal values.
pub(crate) fn load_into<T: Element>(
    params: &[(String, Var<T>)],
    aliases: &[(&str, &str)],
    dict: &HashMap<String, Tensor<T>>,
) -> Result<()> {
    let mut problems = Vec::new();
    let mut updates = Vec::new();
    for (name, var) in params {
        let alias = aliases.iter().find(|(_, c)| c == name).map(|(a, _)| *a);
        let value = match (dict.get(name), alias.and_then(|a| dict.get(a))) {
            (Some(v), Some(other)) => {
                if v.shape() == other.shape() && v.to_vec() != other.to_vec() {
                    problems.push(format!("{name} and its tied alias hold different values"));
                }
                v
            }
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => {
                problems.push(format!("missing {name}"));
                continue;
            }
        };
        if value.shape() != var.shape() {
            problems.push(format!(
                "{name}: shape {:?} in the state dict, {:?} in the model",
                value.shape(),
                var.shape()
            ));
            continue;
        }
        updates.push((var, value));
    }
    for key in dict.keys() {
        let known = params.iter().any(|(n, _)| n == key) || aliases.iter().any(|(a, _)| a == key);
        if !known {
            problems.push(format!("unexpected {key}"));
        }
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(ModelError::StateDict { problems });
    }
    for (var, value) in updates {
        var.set_value(value.contiguous())?;
    }
    Ok(())
}

/// Reads every F32 or F64 tensor of a safetensors file, converted to `T`.
pub(crate) fn read_safetensors<T: Element>(path: &Path) -> Result<HashMap<String, Tensor<T>>> {
    let file_err = |reason: String| ModelError::File {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| file_err(e.to_string()))?;
    let mut out = HashMap::new();
    for (name, view) in tensors.iter() {
        let data = view.data();
        let values: Vec<T> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| T::from_f64(f64::from(f32::from_le_bytes(c.try_into().expect("bug: 4")))))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().expect("bug: 8"))))
                .collect(),
            other => return Err(file_err(format!("{name}: unsupported dtype {other:?}"))),
        };
        out.insert(name.to_owned(), Tensor::from_vec(values, view.shape())?);
    }
    Ok(out)
}

/// Writes named tensors to a safetensors file, in `T`'s dtype, with a canonical header (see
/// [`safetensors_file::serialize`]).
pub(crate) fn write_safetensors<T: Element>(
    path: &Path,
    named: &[(String, Tensor<T>)],
) -> Result<()> {
    let file_err = |reason: String| ModelError::File {
        path: path.to_path_buf(),
        reason,
    };
    let dtype = match T::DTYPE {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    };
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = named
        .iter()
        .map(|(name, t)| {
            let bytes = t
                .to_vec()
                .into_iter()
                .flat_map(|x| match T::DTYPE {
                    DType::F32 => (x.as_f64() as f32).to_le_bytes().to_vec(),
                    DType::F64 => x.as_f64().to_le_bytes().to_vec(),
                })
                .collect();
            (name.clone(), t.shape().to_vec(), bytes)
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| file_err(e.to_string()))?;
    let bytes = safetensors_file::serialize(views, &BTreeMap::new())
        .map_err(|e| file_err(e.to_string()))?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| file_err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(e.to_string()))
}

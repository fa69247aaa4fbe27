//! Optimizer state in memory ([`StateDict`]) and in safetensors files.
//!
//! A file holds one tensor per state buffer, named `state.{index}.{buffer}` after the
//! parameter's index over all groups (`state.3.exp_avg`), in the parameters' element type;
//! step counts as `I64` scalars named `state.{index}.step`; and, in the safetensors metadata
//! map, the optimizer kind (`optimizer`), a format tag (`format`), the number of groups
//! (`param_groups`) and per group its parameter indices (`param_groups.{g}.params`, e.g.
//! `"0,1,2"`) and its hyperparameters as text (`param_groups.{g}.lr`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use strata_autograd::safetensors_file;
use strata_tensor::{DType, Element, Tensor};

use crate::error::{OptimError, Result};

/// The value of the `format` metadata entry of files this crate writes.
pub const STATE_FORMAT: &str = "strata-optim/1";

/// An optimizer's state: buffers, step counts and metadata (PyTorch's `state_dict()`).
///
/// Made by [`Optimizer::state_dict`](crate::Optimizer::state_dict); the module docs describe
/// the keys. It can be saved and loaded without an optimizer, e.g. to inspect a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct StateDict<T: Element> {
    /// Text entries: optimizer kind, groups, hyperparameters.
    pub metadata: BTreeMap<String, String>,
    /// Per-parameter buffers (moment estimates, momentum buffers), shaped as the parameter.
    pub tensors: BTreeMap<String, Tensor<T>>,
    /// Per-parameter step counts.
    pub steps: BTreeMap<String, u64>,
}

impl<T: Element> StateDict<T> {
    /// An empty state for optimizer `kind`.
    pub fn new(kind: &str) -> Self {
        let mut metadata = BTreeMap::new();
        metadata.insert("optimizer".into(), kind.into());
        metadata.insert("format".into(), STATE_FORMAT.into());
        Self {
            metadata,
            tensors: BTreeMap::new(),
            steps: BTreeMap::new(),
        }
    }

    /// The optimizer kind recorded in the metadata (`"AdamW"`).
    pub fn kind(&self) -> Option<&str> {
        self.metadata.get("optimizer").map(String::as_str)
    }

    /// The state as the bytes of a safetensors file, with a canonical header (metadata keys
    /// sorted, see [`safetensors_file::serialize`]): the same state always gives the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, tensor) in &self.tensors {
            let bytes = match T::DTYPE {
                DType::F32 => tensor
                    .contiguous_slice()
                    .iter()
                    .flat_map(|x| (x.as_f64() as f32).to_le_bytes())
                    .collect(),
                DType::F64 => tensor
                    .contiguous_slice()
                    .iter()
                    .flat_map(|x| x.as_f64().to_le_bytes())
                    .collect(),
            };
            blobs.push((
                name.clone(),
                safetensors_dtype::<T>(),
                tensor.shape().to_vec(),
                bytes,
            ));
        }
        for (name, &step) in &self.steps {
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            blobs.push((
                name.clone(),
                Dtype::I64,
                Vec::new(),
                step.to_le_bytes().to_vec(),
            ));
        }
        let views = blobs.iter().map(|(name, dtype, shape, bytes)| {
            let view = TensorView::new(*dtype, shape.clone(), bytes)
                .expect("bug: byte count matches shape and dtype");
            (name.as_str(), view)
        });
        safetensors_file::serialize(views, &self.metadata)
            .expect("bug: an in-memory safetensors header always serializes")
    }

    /// Reads a state from the bytes of a safetensors file; `path` names it in errors.
    ///
    /// # Errors
    /// [`OptimError::Corrupt`] if the bytes are not a valid safetensors file or hold tensors
    /// of another element type than `T`.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |reason: String| OptimError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
        let file = SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
        let metadata: BTreeMap<String, String> = header
            .metadata()
            .as_ref()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        if metadata.get("format").map(String::as_str) != Some(STATE_FORMAT) {
            return Err(corrupt(format!(
                "format is {:?}, expected {STATE_FORMAT:?}",
                metadata.get("format")
            )));
        }
        let mut out = Self {
            metadata,
            tensors: BTreeMap::new(),
            steps: BTreeMap::new(),
        };
        for (name, view) in file.iter() {
            let data = view.data();
            match view.dtype() {
                Dtype::I64 if view.shape().is_empty() => {
                    let raw = i64::from_le_bytes(data.try_into().expect("bug: 8 bytes"));
                    let step = u64::try_from(raw)
                        .map_err(|_| corrupt(format!("{name}: negative step count {raw}")))?;
                    out.steps.insert(name.to_string(), step);
                }
                dtype if dtype == safetensors_dtype::<T>() => {
                    let values: Vec<T> = match T::DTYPE {
                        DType::F32 => data
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes(b.try_into().expect("bug: 4 bytes")))
                            .map(|x| T::from_f64(f64::from(x)))
                            .collect(),
                        DType::F64 => data
                            .chunks_exact(8)
                            .map(|b| f64::from_le_bytes(b.try_into().expect("bug: 8 bytes")))
                            .map(T::from_f64)
                            .collect(),
                    };
                    let tensor = Tensor::from_vec(values, view.shape())
                        .expect("bug: safetensors checked the byte count");
                    out.tensors.insert(name.to_string(), tensor);
                }
                dtype => {
                    return Err(corrupt(format!(
                        "{name} has dtype {dtype:?} and shape {:?}, expected {:?} buffers \
                         and I64 scalar steps",
                        view.shape(),
                        safetensors_dtype::<T>()
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Writes the state to `path` atomically: to a temporary file in the same folder, synced
    /// to disk, then renamed over `path`, so a crash leaves either the old file or the new one.
    ///
    /// # Errors
    /// [`OptimError::Io`] if a write, sync or rename fails; the temporary file is removed.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| OptimError::Io {
            op: "save",
            path: path.to_path_buf(),
            source,
        };
        let tmp = temp_path(path);
        let written = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&self.to_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        // Sync the folder so the rename itself survives a crash (not possible on every system).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }

    /// Reads a state written by [`save`](StateDict::save).
    ///
    /// # Errors
    /// [`OptimError::Io`] if the file cannot be read, [`OptimError::Corrupt`] if it is not a
    /// valid optimizer state file (truncated, not safetensors, another format or dtype).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|source| OptimError::Io {
            op: "load",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }
}

fn safetensors_dtype<T: Element>() -> Dtype {
    match T::DTYPE {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// `dir/.name.tmp-{pid}` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateDict<f32> {
        let mut s = StateDict::new("Adam");
        s.metadata.insert("param_groups".into(), "1".into());
        let t = Tensor::from_vec(vec![1.5f32, -2.0, 3.25, 0.0, 1e-30, -7.0], &[2, 3]).unwrap();
        s.tensors.insert("state.0.exp_avg".into(), t);
        s.steps.insert("state.0.step".into(), 12);
        s
    }

    #[test]
    fn bytes_round_trip() {
        let s = sample();

        let back = StateDict::<f32>::from_bytes(&s.to_bytes(), Path::new("x")).unwrap();

        assert_eq!(back, s);
    }

    #[test]
    fn f64_state_round_trips_exactly() {
        let mut s = StateDict::<f64>::new("SGD");
        let t = Tensor::from_vec(vec![0.1f64, -1e-300, 1.0 / 3.0], &[3]).unwrap();
        s.tensors.insert("state.0.momentum_buffer".into(), t);

        let back = StateDict::<f64>::from_bytes(&s.to_bytes(), Path::new("x")).unwrap();

        assert_eq!(back, s);
    }

    #[test]
    fn truncated_bytes_are_corrupt_and_name_the_file() {
        let bytes = sample().to_bytes();

        let err = StateDict::<f32>::from_bytes(&bytes[..bytes.len() - 3], Path::new("opt.st"));

        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("opt.st") && msg.contains("corrupt"), "{msg}");
    }

    #[test]
    fn other_dtype_is_corrupt() {
        let bytes = sample().to_bytes();

        let err = StateDict::<f64>::from_bytes(&bytes, Path::new("opt.st")).unwrap_err();

        assert!(matches!(err, OptimError::Corrupt { .. }), "{err}");
    }
}

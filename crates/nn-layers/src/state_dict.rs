//! State dicts: a module's parameters and buffers by name, saved to and loaded from
//! safetensors files that PyTorch's `safetensors.torch` reads and writes.
//!
//! Loading checks every name, shape and dtype first and reports all problems at once; only a
//! state dict that matches completely is loaded, with [`Var::set_value`], so optimizers that
//! hold the same variables see the new values.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use strata_autograd::{safetensors_file, Var};
use strata_tensor::{DType, Element, Tensor};

use crate::error::{NnError, Result};
use crate::module::Module;

/// The name a buffer ends with when PyTorch stores it as `int64`: BatchNorm's
/// `num_batches_tracked`. It is written as `I64` and may be read from `I64`.
const INT_BUFFER: &str = "num_batches_tracked";

/// Every parameter and buffer of `module` with its dotted name, in the order of PyTorch's
/// `module.state_dict()`: for each module, its own parameters, then its own buffers, then
/// its children in order.
pub fn state_dict<T: Element, M: Module<T> + ?Sized>(module: &M) -> Vec<(String, Tensor<T>)> {
    let mut tree = Node::default();
    module.visit_parameters("", &mut |name, var| tree.insert(name, var.value(), false));
    module.visit_buffers("", &mut |name, var| tree.insert(name, var.value(), true));
    let mut out = Vec::new();
    tree.flatten(&mut out);
    out
}

/// The state dict of `module` serialised as safetensors bytes, with metadata
/// `{"format": "pt"}` as `safetensors.torch.save_file` writes, and a canonical header (see
/// [`safetensors_file::serialize`]): the same state always gives the same bytes.
///
/// # Errors
/// [`NnError::File`] if safetensors refuses the tensors (it does not for valid modules).
pub fn state_dict_to_bytes<T: Element, M: Module<T> + ?Sized>(module: &M) -> Result<Vec<u8>> {
    let entries = state_dict(module);
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = entries
        .iter()
        .map(|(name, t)| {
            let (dtype, data) = if name.ends_with(INT_BUFFER) {
                (Dtype::I64, int_bytes(t))
            } else {
                (safetensors_dtype(T::DTYPE), float_bytes(t))
            };
            (name.clone(), dtype, t.shape().to_vec(), data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data).map(|v| (name.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| memory_error(e.to_string()))?;
    let metadata = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors_file::serialize(views, &metadata).map_err(|e| memory_error(e.to_string()))
}

/// Saves the state dict of `module` to `path` as safetensors, atomically: the bytes go to a
/// temporary file in the same folder, which is synced and then renamed over `path`, so a
/// crash leaves either the old file or the new one, never a torn one.
///
/// # Errors
/// [`NnError::File`] naming the path if it cannot be written.
pub fn save_state_dict<T: Element, M: Module<T> + ?Sized>(
    module: &M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = state_dict_to_bytes(module)?;
    let file_error = |e: std::io::Error| NnError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file_name = path.file_name().ok_or_else(|| NnError::File {
        path: path.to_path_buf(),
        reason: "not a file path".into(),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Persist the rename itself; not every platform can open a folder, so ignore that.
            if let Ok(dir) = fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        file_error(e)
    })
}

/// Loads a safetensors file into `module`, PyTorch's `module.load_state_dict(load_file(path))`
/// with `strict=True`.
///
/// # Errors
/// [`NnError::File`] naming the path if it cannot be read or is not valid safetensors
/// (truncated, corrupt); [`NnError::StateDict`] listing every missing name, unexpected name,
/// shape and dtype mismatch, in which case nothing is loaded.
pub fn load_state_dict<T: Element, M: Module<T> + ?Sized>(
    module: &M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| NnError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    load_from(module, &bytes, path)
}

/// Loads safetensors bytes into `module`, as [`load_state_dict`] does for a file.
///
/// # Errors
/// As [`load_state_dict`]; file errors name the path `<memory>`.
pub fn load_state_dict_from_bytes<T: Element, M: Module<T> + ?Sized>(
    module: &M,
    bytes: &[u8],
) -> Result<()> {
    load_from(module, bytes, Path::new(MEMORY))
}

const MEMORY: &str = "<memory>";

fn memory_error(reason: String) -> NnError {
    NnError::File {
        path: PathBuf::from(MEMORY),
        reason,
    }
}

fn load_from<T: Element, M: Module<T> + ?Sized>(
    module: &M,
    bytes: &[u8],
    path: &Path,
) -> Result<()> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| NnError::File {
        path: path.to_path_buf(),
        reason: format!("not a valid safetensors file: {e}"),
    })?;
    let mut targets: Vec<(String, Var<T>)> = Vec::new();
    module.visit_parameters("", &mut |name, var| {
        targets.push((name.to_owned(), var.clone()))
    });
    module.visit_buffers("", &mut |name, var| {
        targets.push((name.to_owned(), var.clone()))
    });

    let mut problems = Vec::new();
    let mut values = Vec::with_capacity(targets.len());
    for (name, var) in &targets {
        let Ok(view) = file.tensor(name) else {
            problems.push(format!("missing key `{name}`"));
            continue;
        };
        if view.shape() != var.shape() {
            problems.push(format!(
                "`{name}`: shape {:?} in the file, {:?} in the module",
                view.shape(),
                var.shape()
            ));
            continue;
        }
        match decode::<T>(name, &view) {
            Some(tensor) => values.push((var, tensor)),
            None => problems.push(format!(
                "`{name}`: dtype {:?} in the file, {} in the module",
                view.dtype(),
                T::DTYPE.name()
            )),
        }
    }
    let known: std::collections::HashSet<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
    let mut unexpected: Vec<&str> = file
        .names()
        .into_iter()
        .filter(|n| !known.contains(n))
        .collect();
    unexpected.sort_unstable();
    problems.extend(unexpected.iter().map(|n| format!("unexpected key `{n}`")));
    if !problems.is_empty() {
        return Err(NnError::StateDict { problems });
    }

    for (var, tensor) in values {
        var.set_value(tensor)?;
    }
    Ok(())
}

/// The tensor of `view` as `T`, or `None` if its dtype is not `T`'s (an `I64`
/// `num_batches_tracked` is accepted and converted).
fn decode<T: Element>(name: &str, view: &TensorView<'_>) -> Option<Tensor<T>> {
    let data = view.data();
    let values: Vec<T> = match (view.dtype(), T::DTYPE) {
        (Dtype::F32, DType::F32) => data
            .chunks_exact(4)
            .map(|c| T::from_f64(f64::from(f32::from_le_bytes(c.try_into().expect(CHUNK)))))
            .collect(),
        (Dtype::F64, DType::F64) => data
            .chunks_exact(8)
            .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().expect(CHUNK))))
            .collect(),
        (Dtype::I64, _) if name.ends_with(INT_BUFFER) => data
            .chunks_exact(8)
            .map(|c| T::from_f64(i64::from_le_bytes(c.try_into().expect(CHUNK)) as f64))
            .collect(),
        _ => return None,
    };
    Tensor::from_vec(values, view.shape()).ok()
}

const CHUNK: &str = "bug: chunks_exact yields whole elements";

fn safetensors_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

fn float_bytes<T: Element>(t: &Tensor<T>) -> Vec<u8> {
    let data = t.contiguous_slice();
    match T::DTYPE {
        DType::F32 => data
            .iter()
            .flat_map(|v| (v.as_f64() as f32).to_le_bytes())
            .collect(),
        DType::F64 => data.iter().flat_map(|v| v.as_f64().to_le_bytes()).collect(),
    }
}

fn int_bytes<T: Element>(t: &Tensor<T>) -> Vec<u8> {
    let data = t.contiguous_slice();
    data.iter()
        .flat_map(|v| (v.as_f64().round() as i64).to_le_bytes())
        .collect()
}

/// The module tree rebuilt from dotted names, to list entries in PyTorch's order.
#[derive(Default)]
struct Node<T: Element> {
    params: Vec<(String, Tensor<T>)>,
    buffers: Vec<(String, Tensor<T>)>,
    /// Children by name, in the order first seen; see [`Node::flatten`].
    children: Vec<(String, Node<T>)>,
    index: BTreeMap<String, usize>,
}

impl<T: Element> Node<T> {
    fn insert(&mut self, full_name: &str, value: Tensor<T>, buffer: bool) {
        let mut node = self;
        let mut parts: Vec<&str> = full_name.split('.').collect();
        parts.pop();
        for part in parts {
            let i = match node.index.get(part) {
                Some(&i) => i,
                None => {
                    node.children.push((part.to_owned(), Node::default()));
                    node.index.insert(part.to_owned(), node.children.len() - 1);
                    node.children.len() - 1
                }
            };
            node = &mut node.children[i].1;
        }
        let entry = (full_name.to_owned(), value);
        if buffer {
            node.buffers.push(entry);
        } else {
            node.params.push(entry);
        }
    }

    /// Own parameters, own buffers, then children; numbered children (`Sequential`,
    /// `ModuleList`) in numeric order, since a child holding only buffers is first seen after
    /// all parameters.
    fn flatten(mut self, out: &mut Vec<(String, Tensor<T>)>) {
        out.append(&mut self.params);
        out.append(&mut self.buffers);
        let mut children = self.children;
        if children.iter().all(|(n, _)| n.parse::<usize>().is_ok()) {
            children.sort_by_key(|(n, _)| n.parse::<usize>().unwrap_or(usize::MAX));
        }
        for (_, child) in children {
            child.flatten(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::Generator;

    use super::*;
    use crate::module::prefixed;
    use crate::{Linear, ReLU, Sequential};

    /// Parameters `w`, buffer `stat`, and a child with a parameter.
    struct WithBuffer {
        w: Var<f32>,
        stat: Var<f32>,
        child: Linear<f32>,
    }

    impl Module<f32> for WithBuffer {
        fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<f32>)) {
            f(&prefixed(prefix, "w"), &self.w);
            self.child.visit_parameters(&prefixed(prefix, "child"), f);
        }

        fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<f32>)) {
            f(&prefixed(prefix, "stat"), &self.stat);
        }
    }

    fn with_buffer(seed: u64) -> WithBuffer {
        let mut gen = Generator::new(seed);
        WithBuffer {
            w: Var::parameter(gen.randn(&[2])),
            stat: Var::new(gen.randn(&[3])),
            child: Linear::new(2, 2, &mut gen),
        }
    }

    #[test]
    fn order_is_own_parameters_then_own_buffers_then_children() {
        let names: Vec<String> = state_dict(&with_buffer(0))
            .into_iter()
            .map(|e| e.0)
            .collect();

        assert_eq!(names, ["w", "stat", "child.weight", "child.bias"]);
    }

    #[test]
    fn bytes_round_trip_sets_values_in_place() {
        let (src, dst) = (with_buffer(1), with_buffer(2));
        let handle = dst.child.weight().clone();

        load_state_dict_from_bytes(&dst, &state_dict_to_bytes(&src).unwrap()).unwrap();

        assert_eq!(handle.value(), src.child.weight().value());
        assert_eq!(dst.stat.value(), src.stat.value());
    }

    /// Regression guard: the header metadata was written in `HashMap` order; a save must
    /// give the same bytes every time, and the file must still load.
    #[test]
    fn saving_the_same_state_twice_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (with_buffer(3), with_buffer(4));
        let (a, b) = (
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
        );

        save_state_dict(&src, &a).unwrap();
        save_state_dict(&src, &b).unwrap();
        let (bytes_a, bytes_b) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
        load_state_dict(&dst, &a).unwrap();

        assert_eq!(bytes_a, bytes_b);
        assert_eq!(bytes_a, state_dict_to_bytes(&src).unwrap());
        assert_eq!(dst.child.weight().value(), src.child.weight().value());
        assert_eq!(dst.stat.value(), src.stat.value());
    }

    #[test]
    fn every_mismatch_is_reported_and_nothing_is_loaded() {
        let mut gen = Generator::new(0);
        let src = Sequential::<f32>::new()
            .push(Linear::new(3, 4, &mut gen))
            .push(ReLU);
        let dst = Sequential::<f32>::new()
            .push(Linear::new(3, 5, &mut gen))
            .push(ReLU)
            .push(Linear::new(5, 1, &mut gen));
        let before = dst.get(0).unwrap().parameters()[0].value();

        let err =
            load_state_dict_from_bytes(&dst, &state_dict_to_bytes(&src).unwrap()).unwrap_err();

        let NnError::StateDict { problems } = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems
            .iter()
            .any(|p| p.contains("missing key `2.weight`")));
        assert!(problems
            .iter()
            .any(|p| p.contains("`0.weight`: shape [4, 3]")));
        assert_eq!(dst.get(0).unwrap().parameters()[0].value(), before);
    }

    #[test]
    fn f64_file_into_f32_module_is_a_dtype_mismatch() {
        let mut gen = Generator::new(0);
        let bytes = state_dict_to_bytes(&Linear::<f64>::new(2, 2, &mut gen)).unwrap();

        let err = load_state_dict_from_bytes(&Linear::<f32>::new(2, 2, &mut gen), &bytes);

        let msg = err.unwrap_err().to_string();
        assert!(
            msg.contains("dtype F64 in the file, F32 in the module"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_and_garbage_bytes_are_file_errors() {
        let module = with_buffer(0);
        let bytes = state_dict_to_bytes(&module).unwrap();

        for bad in [
            &bytes[..bytes.len() - 3],
            &bytes[..5],
            b"not safetensors at all".as_slice(),
        ] {
            let err = load_state_dict_from_bytes(&module, bad).unwrap_err();
            assert!(matches!(err, NnError::File { .. }), "{err}");
        }
    }
}

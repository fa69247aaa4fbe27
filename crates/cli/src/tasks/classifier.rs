//! `strata train lenet` and `strata train mlp`: image classifiers on Fashion-MNIST or MNIST.
//!
//! The data is an MNIST-layout folder of four IDX files (`--data DIR`, else Debian's
//! Fashion-MNIST under `/usr/share/datasets/fashion-mnist`), read with strata-data's readers:
//! pixels scaled to `[0, 1]`, padded 28 -> 32 for LeNet, flattened to 784 for the MLP.
//! Training walks the training set in epochs, shuffled by a permutation drawn from a generator
//! seeded by `(seed, epoch)`; evaluation covers the whole test set.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use strata_autograd::{no_grad, Var};
use strata_data::mnist::{ImageDataset, Mnist, MnistConfig};
use strata_models::{param_groups_for_decay, LeNet, LeNetConfig, Mlp, MlpConfig};
use strata_nn_layers::{cross_entropy, Module};
use strata_optim::{Optimizer, StateDict};
use strata_tensor::{Generator, Tensor};

use super::{clip_grad_norm, data_error, model_config, optimizer};
use crate::checkpoint::{load_vars, TensorFile};
use crate::config::{ModelKind, OptimizerKind, RunConfig, TrainConfig};
use crate::fsutil::{read_json, write_json_atomic};
use crate::rundir::RunDir;
use crate::trainer::{step_seed, EvalOutput, StepOutput, Task};

/// The labels file of a classifier run.
pub const LABELS_FILE: &str = "labels.json";
/// Mixed into the seed of each epoch's permutation.
const EPOCH_SALT: u64 = 0x4550_4F43_4800_0000;
/// Images per evaluation batch.
const EVAL_BATCH: usize = 500;

/// Fashion-MNIST's class names, in label order.
const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// LeNet-5 and the MLP: Adam 1e-3, batch 64, 5 epochs, evaluation once per epoch (an
/// `eval_interval` of 0).
pub fn defaults(model: ModelKind) -> (Value, TrainConfig) {
    let model_config = match model {
        ModelKind::Lenet => serde_json::to_value(LeNetConfig::default()),
        _ => serde_json::to_value(MlpConfig::default()),
    };
    let train = TrainConfig {
        steps: 0,
        epochs: Some(5),
        batch_size: 64,
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        min_lr: 1e-3,
        warmup_steps: 0,
        lr_decay_steps: 0,
        betas: (0.9, 0.999),
        weight_decay: 0.0,
        grad_clip: 0.0,
        eval_interval: 0,
        eval_iters: 1,
        log_interval: 50,
        seed: 1337,
        data: None,
    };
    (model_config.expect("bug: model configs serialise"), train)
}

/// The network: LeNet on `(N, 1, 32, 32)` images or an MLP on `(N, 784)` rows.
enum Net {
    LeNet(Box<LeNet<f32>>),
    Mlp(Mlp<f32>),
}

impl Net {
    fn module(&self) -> &dyn Module<f32> {
        match self {
            Net::LeNet(net) => net.as_ref(),
            Net::Mlp(net) => net,
        }
    }

    fn forward(&self, xs: &Var<f32>) -> Result<Var<f32>> {
        Ok(match self {
            Net::LeNet(net) => net.forward(xs)?,
            Net::Mlp(net) => {
                let b_sz = xs.shape()[0];
                net.forward(&xs.reshape(&[b_sz, xs.numel() / b_sz])?)?
            }
        })
    }

    fn config_json(&self) -> Value {
        match self {
            Net::LeNet(net) => serde_json::to_value(net.config()),
            Net::Mlp(net) => serde_json::to_value(net.config()),
        }
        .expect("bug: model configs serialise")
    }
}

/// The labels file: class names in label order.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Labels {
    classes: Vec<String>,
}

/// An image classifier with its data and optimizer.
pub struct ClassifierTask {
    net: Net,
    optimizer: Box<dyn Optimizer<f32>>,
    train_set: ImageDataset,
    test_set: ImageDataset,
    classes: Vec<String>,
    train: TrainConfig,
    epoch_order: Option<(usize, Vec<usize>)>,
}

impl ClassifierTask {
    /// Loads the data and builds the network.
    ///
    /// # Errors
    /// If the data folder is missing (saying how to get Fashion-MNIST), its files are
    /// unreadable, or the config does not fit the images.
    pub fn new(config: &RunConfig, run: Option<&RunDir>) -> Result<Self> {
        let train = config.train.clone();
        let dir = train
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(Mnist::FASHION_MNIST_DIR));
        let padding = if config.model == ModelKind::Lenet {
            2
        } else {
            0
        };
        let data = load_images(&dir, padding)?;
        let num_classes = check_labels(&dir, data.train.labels(), data.test.labels())?;
        let classes = match run {
            Some(run) => {
                let classes = read_json::<Labels>(&run.file(LABELS_FILE))?.classes;
                if classes.len() != num_classes {
                    bail!(
                        "{LABELS_FILE} names {} classes but the data in {} has {num_classes}",
                        classes.len(),
                        dir.display()
                    );
                }
                classes
            }
            None => class_names(&dir, num_classes),
        };

        let mut gen = Generator::new(train.seed);
        let net = match config.model {
            ModelKind::Lenet => {
                let mut net_config: LeNetConfig = model_config(config)?;
                net_config.num_classes = classes.len();
                Net::LeNet(Box::new(LeNet::new(&net_config, &mut gen)?))
            }
            _ => {
                let mut net_config: MlpConfig = model_config(config)?;
                let [_, rows, cols] = data.train.image_shape();
                // The input and output widths come from the data.
                if let Some(first) = net_config.widths.first_mut() {
                    *first = rows * cols;
                }
                if let Some(last) = net_config.widths.last_mut() {
                    *last = classes.len();
                }
                Net::Mlp(Mlp::new(&net_config, &mut gen)?)
            }
        };
        let (decay, no_decay) = param_groups_for_decay(net.module());
        let optimizer = optimizer(&train, decay, no_decay)?;
        Ok(Self {
            net,
            optimizer,
            train_set: data.train,
            test_set: data.test,
            classes,
            train,
            epoch_order: None,
        })
    }

    /// The training-set indices of `step` (0-based).
    fn batch_indices(&mut self, step: usize) -> Vec<usize> {
        let n = self.train_set.len();
        let per_epoch = n.div_ceil(self.train.batch_size);
        let (epoch, index) = (step / per_epoch, step % per_epoch);
        let stale = self.epoch_order.as_ref().is_none_or(|(e, _)| *e != epoch);
        if stale {
            let mut gen = Generator::new(step_seed(self.train.seed ^ EPOCH_SALT, epoch as u64));
            self.epoch_order = Some((epoch, gen.randperm(n)));
        }
        let (_, order) = self
            .epoch_order
            .as_ref()
            .expect("bug: the order was just set");
        let start = index * self.train.batch_size;
        order[start..(start + self.train.batch_size).min(n)].to_vec()
    }
}

/// Loads an MNIST-layout folder, saying how to get Fashion-MNIST when it is missing.
fn load_images(dir: &Path, padding: usize) -> Result<Mnist> {
    if !dir.is_dir() {
        bail!(
            "no image data at {}: install Fashion-MNIST with `apt-get install \
             dataset-fashion-mnist`, or pass --data DIR holding the four IDX files \
             (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, \
             t10k-labels-idx1-ubyte, optionally .gz)",
            dir.display()
        );
    }
    let data = Mnist::load(dir, &MnistConfig { padding })
        .map_err(data_error)
        .with_context(|| format!("cannot load images from {}", dir.display()))?;
    if data.train.is_empty() || data.test.is_empty() {
        bail!("{} holds no training or no test images", dir.display());
    }
    Ok(data)
}

/// Checks the labels and returns the number of classes: the training labels must use every
/// class from 0 to their largest (a gap means a stray label, such as a corrupt byte, that would
/// otherwise become extra classes), and no test label may exceed the largest training label.
///
/// # Errors
/// Naming the out-of-range label, the file and the example.
fn check_labels(dir: &Path, train: &[usize], test: &[usize]) -> Result<usize> {
    let Some(&largest) = train.iter().max() else {
        bail!("{} holds no training labels", dir.display());
    };
    let mut counts = vec![0usize; largest + 1];
    for &label in train {
        counts[label] += 1;
    }
    if let Some(missing) = counts.iter().position(|&c| c == 0) {
        let position = train.iter().position(|&l| l == largest).unwrap_or(0);
        bail!(
            "{}: training label {largest} (example {position}) is out of range: no example has \
             label {missing}, and labels must run 0..K-1 over K classes (0..9 for MNIST and \
             Fashion-MNIST)",
            dir.join("train-labels-idx1-ubyte").display()
        );
    }
    if let Some((position, &label)) = test.iter().enumerate().find(|(_, &l)| l > largest) {
        bail!(
            "{}: test label {label} (example {position}) is out of range: the training labels \
             run 0..{largest}",
            dir.join("t10k-labels-idx1-ubyte").display()
        );
    }
    Ok(largest + 1)
}

/// Fashion-MNIST's class names for a folder whose path says "fashion", else the labels.
fn class_names(dir: &Path, num_classes: usize) -> Vec<String> {
    let fashion = dir.to_string_lossy().to_lowercase().contains("fashion");
    (0..num_classes)
        .map(|i| match FASHION_CLASSES.get(i) {
            Some(name) if fashion => name.to_string(),
            _ => i.to_string(),
        })
        .collect()
}

impl Task for ClassifierTask {
    fn unit(&self) -> &'static str {
        "img"
    }

    fn model_config_json(&self) -> Value {
        self.net.config_json()
    }

    fn write_run_files(&self, run: &RunDir) -> Result<()> {
        let labels = Labels {
            classes: self.classes.clone(),
        };
        write_json_atomic(&run.file(LABELS_FILE), &labels)
    }

    fn num_parameters(&self) -> usize {
        self.net.module().num_parameters()
    }

    fn steps_per_epoch(&self) -> Option<usize> {
        Some(self.train_set.len().div_ceil(self.train.batch_size))
    }

    fn train_step(&mut self, step: usize, lr: f64) -> Result<StepOutput> {
        let indices = self.batch_indices(step);
        let (images, labels) = self.train_set.batch(&indices)?;
        self.optimizer.set_lr(lr);
        self.optimizer.zero_grad();
        let logits = self.net.forward(&Var::new(images))?;
        let loss = cross_entropy(&logits, &labels)?;
        loss.backward()?;
        clip_grad_norm(&self.net.module().parameters(), self.train.grad_clip)?;
        self.optimizer.step()?;
        Ok(StepOutput {
            loss: f64::from(loss.value().item()?),
            items: indices.len(),
        })
    }

    fn evaluate(&mut self) -> Result<EvalOutput> {
        let _guard = no_grad();
        let n = self.test_set.len();
        let k = self.classes.len();
        let mut confusion = vec![vec![0usize; k]; k];
        let mut loss_sum = 0.0;
        for start in (0..n).step_by(EVAL_BATCH) {
            let indices: Vec<usize> = (start..(start + EVAL_BATCH).min(n)).collect();
            let (images, labels) = self.test_set.batch(&indices)?;
            let logits = self.net.forward(&Var::new(images))?;
            let loss = cross_entropy(&logits, &labels)?.value().item()?;
            loss_sum += f64::from(loss) * indices.len() as f64;
            let predicted = argmax_rows(&logits.value());
            for (&truth, &guess) in labels.as_slice().iter().zip(&predicted) {
                if truth < k && guess < k {
                    confusion[truth][guess] += 1;
                }
            }
        }
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        Ok(EvalOutput {
            loss: loss_sum / n as f64,
            accuracy: Some(correct as f64 / n as f64),
            details: confusion_lines(&self.classes, &confusion),
        })
    }

    fn model_tensors(&self) -> Vec<(String, Tensor<f32>)> {
        let module = self.net.module();
        let mut named = module.named_parameters();
        named.extend(module.named_buffers());
        named.into_iter().map(|(n, v)| (n, v.value())).collect()
    }

    fn optim_state(&self) -> StateDict<f32> {
        self.optimizer.state_dict()
    }

    fn load_model(&mut self, path: &Path, file: TensorFile) -> Result<()> {
        let module = self.net.module();
        let mut named = module.named_parameters();
        named.extend(module.named_buffers());
        load_vars(path, &named, file.tensors)
    }

    fn load_optim(&mut self, state: &StateDict<f32>) -> Result<()> {
        Ok(self.optimizer.load_state_dict(state)?)
    }
}

/// The index of the largest entry of each row of `(n, k)` logits (the first on ties).
fn argmax_rows(logits: &Tensor<f32>) -> Vec<usize> {
    let k = logits.shape()[1];
    logits
        .contiguous_slice()
        .chunks(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
                    if x > best.1 {
                        (i, x)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

/// The confusion matrix as aligned text: a row per true class, a column per prediction.
fn confusion_lines(classes: &[String], confusion: &[Vec<usize>]) -> Vec<String> {
    let width = confusion
        .iter()
        .flatten()
        .map(|c| c.to_string().len())
        .max()
        .unwrap_or(1)
        .max(3);
    let name_width = classes.iter().map(|c| c.len()).max().unwrap_or(1);
    let mut lines = vec!["confusion matrix (rows: true class, columns: predicted):".to_string()];
    let header: String = (0..classes.len())
        .map(|j| format!(" {j:>width$}"))
        .collect();
    lines.push(format!("{:>name_width$}    {header}", ""));
    for (i, row) in confusion.iter().enumerate() {
        let cells: String = row.iter().map(|c| format!(" {c:>width$}")).collect();
        let recall = row[i] as f64 / row.iter().sum::<usize>().max(1) as f64;
        lines.push(format!(
            "{:>name_width$} {i:>2} {cells}   {:5.1}%",
            classes[i],
            100.0 * recall
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum_of_each_row() {
        let logits = Tensor::from_vec(vec![0.1f32, 0.9, 0.9, 2.0, -1.0, 0.0], &[2, 3]).unwrap();

        assert_eq!(argmax_rows(&logits), [1, 0]);
    }

    /// Regression: a label byte of 200 made 201 classes (and lost Fashion-MNIST's class
    /// names) instead of being reported.
    #[test]
    fn out_of_range_labels_are_errors_naming_the_label() {
        let dir = Path::new("data");
        let good: Vec<usize> = (0..30).map(|i| i % 10).collect();
        let mut stray = good.clone();
        stray[17] = 200;

        let train_err = check_labels(dir, &stray, &good).unwrap_err().to_string();
        let test_err = check_labels(dir, &good, &stray).unwrap_err().to_string();

        assert_eq!(check_labels(dir, &good, &good).unwrap(), 10);
        assert!(
            train_err.contains("training label 200 (example 17) is out of range"),
            "{train_err}"
        );
        assert!(train_err.contains("train-labels-idx1-ubyte"), "{train_err}");
        assert!(
            test_err.contains("test label 200 (example 17) is out of range"),
            "{test_err}"
        );
    }

    #[test]
    fn confusion_matrix_rows_give_recall() {
        let classes = vec!["a".to_string(), "b".to_string()];

        let lines = confusion_lines(&classes, &[vec![3, 1], vec![0, 2]]);

        assert_eq!(lines.len(), 4);
        assert!(lines[2].contains("75.0%"), "{}", lines[2]);
        assert!(lines[3].contains("100.0%"), "{}", lines[3]);
    }
}

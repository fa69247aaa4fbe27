//! `LeNet`: the LeNet-5 convolutional network for 32x32 images.

use serde::{Deserialize, Serialize};
use strata_autograd::Var;
use strata_nn_layers::{
    prefixed, Conv2d, Conv2dConfig, Forward, Linear, MaxPool2d, MaxPool2dConfig, Module,
};
use strata_tensor::{Element, Generator};

use crate::error::{ModelError, Result};

/// The configuration of a [`LeNet`]. The default is LeNet-5 on grey MNIST digits padded to
/// 32x32: one input channel, ten classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeNetConfig {
    /// Channels of the input images. Default 1.
    pub in_channels: usize,
    /// Number of output classes. Default 10.
    pub num_classes: usize,
}

impl Default for LeNetConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            num_classes: 10,
        }
    }
}

/// LeNet-5 (with ReLU and max pooling, as in PyTorch's tutorial network).
///
/// ```text
/// x (N, C, 32, 32)
/// conv1 5x5 C -> 6, relu, maxpool 2      (N, 6, 28, 28) -> (N, 6, 14, 14)
/// conv2 5x5 6 -> 16, relu, maxpool 2     (N, 16, 10, 10) -> (N, 16, 5, 5)
/// flatten                                (N, 400)
/// fc1 400 -> 120, relu; fc2 120 -> 84, relu; fc3 84 -> classes    (N, classes) logits
/// ```
///
/// Parameters are named as the PyTorch module with attributes `conv1`, `conv2`, `fc1`, `fc2`,
/// `fc3` (`conv1.weight`, `conv1.bias`, ..., `fc3.bias`), initialised as PyTorch's layers.
///
/// ```
/// use strata_autograd::Var;
/// use strata_models::{LeNet, LeNetConfig};
/// use strata_tensor::{Generator, Tensor};
///
/// let net = LeNet::<f32>::new(&LeNetConfig::default(), &mut Generator::new(0))?;
/// let logits = net.forward(&Var::new(Tensor::zeros(&[2, 1, 32, 32])))?;
/// assert_eq!(logits.shape(), &[2, 10]);
/// # Ok::<(), strata_models::ModelError>(())
/// ```
#[derive(Debug)]
pub struct LeNet<T: Element> {
    config: LeNetConfig,
    conv1: Conv2d<T>,
    conv2: Conv2d<T>,
    pool: MaxPool2d,
    fc1: Linear<T>,
    fc2: Linear<T>,
    fc3: Linear<T>,
}

impl<T: Element> LeNet<T> {
    /// Builds the network, drawing weights from `gen`.
    ///
    /// # Errors
    /// [`ModelError::Config`] if a channel or class count is zero.
    pub fn new(config: &LeNetConfig, gen: &mut Generator) -> Result<Self> {
        if config.in_channels == 0 || config.num_classes == 0 {
            return Err(ModelError::Config {
                model: "lenet",
                reason: format!("channel and class counts must be positive, got {config:?}"),
            });
        }
        let conv = Conv2dConfig::default();
        Ok(Self {
            config: config.clone(),
            conv1: Conv2d::new(config.in_channels, 6, [5, 5], conv, gen)?,
            conv2: Conv2d::new(6, 16, [5, 5], conv, gen)?,
            pool: MaxPool2d::new([2, 2], MaxPool2dConfig::default())?,
            fc1: Linear::new(16 * 5 * 5, 120, gen),
            fc2: Linear::new(120, 84, gen),
            fc3: Linear::new(84, config.num_classes, gen),
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &LeNetConfig {
        &self.config
    }

    /// Class logits for a batch of images.
    ///
    /// # Shapes
    /// - `xs`: `(N, in_channels, 32, 32)`; output: `(N, num_classes)`
    ///
    /// # Errors
    /// [`ModelError::Input`] for another input shape.
    pub fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let shape = xs.shape();
        if shape.len() != 4 || shape[1] != self.config.in_channels || shape[2..] != [32, 32] {
            return Err(ModelError::Input {
                model: "lenet",
                reason: format!(
                    "expected (N, {}, 32, 32) images, got {shape:?}",
                    self.config.in_channels
                ),
            });
        }
        let pool = |x: &Var<T>| Forward::<T>::forward(&self.pool, x);
        let hs = pool(&self.conv1.forward(xs)?.relu())?;
        let hs = pool(&self.conv2.forward(&hs)?.relu())?;
        let hs = hs.flatten(1, -1)?;
        let hs = self.fc1.forward(&hs)?.relu();
        let hs = self.fc2.forward(&hs)?.relu();
        Ok(self.fc3.forward(&hs)?)
    }
}

impl<T: Element> Module<T> for LeNet<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        self.conv1.visit_parameters(&prefixed(prefix, "conv1"), f);
        self.conv2.visit_parameters(&prefixed(prefix, "conv2"), f);
        self.fc1.visit_parameters(&prefixed(prefix, "fc1"), f);
        self.fc2.visit_parameters(&prefixed(prefix, "fc2"), f);
        self.fc3.visit_parameters(&prefixed(prefix, "fc3"), f);
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::{IndexTensor, Tensor};

    use super::*;
    use strata_optim::Optimizer;

    use crate::testing::adam;
    use strata_nn_layers::cross_entropy;

    #[test]
    fn names_and_sizes_follow_pytorch() {
        let net = LeNet::<f32>::new(&LeNetConfig::default(), &mut Generator::new(0)).unwrap();

        let named: Vec<(String, Vec<usize>)> = net
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec()))
            .collect();

        let want: Vec<(&str, Vec<usize>)> = vec![
            ("conv1.weight", vec![6, 1, 5, 5]),
            ("conv1.bias", vec![6]),
            ("conv2.weight", vec![16, 6, 5, 5]),
            ("conv2.bias", vec![16]),
            ("fc1.weight", vec![120, 400]),
            ("fc1.bias", vec![120]),
            ("fc2.weight", vec![84, 120]),
            ("fc2.bias", vec![84]),
            ("fc3.weight", vec![10, 84]),
            ("fc3.bias", vec![10]),
        ];
        let got: Vec<(&str, Vec<usize>)> =
            named.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
        assert_eq!(got, want);
        assert_eq!(net.num_parameters(), 61_706);
    }

    #[test]
    fn wrong_image_size_is_an_error() {
        let net = LeNet::<f32>::new(&LeNetConfig::default(), &mut Generator::new(0)).unwrap();

        let result = net.forward(&Var::new(Tensor::zeros(&[1, 1, 28, 28])));

        assert!(matches!(
            result,
            Err(ModelError::Input { model: "lenet", .. })
        ));
    }

    #[test]
    fn memorizes_a_tiny_batch() {
        let mut gen = Generator::new(2);
        let net = LeNet::<f32>::new(&LeNetConfig::default(), &mut gen).unwrap();
        let xs = Var::new(gen.randn(&[4, 1, 32, 32]));
        let ys = IndexTensor::from_slice(&[3, 1, 4, 1]);
        let mut adam = adam(net.parameters(), 5e-3);

        let mut loss = f32::INFINITY;
        for _ in 0..30 {
            adam.zero_grad();
            let l = cross_entropy(&net.forward(&xs).unwrap(), &ys).unwrap();
            l.backward().unwrap();
            adam.step().unwrap();
            loss = l.value().item().unwrap();
        }

        assert!(loss < 0.05, "loss after 30 steps {loss}");
    }
}

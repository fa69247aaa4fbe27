//! `Mlp`: a multi-layer perceptron, a stack of Linear layers with an activation between them.

use serde::{Deserialize, Serialize};
use strata_autograd::Var;
use strata_nn_layers::{prefixed, Forward, Linear, LinearConfig, Module};
use strata_tensor::{Element, Generator};

use crate::error::{ModelError, Result};

/// The nonlinearity between the layers of an [`Mlp`] (and of other models that offer a
/// choice); serialized in snake case (`"relu"`, `"gelu"`,
/// `{"leaky_relu": {"negative_slope": 0.2}}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(x, 0)`, PyTorch's `nn.ReLU`. The default.
    #[default]
    Relu,
    /// `tanh(x)`, `nn.Tanh`.
    Tanh,
    /// `1 / (1 + exp(-x))`, `nn.Sigmoid`.
    Sigmoid,
    /// `x Phi(x)` in the exact erf form, `nn.GELU()`.
    Gelu,
    /// `x sigmoid(x)`, `nn.SiLU`.
    Silu,
    /// `x` for `x > 0`, `negative_slope * x` otherwise, `nn.LeakyReLU(negative_slope)`
    /// (PyTorch's default slope is 0.01; GANs commonly use 0.2).
    LeakyRelu {
        /// The slope for negative inputs.
        negative_slope: f64,
    },
}

impl Activation {
    /// Applies the nonlinearity elementwise.
    pub fn apply<T: Element>(self, xs: &Var<T>) -> Var<T> {
        match self {
            Activation::Relu => xs.relu(),
            Activation::Tanh => xs.tanh(),
            Activation::Sigmoid => xs.sigmoid(),
            Activation::Gelu => xs.gelu(),
            Activation::Silu => xs.silu(),
            Activation::LeakyRelu { negative_slope } => xs.leaky_relu(T::from_f64(negative_slope)),
        }
    }
}

/// The configuration of an [`Mlp`].
///
/// The default is a small MNIST classifier: 784 inputs, one hidden layer of 128, 10 outputs,
/// ReLU, with biases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MlpConfig {
    /// Layer widths from input to output: `[in, hidden..., out]`, at least two entries, all
    /// positive. Default `[784, 128, 10]`.
    pub widths: Vec<usize>,
    /// The nonlinearity after every layer but the last. Default ReLU.
    pub activation: Activation,
    /// Whether each Linear layer has a bias. Default true.
    pub bias: bool,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            widths: vec![784, 128, 10],
            activation: Activation::Relu,
            bias: true,
        }
    }
}

impl MlpConfig {
    /// Checks the widths.
    ///
    /// # Errors
    /// [`ModelError::Config`] for fewer than two widths or a zero width.
    pub fn validate(&self) -> Result<()> {
        if self.widths.len() < 2 || self.widths.contains(&0) {
            return Err(ModelError::Config {
                model: "mlp",
                reason: format!(
                    "widths must list at least input and output, all positive, got {:?}",
                    self.widths
                ),
            });
        }
        Ok(())
    }
}

/// A multi-layer perceptron.
///
/// ```text
/// x (N, widths[0])
/// h_0 = x;  h_{i+1} = act(h_i W_i^T + b_i) for i < L - 1;  y = h_{L-1} W_{L-1}^T + b_{L-1}
/// y (N, widths[L])            L = widths.len() - 1 layers
/// ```
///
/// Parameters are named as in a PyTorch module whose `layers` attribute is an
/// `nn.Sequential` of `Linear` and activation modules interleaved: `layers.0.weight`,
/// `layers.0.bias`, `layers.2.weight`, ... Weights start as PyTorch's `nn.Linear` does.
///
/// # Shapes
/// - input: `(*, widths[0])`; output: `(*, widths[last])`
///
/// ```
/// use strata_autograd::Var;
/// use strata_models::{Activation, Mlp, MlpConfig};
/// use strata_tensor::{Generator, Tensor};
///
/// let config = MlpConfig { widths: vec![4, 8, 3], activation: Activation::Gelu, bias: true };
/// let mlp = Mlp::<f32>::new(&config, &mut Generator::new(0))?;
/// let ys = mlp.forward(&Var::new(Tensor::ones(&[5, 4])))?;
/// assert_eq!(ys.shape(), &[5, 3]);
/// # Ok::<(), strata_models::ModelError>(())
/// ```
#[derive(Debug)]
pub struct Mlp<T: Element> {
    config: MlpConfig,
    layers: Vec<Linear<T>>,
}

impl<T: Element> Mlp<T> {
    /// Builds the layers of `config`, drawing weights from `gen`.
    ///
    /// # Errors
    /// [`ModelError::Config`] if the config is invalid.
    pub fn new(config: &MlpConfig, gen: &mut Generator) -> Result<Self> {
        config.validate()?;
        let linear = LinearConfig { bias: config.bias };
        let layers = config
            .widths
            .windows(2)
            .map(|w| Linear::with_config(w[0], w[1], linear, gen))
            .collect();
        Ok(Self {
            config: config.clone(),
            layers,
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Runs the layers on `xs`.
    ///
    /// # Errors
    /// [`ModelError::Nn`] if the last dim of `xs` is not `widths[0]`.
    pub fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let mut hs = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            hs = layer.forward(&hs)?;
            if i + 1 < self.layers.len() {
                hs = self.config.activation.apply(&hs);
            }
        }
        Ok(hs)
    }
}

impl<T: Element> Module<T> for Mlp<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        let layers = prefixed(prefix, "layers");
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_parameters(&prefixed(&layers, &(2 * i).to_string()), f);
        }
    }
}

impl<T: Element> Forward<T> for Mlp<T> {
    fn forward(&self, xs: &Var<T>) -> strata_nn_layers::Result<Var<T>> {
        Mlp::forward(self, xs).map_err(|err| match err {
            ModelError::Nn(err) => err,
            other => strata_nn_layers::NnError::Input {
                layer: "Mlp",
                reason: other.to_string(),
            },
        })
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
    fn names_follow_a_pytorch_sequential() {
        let config = MlpConfig {
            widths: vec![3, 5, 4, 2],
            ..MlpConfig::default()
        };
        let mlp = Mlp::<f32>::new(&config, &mut Generator::new(0)).unwrap();

        let names: Vec<String> = mlp.named_parameters().into_iter().map(|(n, _)| n).collect();

        assert_eq!(
            names,
            [
                "layers.0.weight",
                "layers.0.bias",
                "layers.2.weight",
                "layers.2.bias",
                "layers.4.weight",
                "layers.4.bias"
            ]
        );
        assert_eq!(mlp.num_parameters(), 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2);
    }

    #[test]
    fn config_round_trips_through_json() {
        let config = MlpConfig {
            widths: vec![2, 8, 1],
            activation: Activation::Gelu,
            bias: false,
        };

        let text = serde_json::to_string(&config).unwrap();

        assert!(text.contains("\"gelu\""), "{text}");
        assert_eq!(serde_json::from_str::<MlpConfig>(&text).unwrap(), config);
    }

    #[test]
    fn invalid_widths_are_rejected() {
        for widths in [vec![4], vec![4, 0, 2]] {
            let config = MlpConfig {
                widths,
                ..MlpConfig::default()
            };
            let err = Mlp::<f32>::new(&config, &mut Generator::new(0)).unwrap_err();
            assert!(matches!(err, ModelError::Config { model: "mlp", .. }));
        }
    }

    #[test]
    fn wrong_input_width_is_an_error() {
        let mlp = Mlp::<f32>::new(&MlpConfig::default(), &mut Generator::new(0)).unwrap();

        let result = mlp.forward(&Var::new(Tensor::zeros(&[2, 10])));

        assert!(matches!(result, Err(ModelError::Nn(_))));
    }

    #[test]
    fn learns_xor() {
        let config = MlpConfig {
            widths: vec![2, 16, 2],
            activation: Activation::Tanh,
            bias: true,
        };
        let mlp = Mlp::<f32>::new(&config, &mut Generator::new(1)).unwrap();
        let xs = Var::new(Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2]).unwrap());
        let ys = IndexTensor::from_slice(&[0, 1, 1, 0]);
        let mut adam = adam(mlp.parameters(), 0.05);

        let mut loss = f32::INFINITY;
        for _ in 0..80 {
            adam.zero_grad();
            let l = cross_entropy(&mlp.forward(&xs).unwrap(), &ys).unwrap();
            l.backward().unwrap();
            adam.step().unwrap();
            loss = l.value().item().unwrap();
        }

        assert!(loss < 0.05, "loss after 80 steps {loss}");
    }
}

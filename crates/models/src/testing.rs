//! Test helpers: a minimal Adam, so that training tests of each model stay self-contained.

use strata_autograd::Var;
use strata_tensor::Element;

/// Adam with PyTorch's defaults except the learning rate (betas 0.9, 0.999, eps 1e-8).
pub(crate) struct Adam<T: Element> {
    params: Vec<Var<T>>,
    lr: f64,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
    t: i32,
}

impl<T: Element> Adam<T> {
    pub(crate) fn new(params: Vec<Var<T>>, lr: f64) -> Self {
        let m = params.iter().map(|p| vec![0.0; p.numel()]).collect();
        let v = params.iter().map(|p| vec![0.0; p.numel()]).collect();
        Self {
            params,
            lr,
            m,
            v,
            t: 0,
        }
    }

    pub(crate) fn zero_grad(&self) {
        self.params.iter().for_each(Var::zero_grad);
    }

    pub(crate) fn step(&mut self) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for ((p, m), v) in self.params.iter().zip(&mut self.m).zip(&mut self.v) {
            let Some(grad) = p.grad() else { continue };
            let grad = grad.to_vec();
            let lr = self.lr;
            p.update(|data| {
                for i in 0..data.len() {
                    let g = grad[i].as_f64();
                    m[i] = b1 * m[i] + (1.0 - b1) * g;
                    v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                    let step = lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                    data[i] = T::from_f64(data[i].as_f64() - step);
                }
            })
            .expect("bug: parameters are leaves");
        }
    }
}

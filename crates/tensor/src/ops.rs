//! Operator sugar: `&a + &b`, `&a * 2.0`, `-&a`.
//!
//! Each operator calls the fallible method of the same name and panics with that method's
//! error message when the shapes do not broadcast, as ndarray's operators do. Use the methods
//! ([`Tensor::add`] and friends) to get a `Result` instead.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::element::Element;
use crate::tensor::Tensor;

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $scalar:expr) => {
        impl<T: Element> $trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;

            /// # Panics
            /// If the shapes do not broadcast; the message is the method's error.
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                match Tensor::$method(self, rhs) {
                    Ok(t) => t,
                    Err(e) => panic!("{e}"),
                }
            }
        }

        impl<T: Element> $trait<T> for &Tensor<T> {
            type Output = Tensor<T>;

            fn $method(self, rhs: T) -> Tensor<T> {
                let f: fn(T, T) -> T = $scalar;
                self.map(|x| f(x, rhs))
            }
        }
    };
}

binary_operator!(Add, add, |a, b| a + b);
binary_operator!(Sub, sub, |a, b| a - b);
binary_operator!(Mul, mul, |a, b| a * b);
binary_operator!(Div, div, |a, b| a / b);

impl<T: Element> Neg for &Tensor<T> {
    type Output = Tensor<T>;

    fn neg(self) -> Tensor<T> {
        Tensor::neg(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_match_methods() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let b = Tensor::from_vec(vec![3.0f32, 5.0], &[2]).unwrap();

        assert_eq!((&a + &b).to_vec(), vec![4.0, 7.0]);
        assert_eq!((&a - &b).to_vec(), vec![-2.0, -3.0]);
        assert_eq!((&a * 2.0).to_vec(), vec![2.0, 4.0]);
        assert_eq!((-&a).to_vec(), vec![-1.0, -2.0]);
    }

    #[test]
    #[should_panic(expected = "mul: cannot broadcast [2] with [3]")]
    fn operator_panics_with_the_method_error() {
        let a = Tensor::<f32>::zeros(&[2]);
        let b = Tensor::<f32>::zeros(&[3]);
        let _ = &a * &b;
    }
}

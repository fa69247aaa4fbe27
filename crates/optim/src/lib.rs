//! Optimizers, learning-rate schedules and gradient clipping over `strata-autograd`.

//! Neural-network layers, losses and initialisation over `strata-autograd`.

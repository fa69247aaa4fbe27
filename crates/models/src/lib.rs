//! Complete, configurable models built from `strata-nn-layers` and `strata-attention`.

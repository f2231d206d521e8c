//! Helpers for tests: the crate's unit tests, and the workspace's
//! integration tests through the `test-util` feature.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Tensor};

/// The largest absolute difference of two tensors of one shape, in f64.
///
/// # Panics
///
/// If the shapes differ; it is meant for assertions.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

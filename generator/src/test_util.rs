//! Helpers for tests: the crate's unit tests, and the workspace's
//! integration tests through the `test-util` feature.
#![allow(clippy::unwrap_used)]

pub mod reference;

use candle_core::{DType, Tensor};

use crate::edge::{LoraConfig, Target};
use crate::model::GeneratorConfig;

/// A generator small enough for unit tests: 12-wide cloud features, 3 edge
/// layers, 4 experts of rank 2 over the FFN shapes of [`tiny_dims`].
pub fn tiny_config() -> GeneratorConfig {
    GeneratorConfig::default()
        .with_cloud_dim(12)
        .with_edge_layers(3)
        .with_meta_dim(8)
        .with_meta_heads(2)
        .with_router_hidden(6)
        .with_experts(4)
        .with_top_k(2)
        .with_lora(LoraConfig::default().with_rank(2).with_alpha(2.0))
}

/// FFN shapes (in, out) of the tiny edge model: 5 wide, 7 inside.
pub fn tiny_dims(t: Target) -> (usize, usize) {
    match t {
        Target::Down => (7, 5),
        _ => (5, 7),
    }
}

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

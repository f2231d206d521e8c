//! Linear maps with frozen weights.
//!
//! candle's matmul backward always computes the gradient of both operands,
//! even when one is a constant: for a frozen projection that is a wasted
//! `(in, out)` product per step, and for the tied 262k-row output matrix a
//! 670 MB gradient thrown away at every step. `Frozen` runs its product as
//! a custom op whose backward yields the input's gradient only.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Shape, Storage, Tensor};

/// `x W^T (+ bias)` with `W` (out, in) frozen: no gradient is ever computed
/// for it.
#[derive(Debug, Clone)]
pub struct Frozen {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Module for Frozen {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.contiguous()?.apply_op1(FrozenProduct {
            weight: self.weight.clone(),
        })?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// The op behind `Frozen`: `(.., in) -> (.., out)`.
struct FrozenProduct {
    weight: Tensor,
}

impl CustomOp1 for FrozenProduct {
    fn name(&self) -> &'static str {
        "frozen-product"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = layout.dims();
        let (n_out, n_in) = self.weight.dims2()?;
        if dims.last() != Some(&n_in) || !layout.is_contiguous() {
            candle_core::bail!(
                "frozen product: input {dims:?} (contiguous: {}) does not end in {n_in}",
                layout.is_contiguous()
            );
        }
        let rows = layout.shape().elem_count() / n_in;
        let (storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*storage else {
            candle_core::bail!("frozen product: the weight is not on the CPU");
        };
        // W^T as a strided view: (in, out) with strides (1, in).
        let w_t = w_layout.transpose(0, 1)?;
        let x_layout = Layout::contiguous_with_offset((rows, n_in), layout.start_offset());
        let y = x.matmul(w, (1, rows, n_out, n_in), &x_layout, &w_t)?;
        let mut out = dims.to_vec();
        if let Some(last) = out.last_mut() {
            *last = n_out;
        }
        Ok((y, Shape::from(out)))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad_y: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // As one 2-D product over all rows: (rows, out) (out, in).
        let n_out = self.weight.dim(0)?;
        let rows = grad_y.elem_count() / n_out;
        let grad_x = grad_y
            .contiguous()?
            .reshape((rows, n_out))?
            .matmul(&self.weight)?;
        Ok(Some(grad_x.reshape(x.shape())?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_util::max_diff;
    use candle_core::{Device, Var};

    #[test]
    fn matches_a_plain_product_forward_and_backward() {
        let dev = Device::Cpu;
        let weight = Tensor::randn(0f32, 1.0, (5, 7), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 5, &dev).unwrap();
        let frozen = Frozen {
            weight: weight.clone(),
            bias: Some(bias.clone()),
        };
        let x = Var::randn(0f32, 1.0, (2, 4, 7), &dev).unwrap();
        // A strided, offset view of the input, as attention outputs are.
        let view = x.as_tensor().narrow(1, 1, 3).unwrap();

        let ours = frozen.forward(&view).unwrap();
        let plain = view
            .broadcast_matmul(&weight.t().unwrap())
            .unwrap()
            .broadcast_add(&bias)
            .unwrap();
        assert_eq!(ours.dims(), &[2, 3, 5]);
        assert!(max_diff(&ours, &plain) < 1e-5);

        let g_ours = ours.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g_plain = plain.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_diff(g_ours.get(&x).unwrap(), g_plain.get(&x).unwrap()) < 1e-4);
        // Nothing of the weight's size is among the gradients.
        let weight_sized = |g: &candle_core::backprop::GradStore| {
            g.get_ids()
                .filter(|id| {
                    g.get_id(**id)
                        .is_some_and(|t| t.dims().ends_with(&[7, 5]) || t.dims().ends_with(&[5, 7]))
                })
                .count()
        };
        assert_eq!(weight_sized(&g_ours), 0);
        assert!(
            weight_sized(&g_plain) > 0,
            "the plain product computes a weight gradient"
        );
    }

    #[test]
    fn rejects_an_input_of_the_wrong_width() {
        let dev = Device::Cpu;
        let frozen = Frozen {
            weight: Tensor::zeros((5, 7), candle_core::DType::F32, &dev).unwrap(),
            bias: None,
        };
        assert!(frozen
            .forward(&Tensor::zeros((2, 6), candle_core::DType::F32, &dev).unwrap())
            .is_err());
    }
}

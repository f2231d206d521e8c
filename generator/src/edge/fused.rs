//! Fused CPU kernels, with backward passes, for the elementwise parts of
//! the edge forward: RMS norm, tanh-GELU, rope and masked softmax.
//!
//! Composed from candle's generic ops, each of these is 5-10 tensor ops
//! (and as many allocations) forward and more backward, mostly single
//! threaded: they took over half of a training step. Here each is one
//! pass over rows in parallel. Frozen operands (norm weights, rope tables,
//! masks) are held by the op, so no gradient is computed for them.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

type Res<T> = candle_core::Result<T>;

/// The f32 elements of a contiguous tensor.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Res<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the input is not contiguous"),
    }
}

/// Runs `f` on the CPU f32 elements of a contiguous constant.
fn with_constant<T>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Res<T>) -> Res<T> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("{op}: not on the CPU");
    };
    f(slice(cpu, layout, op)?)
}

fn output(values: Vec<f32>, layout: &Layout) -> (CpuStorage, Shape) {
    (CpuStorage::F32(values), layout.shape().clone())
}

/// The loop of every one-input kernel: `f(row index, output row, input
/// row)` over rows of `n` values, in parallel.
fn par_rows(x: &[f32], n: usize, f: impl Fn(usize, &mut [f32], &[f32]) + Sync) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .enumerate()
        .for_each(|(row, (y, x))| f(row, y, x));
    y
}

/// The loop of every backward kernel: `f(output row, a row, b row)` over
/// aligned rows of `n` values of two inputs of one shape, in parallel.
fn par_rows2(
    a: &[f32],
    b: &[f32],
    n: usize,
    f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) -> Res<Vec<f32>> {
    if a.len() != b.len() {
        candle_core::bail!(
            "fused backward: inputs of {} and {} values",
            a.len(),
            b.len()
        );
    }
    let mut y = vec![0f32; a.len()];
    y.par_chunks_mut(n)
        .zip(a.par_chunks(n).zip(b.par_chunks(n)))
        .for_each(|(y, (a, b))| f(y, a, b));
    Ok(y)
}

/// `x / rms(x) * w` over the last dimension.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Res<Tensor> {
    x.contiguous()?.apply_op1(RmsNorm {
        weight: weight.clone(),
        eps,
    })
}

struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    1.0 / (mean_sq + eps).sqrt()
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let y = with_constant(&self.weight, self.name(), |w| {
            let n = w.len();
            if x.len() % n != 0 {
                candle_core::bail!("rms norm: {:?} does not end in {n}", l.dims());
            }
            Ok(par_rows(x, n, |_, y, x| {
                let r = inv_rms(x, self.eps);
                for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * r * w;
                }
            }))
        })?;
        Ok(output(y, l))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let op = RmsNormBackward {
            weight: self.weight.clone(),
            eps: self.eps,
        };
        Ok(Some(
            x.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &op)?,
        ))
    }
}

/// With `u = g w` and `r = 1 / rms(x)`: `dx = r u - x r^3 mean(u x)`.
struct RmsNormBackward {
    weight: Tensor,
    eps: f32,
}

impl CustomOp2 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "fused-rms-norm-backward"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (x, g) = (slice(sx, lx, self.name())?, slice(sg, lg, self.name())?);
        let dx = with_constant(&self.weight, self.name(), |w| {
            let n = w.len();
            par_rows2(x, g, n, |dx, x, g| {
                let r = inv_rms(x, self.eps);
                let dot = x
                    .iter()
                    .zip(g)
                    .zip(w)
                    .map(|((x, g), w)| x * g * w)
                    .sum::<f32>()
                    / n as f32;
                let k = r * r * r * dot;
                for (((dx, x), g), w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                    *dx = r * g * w - x * k;
                }
            })
        })?;
        Ok(output(dx, lx))
    }
}

/// Elementwise work is split into chunks of this many values.
const CHUNK: usize = 4096;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// GELU, tanh approximation (llama.cpp's `ggml_gelu`).
pub fn gelu_tanh(x: &Tensor) -> Res<Tensor> {
    x.contiguous()?.apply_op1(GeluTanh)
}

struct GeluTanh;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "fused-gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let y = par_rows(x, CHUNK, |_, y, x| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_C * x * x)).tanh());
            }
        });
        Ok(output(y, l))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        Ok(Some(x.contiguous()?.apply_op2_no_bwd(
            &grad.contiguous()?,
            &GeluTanhBackward,
        )?))
    }
}

struct GeluTanhBackward;

impl CustomOp2 for GeluTanhBackward {
    fn name(&self) -> &'static str {
        "fused-gelu-tanh-backward"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (x, g) = (slice(sx, lx, self.name())?, slice(sg, lg, self.name())?);
        let dx = par_rows2(x, g, CHUNK, |dx, x, g| {
            for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
                let t = (SQRT_2_OVER_PI * x * (1.0 + GELU_C * x * x)).tanh();
                let dt = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x) * (1.0 - t * t);
                *dx = g * (0.5 * (1.0 + t) + 0.5 * x * dt);
            }
        })?;
        Ok(output(dx, lx))
    }
}

/// Rotary embedding of `x` (batch, heads, seq, head_dim) with tables
/// `cos`, `sin` (seq, head_dim / 2): NEOX pairs `(i, i + d/2)` or
/// interleaved pairs `(2i, 2i + 1)`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, neox: bool) -> Res<Tensor> {
    x.contiguous()?.apply_op1(Rope {
        cos: cos.clone(),
        sin: sin.clone(),
        neox,
        inverse: false,
    })
}

struct Rope {
    cos: Tensor,
    sin: Tensor,
    neox: bool,
    /// Rotates backwards (the gradient of a rotation is the inverse rotation).
    inverse: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let &[_, _, seq, d] = l.dims() else {
            candle_core::bail!(
                "rope: expected (batch, heads, seq, head_dim), got {:?}",
                l.dims()
            );
        };
        let half = d / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let y = with_constant(&self.cos, self.name(), |cos| {
            with_constant(&self.sin, self.name(), |sin| {
                if cos.len() < seq * half || sin.len() < seq * half {
                    candle_core::bail!("rope: tables shorter than {seq} x {half}");
                }
                Ok(par_rows(x, d, |row, y, x| {
                    let t = row % seq;
                    let (c, s) = (
                        &cos[t * half..(t + 1) * half],
                        &sin[t * half..(t + 1) * half],
                    );
                    for i in 0..half {
                        let (a, b) = if self.neox {
                            (i, i + half)
                        } else {
                            (2 * i, 2 * i + 1)
                        };
                        let sn = sign * s[i];
                        y[a] = x[a] * c[i] - x[b] * sn;
                        y[b] = x[a] * sn + x[b] * c[i];
                    }
                }))
            })
        })?;
        Ok(output(y, l))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let op = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            neox: self.neox,
            inverse: !self.inverse,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// `softmax(scores + mask)` over the last dimension, for scores (batch,
/// heads, seq, seq) and an additive mask (batch, 1, seq, seq).
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> Res<Tensor> {
    scores.contiguous()?.apply_op1(MaskedSoftmax {
        mask: mask.contiguous()?,
    })
}

struct MaskedSoftmax {
    mask: Tensor,
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "fused-masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let &[batch, heads, seq, keys] = l.dims() else {
            candle_core::bail!(
                "masked softmax: expected (batch, heads, seq, seq), got {:?}",
                l.dims()
            );
        };
        let y = with_constant(&self.mask, self.name(), |mask| {
            if mask.len() != batch * seq * keys {
                candle_core::bail!(
                    "masked softmax: the mask has {} values for {batch} x {seq} x {keys}",
                    mask.len()
                );
            }
            Ok(par_rows(x, keys, |row, y, x| {
                let (b, t) = (row / (heads * seq), row % seq);
                let m = &mask[(b * seq + t) * keys..(b * seq + t + 1) * keys];
                let max = x
                    .iter()
                    .zip(m)
                    .map(|(x, m)| x + m)
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for ((y, x), m) in y.iter_mut().zip(x).zip(m) {
                    *y = (x + m - max).exp();
                    sum += *y;
                }
                y.iter_mut().for_each(|y| *y /= sum);
            }))
        })?;
        Ok(output(y, l))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        Ok(Some(
            y.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

/// `dx = y (g - sum(g y))` per row.
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "fused-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        sy: &CpuStorage,
        ly: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (y, g) = (slice(sy, ly, self.name())?, slice(sg, lg, self.name())?);
        let n = ly.dims().last().copied().unwrap_or(1);
        let dx = par_rows2(y, g, n, |dx, y, g| {
            let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
            for ((dx, y), g) in dx.iter_mut().zip(y).zip(g) {
                *dx = y * (g - dot);
            }
        })?;
        Ok(output(dx, ly))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Var, D};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Forward values and the input's gradient (of a random projection of
    /// the output, so every output element matters) agree with `reference`.
    fn check(
        shape: &[usize],
        ours: impl Fn(&Tensor) -> Tensor,
        reference: impl Fn(&Tensor) -> Tensor,
        tol: f32,
    ) {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, shape, &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let (a, b) = (ours(x.as_tensor()), reference(x.as_tensor()));
        assert!(
            max_diff(&a, &b) < tol,
            "forward differs by {}",
            max_diff(&a, &b)
        );
        let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let (ga, gb) = (ga.get(&x).unwrap(), gb.get(&x).unwrap());
        assert!(
            max_diff(ga, gb) < tol,
            "gradient differs by {}",
            max_diff(ga, gb)
        );
    }

    #[test]
    fn rms_norm_matches_the_composed_one() {
        let w = Tensor::randn(0f32, 1.0, 16, &Device::Cpu).unwrap();
        check(
            &[2, 3, 16],
            |x| rms_norm(x, &w, 1e-6).unwrap(),
            |x| candle_nn::ops::rms_norm_slow(x, &w, 1e-6).unwrap(),
            1e-4,
        );
    }

    #[test]
    fn gelu_matches_candles_gelu() {
        check(
            &[3, 1000],
            |x| gelu_tanh(x).unwrap(),
            |x| x.gelu().unwrap(),
            1e-5,
        );
    }

    #[test]
    fn rope_matches_the_composed_ones_both_layouts() {
        let dev = Device::Cpu;
        let cos = Tensor::rand(-1f32, 1.0, (5, 4), &dev).unwrap();
        let sin = Tensor::rand(-1f32, 1.0, (5, 4), &dev).unwrap();
        let neox = |x: &Tensor| candle_nn::rotary_emb::rope_slow(x, &cos, &sin).unwrap();
        let interleaved = |x: &Tensor| candle_nn::rotary_emb::rope_i_slow(x, &cos, &sin).unwrap();
        check(
            &[2, 3, 5, 8],
            |x| rope(x, &cos, &sin, true).unwrap(),
            neox,
            1e-5,
        );
        check(
            &[2, 3, 5, 8],
            |x| rope(x, &cos, &sin, false).unwrap(),
            interleaved,
            1e-5,
        );
    }

    #[test]
    fn masked_softmax_matches_add_then_softmax() {
        let dev = Device::Cpu;
        let mut m = vec![0f32; 2 * 4 * 4];
        for (i, v) in m.iter_mut().enumerate() {
            let (q, k) = ((i / 4) % 4, i % 4);
            if k > q {
                *v = f32::NEG_INFINITY;
            }
        }
        let mask = Tensor::from_vec(m, (2, 1, 4, 4), &dev).unwrap();
        let reference = |x: &Tensor| {
            candle_nn::ops::softmax(&x.broadcast_add(&mask).unwrap(), D::Minus1).unwrap()
        };
        check(
            &[2, 3, 4, 4],
            |x| masked_softmax(x, &mask).unwrap(),
            reference,
            1e-5,
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 5), candle_core::DType::F32, &dev).unwrap();
        assert!(rms_norm(
            &x,
            &Tensor::ones(4, candle_core::DType::F32, &dev).unwrap(),
            1e-6
        )
        .is_err());
        assert!(masked_softmax(&x, &x).is_err());
        assert!(rope(&x, &x, &x, true).is_err());
    }
}

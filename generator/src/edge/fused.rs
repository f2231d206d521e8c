//! Fused CPU kernels, with backward passes, for the elementwise parts of
//! the edge forward: RMS norm, tanh-GELU, rope, masked softmax, dropout,
//! and the cross-entropy loss.
//!
//! Composed from candle's generic ops, each of these is 5-10 tensor ops
//! (and as many allocations) forward and more backward, mostly single
//! threaded: they took over half of a training step. Here each is one
//! pass over rows in parallel. Frozen operands (norm weights, rope tables,
//! masks) are held by the op, so no gradient is computed for them.
//!
//! Every kernel runs in f32 (training) and f64 (the finite-difference
//! gradient checks, which need the precision).

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Storage, Tensor, WithDType,
};
use rayon::prelude::*;

type Res<T> = candle_core::Result<T>;

/// The element types the kernels run in.
trait Float: WithDType + num_traits::Float + std::iter::Sum {}
impl Float for f32 {}
impl Float for f64 {}

/// Calls `$run::<f32>` or `$run::<f64>` by the storage's dtype.
macro_rules! by_dtype {
    ($op:expr, $storage:expr, $run:ident ( $($arg:expr),* )) => {
        match $storage.dtype() {
            DType::F32 => $run::<f32>($($arg),*),
            DType::F64 => $run::<f64>($($arg),*),
            other => candle_core::bail!("{}: {other:?} is not supported (f32 or f64)", $op),
        }
    };
}

/// The `CustomOp2` of a backward kernel over (the forward's input or
/// output, the gradient): its name and `$run::<T>(op, sx, lx, sg, lg)`.
macro_rules! backward_op {
    ($op:ident, $name:literal, $run:ident) => {
        impl CustomOp2 for $op {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                sx: &CpuStorage,
                lx: &Layout,
                sg: &CpuStorage,
                lg: &Layout,
            ) -> Res<(CpuStorage, Shape)> {
                by_dtype!(self.name(), sx, $run(self, sx, lx, sg, lg))
            }
        }
    };
}

/// The elements of a contiguous tensor.
fn slice<'a, T: Float>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Res<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the input is not contiguous"),
    }
}

/// Runs `f` on the CPU elements of a contiguous constant, which must have
/// the input's dtype.
fn with_constant<T: Float, R>(t: &Tensor, op: &str, f: impl FnOnce(&[T]) -> Res<R>) -> Res<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("{op}: not on the CPU");
    };
    f(slice(cpu, layout, op)?)
}

fn output<T: Float>(values: Vec<T>, layout: &Layout) -> (CpuStorage, Shape) {
    (T::to_cpu_storage_owned(values), layout.shape().clone())
}

/// The loop of every one-input kernel: `f(row index, output row, input
/// row)` over rows of `n` values, in parallel.
fn par_rows<T: Float>(x: &[T], n: usize, f: impl Fn(usize, &mut [T], &[T]) + Sync) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .enumerate()
        .for_each(|(row, (y, x))| f(row, y, x));
    y
}

/// The loop of every backward kernel: `f(output row, a row, b row)` over
/// aligned rows of `n` values of two inputs of one shape, in parallel.
fn par_rows2<T: Float>(
    a: &[T],
    b: &[T],
    n: usize,
    f: impl Fn(&mut [T], &[T], &[T]) + Sync,
) -> Res<Vec<T>> {
    if a.len() != b.len() {
        candle_core::bail!(
            "fused backward: inputs of {} and {} values",
            a.len(),
            b.len()
        );
    }
    let mut y = vec![T::zero(); a.len()];
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

fn inv_rms<T: Float>(x: &[T], eps: T) -> T {
    let mean_sq = x.iter().map(|&v| v * v).sum::<T>() / T::from_f64(x.len() as f64);
    (mean_sq + eps).sqrt().recip()
}

fn rms_norm_fwd<T: Float>(op: &RmsNorm, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
    let x = slice::<T>(s, l, op.name())?;
    let eps = T::from_f64(f64::from(op.eps));
    let y = with_constant(&op.weight, op.name(), |w: &[T]| {
        let n = w.len();
        if x.len() % n != 0 {
            candle_core::bail!("rms norm: {:?} does not end in {n}", l.dims());
        }
        Ok(par_rows(x, n, |_, y, x| {
            let r = inv_rms(x, eps);
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                *y = x * r * w;
            }
        }))
    })?;
    Ok(output(y, l))
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
        by_dtype!(self.name(), s, rms_norm_fwd(self, s, l))
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

backward_op!(RmsNormBackward, "fused-rms-norm-backward", rms_norm_bwd);

fn rms_norm_bwd<T: Float>(
    op: &RmsNormBackward,
    sx: &CpuStorage,
    lx: &Layout,
    sg: &CpuStorage,
    lg: &Layout,
) -> Res<(CpuStorage, Shape)> {
    let (x, g) = (
        slice::<T>(sx, lx, op.name())?,
        slice::<T>(sg, lg, op.name())?,
    );
    let eps = T::from_f64(f64::from(op.eps));
    let dx = with_constant(&op.weight, op.name(), |w: &[T]| {
        let n = w.len();
        par_rows2(x, g, n, |dx, x, g| {
            let r = inv_rms(x, eps);
            let dot = x
                .iter()
                .zip(g)
                .zip(w)
                .map(|((&x, &g), &w)| x * g * w)
                .sum::<T>()
                / T::from_f64(n as f64);
            let k = r * r * r * dot;
            for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                *dx = r * g * w - x * k;
            }
        })
    })?;
    Ok(output(dx, lx))
}

/// Elementwise work is split into chunks of this many values.
const CHUNK: usize = 4096;
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;

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
        by_dtype!(self.name(), s, gelu_fwd(s, l))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        Ok(Some(x.contiguous()?.apply_op2_no_bwd(
            &grad.contiguous()?,
            &GeluTanhBackward,
        )?))
    }
}

/// `0.5 (1 + tanh(u))` is `sigmoid(2u)`: one `exp` per value instead of
/// libm's `tanh` (which took 10% of a training step through `expm1`).
fn gelu_sigmoid<T: Float>(x: T, k: T, c: T) -> T {
    let u = k * x * (T::one() + c * x * x);
    (T::one() + (-(u + u)).exp()).recip()
}

fn gelu_fwd<T: Float>(s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
    let x = slice::<T>(s, l, "fused-gelu-tanh")?;
    let (k, c) = (T::from_f64(SQRT_2_OVER_PI), T::from_f64(GELU_C));
    let y = par_rows(x, CHUNK, |_, y, x| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * gelu_sigmoid(x, k, c);
        }
    });
    Ok(output(y, l))
}

struct GeluTanhBackward;

backward_op!(GeluTanhBackward, "fused-gelu-tanh-backward", gelu_bwd);

fn gelu_bwd<T: Float>(
    op: &GeluTanhBackward,
    sx: &CpuStorage,
    lx: &Layout,
    sg: &CpuStorage,
    lg: &Layout,
) -> Res<(CpuStorage, Shape)> {
    let name = op.name();
    let (x, g) = (slice::<T>(sx, lx, name)?, slice::<T>(sg, lg, name)?);
    let (k, c, two, three) = (
        T::from_f64(SQRT_2_OVER_PI),
        T::from_f64(GELU_C),
        T::from_f64(2.0),
        T::from_f64(3.0),
    );
    let dx = par_rows2(x, g, CHUNK, |dx, x, g| {
        for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
            // With s = sigmoid(2u): d/dx [x s] = s + x 2 u'(x) s (1 - s).
            let s = gelu_sigmoid(x, k, c);
            let du = k * (T::one() + three * c * x * x);
            *dx = g * (s + x * two * du * s * (T::one() - s));
        }
    })?;
    Ok(output(dx, lx))
}

/// Inverted dropout: each value is zeroed with probability `p`, the rest
/// scaled by `1 / (1 - p)`. The mask is a pure function of `seed` and the
/// value's index, so the backward regenerates it rather than keeping it
/// (candle's dropout keeps a full-size mask per call, 0.5 GB a step at
/// seq 256 x batch 4) and a training run is reproducible from its seeds.
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Res<Tensor> {
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout: p = {p} is not in [0, 1)");
    }
    x.contiguous()?.apply_op1(Dropout { p, seed })
}

struct Dropout {
    p: f32,
    seed: u64,
}

/// Whether value `i` survives: splitmix64 of the seed and the index,
/// compared with `p` on 32 bits.
fn survives(seed: u64, i: u64, threshold: u64) -> bool {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 32) >= threshold
}

fn dropout_fwd<T: Float>(op: &Dropout, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
    let x = slice::<T>(s, l, "fused-dropout")?;
    let threshold = (f64::from(op.p) * 4_294_967_296.0) as u64;
    let scale = T::from_f64(1.0 / (1.0 - f64::from(op.p)));
    let y = par_rows(x, CHUNK, |row, y, x| {
        let first = (row * CHUNK) as u64;
        for (j, (y, &x)) in y.iter_mut().zip(x).enumerate() {
            *y = if survives(op.seed, first + j as u64, threshold) {
                x * scale
            } else {
                T::zero()
            };
        }
    });
    Ok(output(y, l))
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
        by_dtype!(self.name(), s, dropout_fwd(self, s, l))
    }

    /// The same mask and scale, applied to the gradient.
    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let op = Dropout {
            p: self.p,
            seed: self.seed,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// Mean cross-entropy of `logits` (n, vocab) against `targets` (n ids), as
/// a scalar. candle-nn's composed loss keeps three more (n, vocab) tensors
/// in the graph (shifted logits, their exp, the log-softmax), 134 MB each
/// for 128 loss positions over Gemma's 262k-token vocabulary; this one
/// keeps none, and its backward writes `softmax - onehot` in one pass.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> Res<Tensor> {
    let (n, vocab) = logits.dims2()?;
    if targets.len() != n || n == 0 {
        candle_core::bail!("cross entropy: {} targets for {n} rows", targets.len());
    }
    if let Some(&t) = targets.iter().find(|&&t| t as usize >= vocab) {
        candle_core::bail!("cross entropy: target {t} is outside the vocabulary of {vocab}");
    }
    logits
        .contiguous()?
        .apply_op1(CrossEntropy {
            targets: targets.to_vec(),
        })?
        .squeeze(0)
}

struct CrossEntropy {
    targets: Vec<u32>,
}

/// `log(sum(exp(x)))` of a row, computed shifted by its maximum.
fn log_sum_exp<T: Float>(x: &[T]) -> T {
    let max = x
        .iter()
        .copied()
        .fold(T::neg_infinity(), num_traits::Float::max);
    let sum: T = x.iter().map(|&v| (v - max).exp()).sum();
    sum.ln() + max
}

fn cross_entropy_fwd<T: Float>(
    op: &CrossEntropy,
    s: &CpuStorage,
    l: &Layout,
) -> Res<(CpuStorage, Shape)> {
    let x = slice::<T>(s, l, "fused-cross-entropy")?;
    let vocab = l.dims()[1];
    let losses: Vec<T> = x
        .par_chunks(vocab)
        .zip(op.targets.par_iter())
        .map(|(row, &t)| log_sum_exp(row) - row[t as usize])
        .collect();
    let mean = losses.iter().copied().sum::<T>() / T::from_f64(losses.len() as f64);
    Ok((T::to_cpu_storage_owned(vec![mean]), Shape::from(1)))
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
        by_dtype!(self.name(), s, cross_entropy_fwd(self, s, l))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let op = CrossEntropyBackward {
            targets: self.targets.clone(),
        };
        Ok(Some(
            x.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &op)?,
        ))
    }
}

/// `d loss / d x = g (softmax(x) - onehot(target)) / n`.
struct CrossEntropyBackward {
    targets: Vec<u32>,
}

fn cross_entropy_bwd<T: Float>(
    op: &CrossEntropyBackward,
    sx: &CpuStorage,
    lx: &Layout,
    sg: &CpuStorage,
    lg: &Layout,
) -> Res<(CpuStorage, Shape)> {
    let name = op.name();
    let (x, g) = (slice::<T>(sx, lx, name)?, slice::<T>(sg, lg, name)?);
    let vocab = lx.dims()[1];
    let scale = g[0] / T::from_f64(op.targets.len() as f64);
    let mut dx = vec![T::zero(); x.len()];
    dx.par_chunks_mut(vocab)
        .zip(x.par_chunks(vocab).zip(op.targets.par_iter()))
        .for_each(|(dx, (x, &t))| {
            let lse = log_sum_exp(x);
            for (d, &v) in dx.iter_mut().zip(x) {
                *d = (v - lse).exp() * scale;
            }
            dx[t as usize] -= scale;
        });
    Ok(output(dx, lx))
}

backward_op!(
    CrossEntropyBackward,
    "fused-cross-entropy-backward",
    cross_entropy_bwd
);

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
        by_dtype!(self.name(), s, rope_fwd(self, s, l))
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

fn rope_fwd<T: Float>(op: &Rope, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
    let x = slice::<T>(s, l, op.name())?;
    let &[_, _, seq, d] = l.dims() else {
        candle_core::bail!(
            "rope: expected (batch, heads, seq, head_dim), got {:?}",
            l.dims()
        );
    };
    let half = d / 2;
    let sign = if op.inverse { -T::one() } else { T::one() };
    let y = with_constant(&op.cos, op.name(), |cos: &[T]| {
        with_constant(&op.sin, op.name(), |sin: &[T]| {
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
                    let (a, b) = if op.neox {
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
        by_dtype!(self.name(), s, masked_softmax_fwd(self, s, l))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        Ok(Some(
            y.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

fn masked_softmax_fwd<T: Float>(
    op: &MaskedSoftmax,
    s: &CpuStorage,
    l: &Layout,
) -> Res<(CpuStorage, Shape)> {
    let x = slice::<T>(s, l, op.name())?;
    let &[batch, heads, seq, keys] = l.dims() else {
        candle_core::bail!(
            "masked softmax: expected (batch, heads, seq, seq), got {:?}",
            l.dims()
        );
    };
    let y = with_constant(&op.mask, op.name(), |mask: &[T]| {
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
                .map(|(&x, &m)| x + m)
                .fold(T::neg_infinity(), num_traits::Float::max);
            let mut sum = T::zero();
            for ((y, &x), &m) in y.iter_mut().zip(x).zip(m) {
                *y = (x + m - max).exp();
                sum += *y;
            }
            y.iter_mut().for_each(|y| *y /= sum);
        }))
    })?;
    Ok(output(y, l))
}

/// `dx = y (g - sum(g y))` per row.
struct SoftmaxBackward;

backward_op!(SoftmaxBackward, "fused-softmax-backward", softmax_bwd);

fn softmax_bwd<T: Float>(
    op: &SoftmaxBackward,
    sy: &CpuStorage,
    ly: &Layout,
    sg: &CpuStorage,
    lg: &Layout,
) -> Res<(CpuStorage, Shape)> {
    let name = op.name();
    let (y, g) = (slice::<T>(sy, ly, name)?, slice::<T>(sg, lg, name)?);
    let n = ly.dims().last().copied().unwrap_or(1);
    let dx = par_rows2(y, g, n, |dx, y, g| {
        let dot: T = y.iter().zip(g).map(|(&y, &g)| y * g).sum();
        for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(g) {
            *dx = y * (g - dot);
        }
    })?;
    Ok(output(dx, ly))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_util::max_diff;
    use candle_core::{Device, Var, D};

    /// Forward values and the input's gradient (of a random projection of
    /// the output, so every output element matters) agree with `reference`.
    fn check(
        shape: &[usize],
        ours: impl Fn(&Tensor) -> Tensor,
        reference: impl Fn(&Tensor) -> Tensor,
        tol: f64,
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
    fn gelu_is_finite_and_exact_far_from_zero() {
        let dev = Device::Cpu;
        let values = [
            -80f32, -30.0, -10.0, -3.0, -1e-4, 0.0, 1e-4, 3.0, 10.0, 30.0, 80.0,
        ];
        let x = Var::new(&values, &dev).unwrap();
        let (ours, theirs) = (gelu_tanh(x.as_tensor()).unwrap(), x.gelu().unwrap());
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let g_ours = ours.sum_all().unwrap().backward().unwrap();
        let g_theirs = theirs.sum_all().unwrap().backward().unwrap();
        let (a, b) = (g_ours.get(&x).unwrap(), g_theirs.get(&x).unwrap());
        assert!(a.to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite()));
        assert!(max_diff(a, b) < 1e-5, "{a} against {b}");
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
    fn dropout_is_a_seeded_mask_shared_by_forward_and_backward() {
        let dev = Device::Cpu;
        let n = 100_000;
        let x = Var::ones(n, candle_core::DType::F32, &dev).unwrap();
        let y = dropout(x.as_tensor(), 0.25, 7).unwrap();
        let values = y.to_vec1::<f32>().unwrap();
        let kept = values.iter().filter(|&&v| v != 0.0).count();
        assert!(
            (kept as f64 / n as f64 - 0.75).abs() < 0.01,
            "kept {kept} of {n}"
        );
        assert!(values
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        // Reproducible from the seed, and another seed gives another mask.
        assert_eq!(
            dropout(x.as_tensor(), 0.25, 7)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            values
        );
        let other = dropout(x.as_tensor(), 0.25, 8)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(other.iter().zip(&values).filter(|(a, b)| a != b).count() > n / 4);
        // The gradient of sum(y) is the mask times the scale: y itself here.
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(grads.get(&x).unwrap().to_vec1::<f32>().unwrap(), values);
        // p = 0 keeps everything; p outside [0, 1) is an error.
        assert_eq!(
            dropout(x.as_tensor(), 0.0, 1)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            vec![1.0; n]
        );
        assert!(dropout(x.as_tensor(), 1.0, 1).is_err());
    }

    #[test]
    fn cross_entropy_matches_candle_nn_forward_and_backward() {
        let dev = Device::Cpu;
        // Wide logits with large magnitudes, so the shift by the maximum matters.
        let x = Var::new(
            (Tensor::randn(0f32, 1.0, (5, 300), &dev).unwrap() * 30.0)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
            &dev,
        )
        .unwrap();
        let targets = [0u32, 299, 17, 17, 150];
        let ours = cross_entropy(x.as_tensor(), &targets).unwrap();
        let theirs =
            candle_nn::loss::cross_entropy(x.as_tensor(), &Tensor::new(&targets, &dev).unwrap())
                .unwrap();
        assert_eq!(ours.dims(), &[] as &[usize]);
        let (a, b) = (
            ours.to_scalar::<f32>().unwrap(),
            theirs.to_scalar::<f32>().unwrap(),
        );
        assert!((a - b).abs() < 1e-4 * b.abs().max(1.0), "{a} against {b}");
        let ga = (ours * 3.0).unwrap().backward().unwrap();
        let gb = (theirs * 3.0).unwrap().backward().unwrap();
        assert!(max_diff(ga.get(&x).unwrap(), gb.get(&x).unwrap()) < 1e-5);
        assert!(cross_entropy(x.as_tensor(), &targets[..4]).is_err());
        assert!(cross_entropy(x.as_tensor(), &[0, 1, 2, 3, 300]).is_err());
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

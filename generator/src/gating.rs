//! Gates over a pool of experts. KeepTop-K, as in LoRA-Gen: a softmax over
//! the experts, the K largest kept, renormalised to sum to 1. The choice of
//! the K is not differentiable; the kept weights are.

use candle_core::{Tensor, D};

use crate::error::{Error, Result};

/// KeepTop-K gates (batch, n) from router logits (batch, n). Ties go to
/// the lower expert index.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use loragen_generator::gating::keep_top_k;
///
/// let logits = Tensor::new(&[[0f32, 2.0, 1.0, -1.0]], &Device::Cpu)?;
/// let gates = keep_top_k(&logits, 2)?.to_vec2::<f32>()?;
/// // Experts 1 and 2 are kept, in the ratio e^2 : e^1.
/// assert_eq!(gates[0][0], 0.0);
/// assert!((gates[0][1] - 1.0 / (1.0 + (-1f32).exp())).abs() < 1e-6);
/// assert!((gates[0].iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn keep_top_k(logits: &Tensor, k: usize) -> Result<Tensor> {
    let (batch, n) = logits.dims2()?;
    if k == 0 || k > n {
        return Err(Error::Config(format!(
            "KeepTop-K needs 1 <= K <= {n} experts, got K = {k}"
        )));
    }
    // The composed softmax: candle-nn's fused `softmax_last_dim` has no backward.
    let probs = candle_nn::ops::softmax(logits, D::Minus1)?;
    let values = probs.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
    let mut mask = vec![0f64; batch * n];
    for (row, p) in values.iter().enumerate() {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        for &j in &order[..k] {
            mask[row * n + j] = 1.0;
        }
    }
    let mask = Tensor::from_vec(mask, (batch, n), logits.device())?.to_dtype(logits.dtype())?;
    let kept = (probs * mask)?;
    Ok(kept.broadcast_div(&kept.sum_keepdim(D::Minus1)?)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn keeps_the_k_largest_renormalised_with_ties_to_the_lower_index() {
        let logits =
            Tensor::new(&[[1f64, 3.0, 3.0, 0.0], [5.0, 4.0, 3.0, 2.0]], &Device::Cpu).unwrap();
        let g = keep_top_k(&logits, 2).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(g[0], vec![0.0, 0.5, 0.5, 0.0]);
        let e = 1f64.exp();
        assert!((g[1][0] - e / (e + 1.0)).abs() < 1e-12);
        assert!((g[1][1] - 1.0 / (e + 1.0)).abs() < 1e-12);
        assert_eq!(&g[1][2..], &[0.0, 0.0]);
        let ties = Tensor::new(&[[0f64, 0.0, 0.0]], &Device::Cpu).unwrap();
        assert_eq!(
            keep_top_k(&ties, 1).unwrap().to_vec2::<f64>().unwrap()[0],
            vec![1.0, 0.0, 0.0]
        );
        assert!(keep_top_k(&logits, 0).is_err());
        assert!(keep_top_k(&logits, 5).is_err());
    }

    #[test]
    fn the_gradient_flows_to_the_kept_logits_only() {
        let logits = Var::new(&[[0.3f64, -1.0, 2.0, 0.5]], &Device::Cpu).unwrap();
        let weights = Tensor::new(&[[1f64, 2.0, 3.0, 4.0]], &Device::Cpu).unwrap();
        let g = keep_top_k(logits.as_tensor(), 2).unwrap();
        let grads = (g * weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let d = grads.get(&logits).unwrap().to_vec2::<f64>().unwrap();
        // Kept: experts 2 and 3; the gates are a softmax over their two
        // logits, so d(3 g2 + 4 g3)/d l2 = (3 - 4) g2 g3 = -d/d l3.
        let (l2, l3) = (2f64, 0.5f64);
        let g2 = l2.exp() / (l2.exp() + l3.exp());
        let expected = -g2 * (1.0 - g2);
        assert!(d[0][0].abs() < 1e-12 && d[0][1].abs() < 1e-12, "{:?}", d);
        assert!((d[0][2] - expected).abs() < 1e-12, "{:?}", d);
        assert!((d[0][3] + expected).abs() < 1e-12, "{:?}", d);
    }
}

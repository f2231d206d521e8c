//! Agreement of two models' next-token distributions: top-1 agreement and
//! mean KL(reference ‖ candidate), per position over the full vocabulary.

/// Agreement over a set of positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    pub positions: usize,
    /// Share of positions whose argmax tokens are equal.
    pub top1: f64,
    /// Mean KL(reference ‖ candidate) in nats.
    pub mean_kl: f64,
    pub max_kl: f64,
    /// Largest gap, in the reference's logits, between its top token and
    /// the candidate's top token where the two disagree: small gaps are
    /// near-ties that rounding decides.
    pub max_disagreement_gap: f32,
}

/// Compares logits row by row (`reference[i]` against `candidate[i]`).
pub fn agreement(reference: &[Vec<f32>], candidate: &[Vec<f32>]) -> Agreement {
    let n = reference.len().min(candidate.len());
    let (mut same, mut kl_sum, mut kl_max, mut gap) = (0usize, 0f64, 0f64, 0f32);
    for (r, c) in reference.iter().zip(candidate).take(n) {
        let (top_r, top_c) = (argmax(r), argmax(c));
        if top_r == top_c {
            same += 1;
        } else {
            gap = gap.max(r[top_r] - r[top_c]);
        }
        let kl = kl(r, c);
        kl_sum += kl;
        kl_max = kl_max.max(kl);
    }
    Agreement {
        positions: n,
        top1: same as f64 / n.max(1) as f64,
        mean_kl: kl_sum / n.max(1) as f64,
        max_kl: kl_max,
        max_disagreement_gap: gap,
    }
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

fn log_softmax(xs: &[f32]) -> Vec<f64> {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = xs.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln() + max;
    xs.iter().map(|&x| x as f64 - lse).collect()
}

/// KL(p ‖ q) of the softmaxes of two logit rows.
pub fn kl(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(p_logits), log_softmax(q_logits));
    lp.iter()
        .zip(&lq)
        .map(|(a, b)| a.exp() * (a - b))
        .sum::<f64>()
        .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_of_known_distributions() {
        // p = (0.5, 0.5), q = (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3).
        let p = [0.0f32, 0.0];
        let q = [0.0f32, 3f32.ln()];
        let expected = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((kl(&p, &q) - expected).abs() < 1e-6);
        assert_eq!(kl(&p, &p), 0.0);
        let a = agreement(&[p.to_vec(), vec![1.0, 0.0]], &[q.to_vec(), vec![2.0, 0.0]]);
        assert_eq!(a.positions, 2);
        assert!(
            (a.top1 - 0.5).abs() < 1e-12,
            "argmax ties go to the first index"
        );
    }
}

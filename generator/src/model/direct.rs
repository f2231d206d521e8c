//! The direct head, the paper's Table 9 contrast to the expert mix: each
//! edge layer's LoRA factors come straight from its meta token `t`
//! (meta_dim), through a map factorised at width `h`:
//! `A = reshape(G_A t, (r, h)) P_A` and `B = P_B reshape(G_B t, (h, r))`.
//! `G_A` and `G_B` (meta_dim -> r h) are shared by the layers of a target;
//! `P_A` (h, in) and `P_B` (out, h) belong to one layer and target. A dense
//! map from `t` to the factors would take meta_dim x 129k parameters per
//! layer (about 594 M at the default sizes); at h = 64 this one takes about
//! 11 M.

use candle_core::{Module, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

use super::config::GeneratorConfig;
use crate::edge::{Delta, LayerDeltas, Target};
use crate::error::{Error, Result};

/// The generators of one target and its per-layer projections.
#[derive(Debug, Clone)]
struct TargetHead {
    target: Target,
    gen_a: Linear,
    gen_b: Linear,
    /// By layer: `P_A` (h, in) and `P_B` (out, h).
    projections: Vec<(Tensor, Tensor)>,
}

#[derive(Debug, Clone)]
pub struct DirectHead {
    rank: usize,
    width: usize,
    scale: f64,
    layers: usize,
    targets: Vec<TargetHead>,
}

impl DirectHead {
    /// The head of width `width` for `cfg`'s targets; `dims(target)` gives
    /// an edge projection's (in, out). `G_B` starts at zero, so every
    /// generated B is zero and the edge model unchanged at the start, as a
    /// LoRA's B is; `P_A` is scaled so that A starts at a LoRA's usual size
    /// (entries about 1/sqrt(in)).
    pub fn new(
        cfg: &GeneratorConfig,
        width: usize,
        dims: impl Fn(Target) -> (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        let rank = cfg.lora.rank;
        let mut targets = Vec::with_capacity(cfg.lora.targets.len());
        for &target in &cfg.lora.targets {
            let (n_in, n_out) = dims(target);
            let vb = vb.pp(target.gguf_stem());
            let gen_a = candle_nn::linear_no_bias(cfg.meta_dim, rank * width, vb.pp("gen_a"))?;
            let gen_b_weight = vb.pp("gen_b").get_with_hints(
                (rank * width, cfg.meta_dim),
                "weight",
                Init::Const(0.0),
            )?;
            let projections = (0..cfg.edge_layers)
                .map(|il| {
                    let vb = vb.pp(format!("blk.{il}"));
                    let p_a = vb.get_with_hints(
                        (width, n_in),
                        "p_a",
                        Init::Randn {
                            mean: 0.0,
                            stdev: 1.0 / ((width * n_in) as f64).sqrt(),
                        },
                    )?;
                    let p_b = vb.get_with_hints(
                        (n_out, width),
                        "p_b",
                        Init::Randn {
                            mean: 0.0,
                            stdev: 1.0 / (width as f64).sqrt(),
                        },
                    )?;
                    Ok((p_a, p_b))
                })
                .collect::<Result<_>>()?;
            targets.push(TargetHead {
                target,
                gen_a,
                gen_b: Linear::new(gen_b_weight, None),
                projections,
            });
        }
        Ok(DirectHead {
            rank,
            width,
            scale: cfg.lora.scale(),
            layers: cfg.edge_layers,
            targets,
        })
    }

    /// Per-element deltas of every layer from the meta tokens
    /// (batch, layers, meta_dim).
    pub fn deltas(&self, meta: &Tensor) -> Result<Vec<LayerDeltas>> {
        let (batch, layers, _) = meta.dims3()?;
        if layers != self.layers {
            return Err(Error::Config(format!(
                "meta tokens for {layers} layers, a direct head for {}",
                self.layers
            )));
        }
        let (r, h) = (self.rank, self.width);
        (0..layers)
            .map(|il| {
                let t = meta.narrow(1, il, 1)?.squeeze(1)?;
                let deltas = self
                    .targets
                    .iter()
                    .map(|head| {
                        let (p_a, p_b) = &head.projections[il];
                        let a = head
                            .gen_a
                            .forward(&t)?
                            .reshape((batch, r, h))?
                            .broadcast_matmul(p_a)?;
                        let b =
                            p_b.broadcast_matmul(&head.gen_b.forward(&t)?.reshape((batch, h, r))?)?;
                        Ok((
                            head.target,
                            Delta {
                                a,
                                b,
                                scale: self.scale,
                            },
                        ))
                    })
                    .collect::<Result<_>>()?;
                Ok(LayerDeltas { deltas })
            })
            .collect()
    }
}

//! Loading saved weights into a learner's variables, whatever precision
//! they were stored in.

use std::path::Path;

use candle_core::Device;
use candle_nn::VarMap;

use crate::error::{Error, Result};

/// Whether the variable `name` keeps f32 in a shipped checkpoint: the
/// BatchNorm running statistics.
pub(crate) fn keeps_f32(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Loads the weights at `path` into `varmap`, converting each tensor to
/// its variable's dtype; a missing tensor or a shape that does not fit is
/// an error naming the file and the variable.
pub fn load_weights(varmap: &VarMap, path: &Path) -> Result<()> {
    let misfit = |detail: String| Error::WeightsMisfit {
        path: path.to_path_buf(),
        detail,
    };
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| misfit(format!("cannot read it: {e}")))?;
    let vars = varmap
        .data()
        .lock()
        .map_err(|e| Error::Config(e.to_string()))?;
    for (name, var) in vars.iter() {
        let tensor = tensors
            .get(name)
            .ok_or_else(|| misfit(format!("no tensor `{name}`")))?;
        if tensor.dims() != var.dims() {
            return Err(misfit(format!(
                "`{name}` is {:?}, the generator needs {:?}",
                tensor.dims(),
                var.dims()
            )));
        }
        var.set(&tensor.to_dtype(var.dtype())?)
            .map_err(|e| misfit(format!("`{name}`: {e}")))?;
    }
    Ok(())
}

//! Loading saved weights into a learner's variables, whatever precision
//! they were stored in.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
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
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| misfit(format!("cannot read it: {e}")))?;
    let vars = varmap
        .data()
        .lock()
        .map_err(|e| Error::Config(e.to_string()))?;
    for (name, var) in vars.iter() {
        let tensor = take_fitting(&mut tensors, name, var).map_err(misfit)?;
        var.set(&tensor)
            .map_err(|e| misfit(format!("`{name}`: {e}")))?;
    }
    Ok(())
}

/// Takes tensor `key` out of a loaded safetensors file, converted to the
/// dtype of `like`, which it must match in shape. `Err` says what is wrong
/// (missing, another shape), for the caller to put in its own error.
pub(crate) fn take_fitting(
    tensors: &mut HashMap<String, Tensor>,
    key: &str,
    like: &Tensor,
) -> std::result::Result<Tensor, String> {
    let tensor = tensors
        .remove(key)
        .ok_or_else(|| format!("no tensor `{key}`"))?;
    if tensor.dims() != like.dims() {
        return Err(format!(
            "`{key}` is {:?}, the variable {:?}",
            tensor.dims(),
            like.dims()
        ));
    }
    tensor
        .to_dtype(like.dtype())
        .map_err(|e| format!("`{key}`: {e}"))
}

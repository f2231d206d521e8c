//! What the command-line tests share.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

/// Runs the built `loragen` with `args` and waits for it.
pub fn loragen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loragen"))
        .args(args)
        .output()
        .unwrap()
}

#!/usr/bin/env bash
# Checks the matrix-product path that processors without AVX-512 take.
# The workspace builds candle's gemm with its `x86-v4` feature (AVX-512
# kernels, chosen at run time). This builds a small program on the same
# candle and gemm versions for target-cpu=haswell, runs it here and under
# `qemu-x86_64 -cpu Haswell` (AVX2 + FMA, no AVX-512), and compares the
# step's projection shapes with an f64 product in both.
#
# Run with: scripts/avx2-fallback.sh   (needs qemu-user: apt-get install qemu-user)
set -euo pipefail
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 not found: apt-get install qemu-user" >&2; exit 1; }
dir=${AVX2_CHECK_DIR:-$(mktemp -d)}
mkdir -p "$dir/src"
candle=$(grep -A1 '^name = "candle-core"$' "$(dirname "$0")/../Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')
cat > "$dir/Cargo.toml" <<EOF
[package]
name = "avx2-fallback"
version = "0.1.0"
edition = "2021"

[dependencies]
candle-core = "=$candle"
gemm = { version = "0.19", default-features = false, features = ["std", "rayon", "x86-v4"] }
EOF
cat > "$dir/src/main.rs" <<'EOF'
use candle_core::{Device, Tensor};

fn main() {
    println!("avx512f detected: {}", std::arch::is_x86_feature_detected!("avx512f"));
    let dev = Device::Cpu;
    let mut worst = 0f64;
    for &(m, k, n) in &[(512usize, 640usize, 2048usize), (128, 2048, 640), (37, 640, 16), (16, 512, 640)] {
        let a = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let c = a.matmul(&b.t().unwrap()).unwrap().to_vec2::<f32>().unwrap();
        let (av, bv) = (a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        for i in (0..m).step_by(7) {
            for j in (0..n).step_by(5) {
                let exact: f64 = (0..k).map(|l| av[i][l] as f64 * bv[j][l] as f64).sum();
                worst = worst.max((c[i][j] as f64 - exact).abs() / (k as f64).sqrt());
            }
        }
    }
    println!("largest error / sqrt(k): {worst:e}");
    assert!(worst < 1e-5, "the product is wrong");
}
EOF
(cd "$dir" && RUSTFLAGS="-C target-cpu=haswell" cargo build --release --quiet)
echo "== this machine"
"$dir/target/release/avx2-fallback"
echo "== qemu-x86_64 -cpu Haswell"
qemu-x86_64 -cpu Haswell "$dir/target/release/avx2-fallback" 2> >(grep -v "TCG doesn't support" >&2)

//! One module per subcommand.

pub mod adapter;
pub mod bench_ablation;
pub mod bench_agent;
pub mod bench_calls;
pub mod bench_compile;
pub mod bench_curve;
pub mod bench_edge;
pub mod bench_failures;
pub mod bench_gpt4tools;
pub mod bench_report;
pub mod bench_runtime;
pub mod bfcl;
pub mod compile;
pub mod data;
pub mod eval;
pub mod generate;
pub mod models;
pub mod name_scoring;
pub mod repl;
pub mod serve;
pub mod suite;
pub mod tools;
pub mod train;
pub mod train_selector;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag that Ctrl-C sets, so long runs stop between items and keep
/// what they finished. The process has one handler and one flag: a command
/// that runs others (`suite`) shares theirs.
pub fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(stop) = FLAG.get() {
        return Ok(Arc::clone(stop));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    Ok(Arc::clone(FLAG.get_or_init(|| stop)))
}

/// A streaming callback that ends generation once `stop` is set.
pub fn until(stop: &AtomicBool) -> impl FnMut(&str) -> ControlFlow<()> + '_ {
    move |_| {
        if stop.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

pub use loragen_protocol::atomic::write_atomic;

/// The host key under which a command holds the adapter its `--adapter`
/// flag names.
pub const GIVEN_ADAPTER: &str = "--adapter";

pub const MIB: f64 = 1024.0 * 1024.0;

/// Size of a file in MiB (0 if it cannot be read).
pub fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / MIB)
}

/// The median of unsorted values (the benchmarks' nearest-rank quantile).
pub fn median(values: &[f64]) -> f64 {
    loragen_gpt4tools::report::quantile(values, 0.5)
}

/// This machine's processor, as benchmark runs record it: its model name
/// and the instruction sets the kernels choose between (e.g. `Intel(R)
/// Xeon(R) Processor (AVX-512, AMX)`). Latency compares only between runs
/// on one processor.
pub fn processor() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    format!("{name} ({})", simd_sets(&info).join(", "))
}

/// The SIMD sets of this processor; `cpuinfo` gives what std cannot
/// detect (AMX).
#[cfg(target_arch = "x86_64")]
fn simd_sets(cpuinfo: &str) -> Vec<&'static str> {
    let mut sets = Vec::new();
    if std::arch::is_x86_feature_detected!("avx512f") {
        sets.push("AVX-512");
    } else if std::arch::is_x86_feature_detected!("avx2") {
        sets.push("AVX2");
    }
    if std::arch::is_x86_feature_detected!("fma") {
        sets.push("FMA");
    }
    if cpuinfo.contains(" amx_tile") {
        sets.push("AMX");
    }
    sets
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_sets(_cpuinfo: &str) -> Vec<&'static str> {
    Vec::new()
}

/// Resets the kernel's peak-RSS counter of this process (Linux), so each
/// measured phase reports its own high-water mark.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size in MiB (Linux `VmHWM`); 0 elsewhere.
pub fn peak_rss_mib() -> f64 {
    proc_status_mib("VmHWM:")
}

/// Resident set size now in MiB (Linux `VmRSS`); 0 elsewhere.
pub fn rss_mib() -> f64 {
    proc_status_mib("VmRSS:")
}

fn proc_status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.trim().trim_end_matches("kB").trim().to_owned())
            })
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

//! Prints what this machine offers as the local cluster sees it (CPUs, memory, GPUs via NVML).
//!
//! `cargo run -p hyperfleet-train --example detect`

fn main() {
    let (cap, source) = hyperfleet_train::NodeCapacity::detect();
    println!("cpus: {}", cap.cpu);
    println!("memory: {:.1} GiB", cap.memory / (1u64 << 30) as f64);
    println!("gpus: {:?} (source: {source:?})", cap.gpus);
    match nvml_wrapper::Nvml::init() {
        Ok(nvml) => {
            for i in 0..nvml.device_count().unwrap_or(0) {
                if let Ok(d) = nvml.device_by_index(i) {
                    let mem = d.memory_info().map(|m| m.total as f64 / (1u64 << 30) as f64).unwrap_or(0.0);
                    println!("gpu {i}: {} ({mem:.0} GiB)", d.name().unwrap_or_default());
                }
            }
        }
        Err(e) => println!("nvml: unavailable ({e})"),
    }
}

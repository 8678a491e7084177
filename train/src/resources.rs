//! Resource amounts and what this machine has.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An amount of resources: a worker's bundle, or what a node has free.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores (fractions allowed).
    #[serde(default)]
    pub cpu: f64,
    /// GPUs: a fraction below 1 shares one device; 1 or more takes whole devices.
    #[serde(default)]
    pub gpu: f64,
    /// Memory in bytes.
    #[serde(default)]
    pub memory: f64,
    /// User-defined resources, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, f64>,
}

/// A resource request that can never be satisfied or makes no sense.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResourceError {
    /// A negative or non-finite amount.
    #[error("resource `{name}` must be a finite number >= 0, got {value}")]
    BadAmount {
        /// Resource name.
        name: String,
        /// The amount given.
        value: f64,
    },
    /// A GPU amount above 1 that is not whole.
    #[error("gpu must be a fraction below 1 or a whole number, got {0}")]
    FractionalMultiGpu(f64),
    /// A key that is not a resource amount.
    #[error("resource `{name}`: expected a number, got {got}")]
    NotANumber {
        /// Resource name.
        name: String,
        /// What was given, as JSON.
        got: String,
    },
}

impl Resources {
    /// One CPU, nothing else: the default bundle of a trial.
    pub fn one_cpu() -> Self {
        Resources { cpu: 1.0, ..Default::default() }
    }

    /// Parses `{cpu = 8, gpu = 4, memory = 1e9, "custom" = 2}`: unknown names are custom resources.
    pub fn from_json(v: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ResourceError> {
        let mut r = Resources::default();
        for (k, val) in v {
            let x = if let Some(x) = val.as_f64() {
                x
            } else if let (Some(obj), "custom") = (val.as_object(), k.as_str()) {
                for (ck, cv) in obj {
                    let cx = cv
                        .as_f64()
                        .ok_or_else(|| ResourceError::NotANumber { name: ck.clone(), got: cv.to_string() })?;
                    r.custom.insert(ck.clone(), cx);
                }
                continue;
            } else {
                return Err(ResourceError::NotANumber { name: k.clone(), got: val.to_string() });
            };
            match k.as_str() {
                "cpu" | "CPU" | "num_cpus" => r.cpu = x,
                "gpu" | "GPU" | "num_gpus" => r.gpu = x,
                "memory" => r.memory = x,
                _ => {
                    r.custom.insert(k.clone(), x);
                }
            }
        }
        r.validate()?;
        Ok(r)
    }

    /// Checks amounts are finite, non-negative, and GPU counts above 1 are whole.
    pub fn validate(&self) -> Result<(), ResourceError> {
        let named = [("cpu", self.cpu), ("gpu", self.gpu), ("memory", self.memory)];
        for (name, value) in named.iter().copied().chain(self.custom.iter().map(|(k, v)| (k.as_str(), *v))) {
            if !value.is_finite() || value < 0.0 {
                return Err(ResourceError::BadAmount { name: name.to_string(), value });
            }
        }
        if self.gpu > 1.0 && self.gpu.fract() != 0.0 {
            return Err(ResourceError::FractionalMultiGpu(self.gpu));
        }
        Ok(())
    }

    /// Sums bundles (for display and totals).
    pub fn add(&mut self, other: &Resources) {
        self.cpu += other.cpu;
        self.gpu += other.gpu;
        self.memory += other.memory;
        for (k, v) in &other.custom {
            *self.custom.entry(k.clone()).or_insert(0.0) += v;
        }
    }
}

/// What one node has in total, GPUs as device indices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeCapacity {
    /// CPU cores.
    pub cpu: f64,
    /// Memory in bytes.
    pub memory: f64,
    /// GPU device indices (as CUDA numbers them).
    pub gpus: Vec<u32>,
    /// Custom resources.
    pub custom: BTreeMap<String, f64>,
}

/// Where a node's GPU list came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuSource {
    /// NVML reported them.
    Nvml,
    /// No driver or no devices.
    None,
    /// Set by the user.
    Override,
}

impl NodeCapacity {
    /// Detects this machine: CPUs, memory from `/proc/meminfo`, GPUs through NVML when a driver is present.
    pub fn detect() -> (Self, GpuSource) {
        let cpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
        let memory = read_mem_total().unwrap_or(0.0);
        let (gpus, src) = match detect_gpus() {
            Some(n) if n > 0 => ((0..n).collect(), GpuSource::Nvml),
            _ => (Vec::new(), GpuSource::None),
        };
        (NodeCapacity { cpu, memory, gpus, custom: BTreeMap::new() }, src)
    }

    /// Applies user overrides (`resources = {cpu = 8, gpu = 4, custom = 2}`): given amounts replace detected ones.
    pub fn with_overrides(mut self, o: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ResourceError> {
        let r = Resources::from_json(o)?;
        let has = |names: &[&str]| names.iter().any(|n| o.contains_key(*n));
        if has(&["cpu", "CPU", "num_cpus"]) {
            self.cpu = r.cpu;
        }
        if has(&["gpu", "GPU", "num_gpus"]) {
            if r.gpu.fract() != 0.0 {
                return Err(ResourceError::FractionalMultiGpu(r.gpu));
            }
            self.gpus = (0..r.gpu as u32).collect();
        }
        if has(&["memory"]) {
            self.memory = r.memory;
        }
        self.custom.extend(r.custom);
        Ok(self)
    }
}

fn read_mem_total() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Number of GPUs NVML sees; `None` when there is no driver.
pub fn detect_gpus() -> Option<u32> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    nvml.device_count().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_named_and_custom_resources() {
        let r = Resources::from_json(&obj(json!({"cpu": 2, "gpu": 0.5, "tpu_slot": 3}))).unwrap();
        assert_eq!(r.cpu, 2.0);
        assert_eq!(r.gpu, 0.5);
        assert_eq!(r.custom["tpu_slot"], 3.0);
        let r = Resources::from_json(&obj(json!({"custom": {"licence": 1}}))).unwrap();
        assert_eq!(r.custom["licence"], 1.0);
    }

    #[test]
    fn refuses_bad_amounts() {
        assert!(matches!(Resources::from_json(&obj(json!({"cpu": -1}))), Err(ResourceError::BadAmount { .. })));
        assert_eq!(Resources::from_json(&obj(json!({"gpu": 1.5}))), Err(ResourceError::FractionalMultiGpu(1.5)));
        assert!(matches!(Resources::from_json(&obj(json!({"cpu": "two"}))), Err(ResourceError::NotANumber { .. })));
    }

    #[test]
    fn detection_degrades_without_a_driver_and_overrides_apply() {
        let (cap, src) = NodeCapacity::detect();
        assert!(cap.cpu >= 1.0);
        assert!(cap.memory > 0.0);
        if src == GpuSource::None {
            assert!(cap.gpus.is_empty());
        }
        let cap = cap.with_overrides(&obj(json!({"cpu": 8, "gpu": 4, "licence": 2}))).unwrap();
        assert_eq!(cap.cpu, 8.0);
        assert_eq!(cap.gpus, vec![0, 1, 2, 3]);
        assert_eq!(cap.custom["licence"], 2.0);
    }
}

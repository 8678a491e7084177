//! The local cluster: in-process nodes (one real, or several virtual) and RAII reservations.

use crate::placement::{place, GangSpec, NodeFree, NodeId, Placement};
use crate::resources::{NodeCapacity, Resources};
use std::sync::{Arc, Mutex};

/// Called whenever a reservation is released, so the owner can try to place waiting gangs.
pub type CapacityFreed = Box<dyn Fn() + Send + Sync>;

struct Inner {
    free: Mutex<Vec<NodeFree>>,
    capacity: Vec<NodeCapacity>,
    on_free: Option<CapacityFreed>,
}

/// Nodes that live in this process: this machine, or several virtual nodes for tests.
#[derive(Clone)]
pub struct LocalCluster {
    inner: Arc<Inner>,
}

/// Resources held for one worker group; dropping it gives them back.
pub struct Reservation {
    inner: Arc<Inner>,
    gang: GangSpec,
    placement: Placement,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("placement", &self.placement).finish()
    }
}

impl LocalCluster {
    /// A cluster of the given nodes, numbered from 0; `on_free` runs after every release.
    pub fn new(nodes: Vec<NodeCapacity>, on_free: Option<CapacityFreed>) -> Self {
        let free = nodes
            .iter()
            .enumerate()
            .map(|(i, c)| NodeFree {
                node: NodeId(i as u32),
                cpu: c.cpu,
                memory: c.memory,
                gpus: c.gpus.iter().map(|g| (*g, 1.0)).collect(),
                custom: c.custom.clone(),
            })
            .collect();
        LocalCluster { inner: Arc::new(Inner { free: Mutex::new(free), capacity: nodes, on_free }) }
    }

    /// Reserves every bundle of `gang` at once, or nothing; never blocks.
    pub fn try_reserve(&self, gang: &GangSpec) -> Option<Reservation> {
        let mut free = self.inner.free.lock().unwrap_or_else(|e| e.into_inner());
        let placement = place(gang, &free)?;
        for (b, bp) in gang.bundles.iter().zip(&placement.bundles) {
            if let Some(n) = free.iter_mut().find(|n| n.node == bp.node) {
                n.take(b, &bp.gpus);
            }
        }
        Some(Reservation { inner: self.inner.clone(), gang: gang.clone(), placement })
    }

    /// Whether `gang` could ever be placed on an empty cluster.
    pub fn could_ever_fit(&self, gang: &GangSpec) -> bool {
        let empty = LocalCluster::new(self.inner.capacity.clone(), None);
        empty.try_reserve(gang).is_some()
    }

    /// Each node's total capacity.
    pub fn capacity(&self) -> &[NodeCapacity] {
        &self.inner.capacity
    }

    /// Total CPU, GPU and custom resources over all nodes.
    pub fn total(&self) -> Resources {
        let mut t = Resources::default();
        for c in &self.inner.capacity {
            t.add(&Resources { cpu: c.cpu, gpu: c.gpus.len() as f64, memory: c.memory, custom: c.custom.clone() });
        }
        t
    }

    /// A snapshot of what is free now.
    pub fn free(&self) -> Vec<NodeFree> {
        self.inner.free.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Reservation {
    /// Where each bundle was placed.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The gang this reservation holds.
    pub fn gang(&self) -> &GangSpec {
        &self.gang
    }

    /// `CUDA_VISIBLE_DEVICES` for the worker of rank `rank`: its own device indices, comma-separated.
    pub fn cuda_visible_devices(&self, rank: usize) -> String {
        let mut idx: Vec<u32> = self.placement.bundles[rank].gpus.iter().map(|g| g.0).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        {
            let mut free = self.inner.free.lock().unwrap_or_else(|e| e.into_inner());
            for (b, bp) in self.gang.bundles.iter().zip(&self.placement.bundles) {
                if let Some(n) = free.iter_mut().find(|n| n.node == bp.node) {
                    n.give(b, &bp.gpus);
                }
            }
        }
        if let Some(cb) = &self.inner.on_free {
            cb();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::PlacementStrategy;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cap(cpu: f64, gpus: u32) -> NodeCapacity {
        NodeCapacity { cpu, memory: 1e10, gpus: (0..gpus).collect(), custom: BTreeMap::new() }
    }

    #[test]
    fn reservations_are_returned_on_drop_and_notify() {
        let freed = Arc::new(AtomicUsize::new(0));
        let f2 = freed.clone();
        let c = LocalCluster::new(
            vec![cap(2.0, 2)],
            Some(Box::new(move || {
                f2.fetch_add(1, Ordering::SeqCst);
            })),
        );
        let g = GangSpec {
            bundles: vec![Resources { cpu: 1.0, gpu: 1.0, ..Default::default() }],
            strategy: PlacementStrategy::Pack,
        };
        let a = c.try_reserve(&g).unwrap();
        let b = c.try_reserve(&g).unwrap();
        assert_eq!(a.cuda_visible_devices(0), "0");
        assert_eq!(b.cuda_visible_devices(0), "1");
        assert!(c.try_reserve(&g).is_none());
        drop(a);
        assert_eq!(freed.load(Ordering::SeqCst), 1);
        let a2 = c.try_reserve(&g).unwrap();
        assert_eq!(a2.cuda_visible_devices(0), "0");
        let big = GangSpec { bundles: vec![g.bundles[0].clone(); 3], strategy: PlacementStrategy::Pack };
        assert!(!c.could_ever_fit(&big));
        assert!(c.could_ever_fit(&g));
    }
}

//! Gang placement: all bundles of a worker group or none. Pure.

use crate::resources::Resources;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const EPS: f64 = 1e-9;

/// A node of the cluster (an in-process virtual node in local mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

/// How a gang's bundles spread over nodes (Ray's placement-group strategies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementStrategy {
    /// Prefer one node, spill over when it does not fit.
    #[default]
    Pack,
    /// Prefer distinct nodes, share when there are too few.
    Spread,
    /// All bundles on one node, or nothing.
    StrictPack,
    /// Every bundle on a different node, or nothing.
    StrictSpread,
}

impl PlacementStrategy {
    /// Parses Ray's spelling (`"PACK"`) or ours (`"pack"`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pack" => Some(Self::Pack),
            "spread" => Some(Self::Spread),
            "strict_pack" => Some(Self::StrictPack),
            "strict_spread" => Some(Self::StrictSpread),
            _ => None,
        }
    }
}

/// What a worker group needs: one bundle per worker, and how to place them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GangSpec {
    /// One resource bundle per worker, rank order.
    pub bundles: Vec<Resources>,
    /// Placement strategy across nodes.
    pub strategy: PlacementStrategy,
}

/// What a node has free right now; GPUs by device index with the fraction still free.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFree {
    /// The node.
    pub node: NodeId,
    /// Free CPU cores.
    pub cpu: f64,
    /// Free memory in bytes.
    pub memory: f64,
    /// `(device index, free fraction)` for each GPU.
    pub gpus: Vec<(u32, f64)>,
    /// Free custom resources.
    pub custom: BTreeMap<String, f64>,
}

/// Where one bundle goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundlePlacement {
    /// The node.
    pub node: NodeId,
    /// `(device index, fraction taken)` for each GPU the bundle holds.
    pub gpus: Vec<(u32, f64)>,
}

/// Where every bundle of a gang goes, in rank order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// One entry per bundle.
    pub bundles: Vec<BundlePlacement>,
}

impl NodeFree {
    /// Picks GPUs for `need` on this node without taking them.
    fn pick_gpus(&self, need: f64) -> Option<Vec<(u32, f64)>> {
        if need <= EPS {
            return Some(Vec::new());
        }
        if need < 1.0 {
            // Pack fractions: the fullest device that still has room.
            return self
                .gpus
                .iter()
                .filter(|(_, free)| *free + EPS >= need)
                .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                .map(|(i, _)| vec![(*i, need)]);
        }
        let whole: Vec<(u32, f64)> =
            self.gpus.iter().filter(|(_, free)| *free >= 1.0 - EPS).map(|(i, _)| (*i, 1.0)).collect();
        let n = need.round() as usize;
        (whole.len() >= n).then(|| whole[..n].to_vec())
    }

    /// Whether `r` fits here; returns the GPUs it would take.
    pub fn fits(&self, r: &Resources) -> Option<Vec<(u32, f64)>> {
        if self.cpu + EPS < r.cpu || self.memory + EPS < r.memory {
            return None;
        }
        for (k, v) in &r.custom {
            if self.custom.get(k).copied().unwrap_or(0.0) + EPS < *v {
                return None;
            }
        }
        self.pick_gpus(r.gpu)
    }

    /// Takes `r` with the given GPUs.
    pub fn take(&mut self, r: &Resources, gpus: &[(u32, f64)]) {
        self.cpu -= r.cpu;
        self.memory -= r.memory;
        for (k, v) in &r.custom {
            *self.custom.entry(k.clone()).or_insert(0.0) -= v;
        }
        for (idx, amt) in gpus {
            if let Some(g) = self.gpus.iter_mut().find(|(i, _)| i == idx) {
                g.1 -= amt;
            }
        }
    }

    /// Gives `r` back.
    pub fn give(&mut self, r: &Resources, gpus: &[(u32, f64)]) {
        self.cpu += r.cpu;
        self.memory += r.memory;
        for (k, v) in &r.custom {
            *self.custom.entry(k.clone()).or_insert(0.0) += v;
        }
        for (idx, amt) in gpus {
            if let Some(g) = self.gpus.iter_mut().find(|(i, _)| i == idx) {
                g.1 = (g.1 + amt).min(1.0);
            }
        }
    }
}

/// Places every bundle of `gang` on `free` nodes, or returns `None`: never a partial placement.
pub fn place(gang: &GangSpec, free: &[NodeFree]) -> Option<Placement> {
    if gang.bundles.is_empty() {
        return Some(Placement { bundles: Vec::new() });
    }
    match gang.strategy {
        PlacementStrategy::StrictPack => pack_on_one(gang, free),
        PlacementStrategy::Pack => pack_on_one(gang, free).or_else(|| greedy(gang, free, false, false)),
        PlacementStrategy::StrictSpread => greedy(gang, free, true, true),
        PlacementStrategy::Spread => greedy(gang, free, true, false),
    }
}

fn pack_on_one(gang: &GangSpec, free: &[NodeFree]) -> Option<Placement> {
    'nodes: for node in free {
        let mut n = node.clone();
        let mut out = Vec::with_capacity(gang.bundles.len());
        for b in &gang.bundles {
            let Some(g) = n.fits(b) else { continue 'nodes };
            n.take(b, &g);
            out.push(BundlePlacement { node: n.node, gpus: g });
        }
        return Some(Placement { bundles: out });
    }
    None
}

/// Bundle by bundle: with `spread`, nodes this gang has not used yet come first (`strict`: only those).
fn greedy(gang: &GangSpec, free: &[NodeFree], spread: bool, strict: bool) -> Option<Placement> {
    let mut nodes: Vec<NodeFree> = free.to_vec();
    let mut used = vec![0usize; nodes.len()];
    let mut out = Vec::with_capacity(gang.bundles.len());
    for b in &gang.bundles {
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        if spread {
            order.sort_by_key(|&i| used[i]);
            if strict {
                order.retain(|&i| used[i] == 0);
            }
        } else {
            // Pack: nodes already holding part of this gang first.
            order.sort_by_key(|&i| std::cmp::Reverse(used[i]));
        }
        let (i, g) = order.into_iter().find_map(|i| nodes[i].fits(b).map(|g| (i, g)))?;
        nodes[i].take(b, &g);
        used[i] += 1;
        out.push(BundlePlacement { node: nodes[i].node, gpus: g });
    }
    Some(Placement { bundles: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(id: u32, cpu: f64, gpus: u32) -> NodeFree {
        NodeFree {
            node: NodeId(id),
            cpu,
            memory: 1e12,
            gpus: (0..gpus).map(|i| (i, 1.0)).collect(),
            custom: BTreeMap::new(),
        }
    }
    fn bundle(cpu: f64, gpu: f64) -> Resources {
        Resources { cpu, gpu, ..Default::default() }
    }
    fn gang(n: usize, cpu: f64, gpu: f64, strategy: PlacementStrategy) -> GangSpec {
        GangSpec { bundles: vec![bundle(cpu, gpu); n], strategy }
    }

    #[test]
    fn fractional_gpus_pack_onto_one_device_before_the_next() {
        let mut n = node(0, 8.0, 2);
        let mut got = Vec::new();
        for _ in 0..5 {
            let g = n.fits(&bundle(0.0, 0.25)).unwrap();
            n.take(&bundle(0.0, 0.25), &g);
            got.push(g[0].0);
        }
        assert_eq!(got, vec![0, 0, 0, 0, 1]);
        assert!(n.fits(&bundle(0.0, 1.0)).is_none(), "both devices are partly used");
    }

    #[test]
    fn whole_gpus_take_distinct_devices() {
        let n = node(0, 8.0, 4);
        assert_eq!(n.fits(&bundle(1.0, 2.0)).unwrap(), vec![(0, 1.0), (1, 1.0)]);
        assert!(n.fits(&bundle(1.0, 5.0)).is_none());
    }

    #[test]
    fn strategies_over_two_nodes() {
        let nodes = vec![node(0, 4.0, 0), node(1, 4.0, 0)];
        let p = place(&gang(4, 1.0, 0.0, PlacementStrategy::StrictPack), &nodes).unwrap();
        assert!(p.bundles.iter().all(|b| b.node == NodeId(0)));
        let p = place(&gang(2, 1.0, 0.0, PlacementStrategy::StrictSpread), &nodes).unwrap();
        assert_ne!(p.bundles[0].node, p.bundles[1].node);
        assert!(place(&gang(3, 1.0, 0.0, PlacementStrategy::StrictSpread), &nodes).is_none());
        let p = place(&gang(4, 1.0, 0.0, PlacementStrategy::Spread), &nodes).unwrap();
        let on0 = p.bundles.iter().filter(|b| b.node == NodeId(0)).count();
        assert_eq!(on0, 2);
        assert!(place(&gang(5, 1.0, 0.0, PlacementStrategy::StrictPack), &nodes).is_none());
        let p = place(&gang(6, 1.0, 0.0, PlacementStrategy::Pack), &nodes).unwrap();
        assert_eq!(p.bundles.iter().filter(|b| b.node == NodeId(0)).count(), 4);
    }

    #[test]
    fn custom_resources_gate_placement() {
        let mut n = node(0, 4.0, 0);
        n.custom.insert("licence".into(), 1.0);
        let mut b = bundle(1.0, 0.0);
        b.custom.insert("licence".into(), 1.0);
        let g = GangSpec { bundles: vec![b.clone()], strategy: PlacementStrategy::Pack };
        assert!(place(&g, std::slice::from_ref(&n)).is_some());
        let g2 = GangSpec { bundles: vec![b.clone(), b], strategy: PlacementStrategy::Pack };
        assert!(place(&g2, &[n]).is_none());
    }

    fn apply(nodes: &mut [NodeFree], gang: &GangSpec, p: &Placement) {
        for (b, bp) in gang.bundles.iter().zip(&p.bundles) {
            let n = nodes.iter_mut().find(|n| n.node == bp.node).unwrap();
            n.take(b, &bp.gpus);
        }
    }

    proptest! {
        #[test]
        fn placement_is_all_or_nothing_and_never_overcommits(
            caps in prop::collection::vec((0u32..8, 0u32..4), 1..4),
            gangs in prop::collection::vec((1usize..5, 0u32..3, prop::sample::select(vec![0.0, 0.25, 0.5, 1.0, 2.0]), 0usize..4), 1..12),
        ) {
            let strategies = [PlacementStrategy::Pack, PlacementStrategy::Spread, PlacementStrategy::StrictPack, PlacementStrategy::StrictSpread];
            let mut nodes: Vec<NodeFree> = caps.iter().enumerate().map(|(i, (c, g))| node(i as u32, *c as f64, *g)).collect();
            for (n, cpu, gpu, s) in gangs {
                let g = gang(n, cpu as f64, gpu, strategies[s]);
                if let Some(p) = place(&g, &nodes) {
                    prop_assert_eq!(p.bundles.len(), n);
                    if strategies[s] == PlacementStrategy::StrictPack {
                        prop_assert!(p.bundles.iter().all(|b| b.node == p.bundles[0].node));
                    }
                    if strategies[s] == PlacementStrategy::StrictSpread {
                        let mut ids: Vec<_> = p.bundles.iter().map(|b| b.node).collect();
                        ids.sort(); ids.dedup();
                        prop_assert_eq!(ids.len(), n);
                    }
                    for bp in &p.bundles {
                        let total: f64 = bp.gpus.iter().map(|g| g.1).sum();
                        prop_assert!((total - gpu).abs() < 1e-9);
                    }
                    apply(&mut nodes, &g, &p);
                    for nd in &nodes {
                        prop_assert!(nd.cpu >= -1e-9);
                        prop_assert!(nd.gpus.iter().all(|(_, f)| *f >= -1e-9));
                    }
                }
            }
        }
    }
}

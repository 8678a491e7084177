//! The execution runtime: resources, gang placement, the local cluster and worker processes.
//!
//! ```
//! use hyperfleet_train::{GangSpec, LocalCluster, NodeCapacity, PlacementStrategy, Resources};
//! let node = NodeCapacity { cpu: 2.0, memory: 1e9, gpus: vec![0, 1], custom: Default::default() };
//! let cluster = LocalCluster::new(vec![node], None);
//! let gang = GangSpec {
//!     bundles: vec![Resources { cpu: 1.0, gpu: 1.0, ..Default::default() }; 2],
//!     strategy: PlacementStrategy::Pack,
//! };
//! let r = cluster.try_reserve(&gang).expect("both bundles fit");
//! assert_eq!((r.cuda_visible_devices(0), r.cuda_visible_devices(1)), ("0".into(), "1".into()));
//! assert!(cluster.try_reserve(&gang).is_none()); // all or nothing
//! ```

pub mod cluster;
pub mod placement;
pub mod resources;
pub mod worker;

pub use cluster::{LocalCluster, Reservation};
pub use placement::{place, GangSpec, NodeFree, NodeId, Placement, PlacementStrategy};
pub use resources::{GpuSource, NodeCapacity, ResourceError, Resources};
pub use worker::{spawn_worker, GroupId, IoMode, WorkerEvent, WorkerHandle, WorkerKey, WorkerLaunch};

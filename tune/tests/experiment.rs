//! A whole experiment through the library: command trainables, the store, checkpoints, resume.

use hyperfleet_tune::controller::{RunError, RunOptions};
use hyperfleet_tune::spec::parse_file;
use hyperfleet_tune::{query, run_blocking, store};
use std::path::Path;

const TRAIN: &str = r#"#!/bin/sh
# Reports three results, each with a checkpoint directory holding the step.
start=0
[ -n "$HYPERFLEET_CHECKPOINT_DIR" ] && start=$(cat "$HYPERFLEET_CHECKPOINT_DIR/step")
i=$start
while [ $i -lt 3 ]; do
  i=$((i + 1))
  d=$(mktemp -d)
  echo $i > "$d/step"
  echo "@hyperfleet checkpoint $d"
  echo "@hyperfleet report {\"score\": $(( $1 * i )), \"start\": $start}"
  read reply
done
"#;

fn setup(dir: &Path, extra: &str) -> String {
    std::fs::write(dir.join("train.sh"), TRAIN).unwrap();
    std::fs::set_permissions(dir.join("train.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        r#"
[experiment]
name = "e"
storage = "{}"
metric = "score"
mode = "max"
num_samples = 2
max_concurrent_trials = 2
verbose = 0

[trainable]
command = ["./train.sh", "{{k}}"]

[space]
k = {{ grid_search = [1, 2, 3] }}

[checkpoint]
num_to_keep = 2
{extra}
"#,
        dir.join("results").display()
    )
}

fn run(dir: &Path, text: &str, resume: bool) -> Result<hyperfleet_tune::controller::Summary, RunError> {
    let (spec, checked) = parse_file(&dir.join("e.toml"), text).unwrap();
    let mut opts = RunOptions::new();
    opts.cwd = dir.to_path_buf();
    opts.resume = resume;
    run_blocking(spec, checked, opts, None)
}

#[test]
fn runs_every_trial_and_keeps_the_store_and_checkpoints_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let text = setup(dir.path(), "");
    let s = run(dir.path(), &text, false).unwrap();
    assert_eq!(s.status, "finished");
    assert_eq!(s.counts.get("TERMINATED"), Some(&6));
    let info = query::load(&s.experiment_dir).unwrap();
    assert_eq!(info.trials.len(), 6);
    let mut ks: Vec<i64> = info.trials.iter().map(|t| t.config["k"].as_i64().unwrap()).collect();
    ks.sort();
    assert_eq!(ks, vec![1, 1, 2, 2, 3, 3]);
    for t in &info.trials {
        let last = t.last_result.as_ref().unwrap();
        assert_eq!(last["training_iteration"], 3);
        assert_eq!(last["done"], true);
        let (it, path) = t.latest_checkpoint.clone().unwrap();
        assert_eq!(it, 3);
        assert_eq!(std::fs::read_to_string(s.experiment_dir.join(&path).join("step")).unwrap().trim(), "3");
        let conn = store::open(&s.experiment_dir.join("experiment.db"), false).unwrap();
        let live = store::load_checkpoints(&conn, t.seq).unwrap();
        assert_eq!(live.iter().map(|c| c.0).collect::<Vec<_>>(), vec![2, 3], "num_to_keep = 2");
        assert!(!s.experiment_dir.join(&t.logdir).join("checkpoint_000001").exists());
    }
    let best = query::best(&info, "score", hyperfleet_tune::spec::Mode::Max).unwrap();
    assert_eq!(best.config["k"], 3);
    // A finished experiment is not run again without resume, and resuming it runs nothing.
    assert!(matches!(run(dir.path(), &text, false), Err(RunError::Exists(_))));
    let again = run(dir.path(), &text, true).unwrap();
    assert_eq!(again.counts.get("TERMINATED"), Some(&6));
    let conn = store::open(&s.experiment_dir.join("experiment.db"), false).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM results", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 18);
}

#[test]
fn an_impossible_gang_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let text = setup(dir.path(), "[scaling]\nworkers = 2\nresources_per_worker = { gpu = 1 }\n[resources]\ngpu = 1");
    match run(dir.path(), &text, false) {
        Err(RunError::Unplaceable { need, have }) => {
            assert!(need.contains("2 gpu"), "{need}");
            assert!(have.contains("1 gpu"), "{have}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("results/e/experiment.db").exists());
}

//! Hand-computed cases for Ray's ASHA rule (`asha.rs`), through the public API.

use hyperfleet_scheduler::asha::{Asha, AshaConfig};
use hyperfleet_scheduler::{Decision, Rng, SchedResult, TrialEnd, TrialId, TrialScheduler, TrialView};
use rand::SeedableRng;

fn asha(max_t: f64, grace: f64, rf: f64, brackets: usize) -> Asha {
    AshaConfig { max_t, grace_period: grace, reduction_factor: rf, brackets, ..Default::default() }.build().unwrap()
}

fn step(s: &mut Asha, id: u64, t: f64, score: Option<f64>) -> Decision {
    let cfg = Default::default();
    let view = TrialView { id: TrialId(id), config: &cfg, has_checkpoint: false };
    s.on_result(&view, &SchedResult { progress: t, score, queued: 0 }, &mut Rng::seed_from_u64(0))
}

#[test]
fn rung_milestones_follow_rays_formula() {
    assert_eq!(asha(100.0, 1.0, 4.0, 1).rung_milestones(), vec![vec![1.0, 4.0, 16.0, 64.0]]);
    assert_eq!(asha(81.0, 1.0, 3.0, 1).rung_milestones(), vec![vec![1.0, 3.0, 9.0, 27.0, 81.0]]);
    // ln(1000)/ln(10) = 2.9999999999999996: Ray's int() drops the 1000 rung.
    assert_eq!(asha(1000.0, 1.0, 10.0, 1).rung_milestones(), vec![vec![1.0, 10.0, 100.0]]);
    assert_eq!(
        asha(100.0, 2.0, 3.0, 3).rung_milestones(),
        vec![vec![2.0, 6.0, 18.0, 54.0], vec![6.0, 18.0, 54.0], vec![18.0, 54.0]]
    );
    assert_eq!(asha(10.0, 10.0, 2.0, 2).rung_milestones(), vec![vec![10.0], vec![]]);
}

#[test]
fn nan_scores_are_recorded_but_never_cut() {
    let mut s = asha(100.0, 1.0, 2.0, 1);
    for id in 0..3 {
        s.assign_bracket(TrialId(id), 0);
    }
    assert_eq!(step(&mut s, 0, 1.0, Some(f64::NAN)), Decision::Continue);
    assert_eq!(step(&mut s, 1, 1.0, Some(-5.0)), Decision::Continue); // all-NaN rung: no cut-off
    assert_eq!(step(&mut s, 2, 1.0, Some(f64::NAN)), Decision::Continue);
    assert_eq!(s.recorded(0)[0].1.len(), 3);
}

#[test]
fn skipped_milestones_are_filled_one_result_at_a_time() {
    let mut s = asha(100.0, 1.0, 4.0, 1);
    s.assign_bracket(TrialId(0), 0);
    step(&mut s, 0, 5.0, Some(1.0)); // recorded at 4 only
    assert_eq!(s.recorded(0).iter().map(|r| r.1.len()).collect::<Vec<_>>(), vec![0, 1, 0, 0]);
    step(&mut s, 0, 6.0, Some(1.0)); // then at 1
    assert_eq!(s.recorded(0).iter().map(|r| r.1.len()).collect::<Vec<_>>(), vec![1, 1, 0, 0]);
    s.on_trial_complete(
        TrialId(0),
        TrialEnd::Completed,
        Some(&SchedResult { progress: 16.0, score: Some(2.0), queued: 0 }),
    );
    assert_eq!(s.recorded(0)[2].1, vec![(TrialId(0), 2.0)]);
    assert_eq!(s.bracket_of(TrialId(0)), None);
}

#[test]
fn config_is_validated_with_field_names() {
    let bad = |c: AshaConfig| c.build().unwrap_err().field;
    assert_eq!(bad(AshaConfig { max_t: 0.0, ..Default::default() }), "max_t");
    assert_eq!(bad(AshaConfig { grace_period: 200.0, ..Default::default() }), "grace_period");
    assert_eq!(bad(AshaConfig { reduction_factor: 1.0, ..Default::default() }), "reduction_factor");
    assert_eq!(bad(AshaConfig { reduction_factor: 1.0001, ..Default::default() }), "reduction_factor");
    assert_eq!(bad(AshaConfig { brackets: 0, ..Default::default() }), "brackets");
    assert_eq!(bad(AshaConfig { metric: Some("x".into()), ..Default::default() }), "mode");
    assert_eq!(bad(AshaConfig { mode: Some("max".into()), ..Default::default() }), "metric");
    assert_eq!(bad(AshaConfig { metric: Some("x".into()), mode: Some("up".into()), ..Default::default() }), "mode");
    let c: AshaConfig = serde_json::from_str(r#"{"metric": "acc", "mode": "max", "max_t": 9}"#).unwrap();
    assert_eq!((c.objective(), c.time_attr(), c.max_t), (Some(("acc", true)), "training_iteration", 9.0));
    assert!(serde_json::from_str::<AshaConfig>(r#"{"grace": 1}"#).is_err());
}

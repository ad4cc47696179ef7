//! Every built-in's seeds 1–3 replay to the fingerprints recorded before the engine learnt
//! that work takes time (`tests/data/fingerprints-before-costs.txt`, made by the binary of
//! the commit before storage and processing costs): with zero costs, the default, nothing
//! may move. A change that moves a fingerprint on purpose regenerates the file and says
//! why in its commit. The only such change so far: the seven `cap-*` built-ins gained a
//! disk (a 1-4 ms sync), so their lines are those of the commit that gave it to them; the
//! four `dynamo-contended-set-*` built-ins came later, with a disk, and their lines are
//! their first runs.

use scenarios::library;
use scenarios::run_cmd::run_scenario;

#[test]
fn zero_costs_leave_every_built_in_fingerprint_unchanged() {
    let recorded = include_str!("data/fingerprints-before-costs.txt");
    let mut checked = 0;
    for line in recorded.lines() {
        let [name, seed, fingerprint] = line.split(' ').collect::<Vec<_>>()[..] else { panic!("bad line {line:?}") };
        let scenario = library::resolve(name).unwrap();
        let outcome = run_scenario(&scenario, seed.parse().unwrap(), None).unwrap();
        assert_eq!(outcome.fingerprint, fingerprint, "dsim run {name} --seed {seed}");
        checked += 1;
    }
    assert_eq!(checked, library::names().len() * 3, "every built-in, seeds 1-3");
}

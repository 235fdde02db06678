//! How fast dispatch finds the nearest available driver among 100,000 spread over Seoul, and what
//! keeping that index current costs: a driver going on and off line, and loading it at start-up.
//!
//! `cargo bench -p tanda-dispatch --bench nearest`. Before timing, the index's answers are checked
//! against a linear scan, so the figures are for the right answer.

use std::collections::{BTreeSet, HashSet};
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tanda_core::geo::LatLng;
use tanda_core::id::ClientId;
use tanda_dispatch::AvailableDrivers;

const DRIVERS: usize = 100_000;
/// What `store::CANDIDATES` asks the index for on each offer.
const CANDIDATES: usize = 8;
/// Pickups cycled through, so successive searches touch different parts of the tree.
const PICKUPS: usize = 4096;
/// Drivers who already turned the dispatch down, in the "declined" case.
const DECLINED: usize = 3;
const CHECKS: usize = 100;
/// Dispatch's default pickup radius: only drivers this close are candidates.
const RADIUS_M: f64 = 5_000.0;

fn seoul(rng: &mut StdRng) -> LatLng {
    LatLng::parse(
        rng.random_range(37.45..37.70),
        rng.random_range(126.80..127.20),
    )
    .expect("Seoul is on Earth")
}

fn driver_id(n: usize) -> ClientId {
    ClientId::parse(&format!("driver-{n}")).expect("a valid id")
}

struct Fixture {
    drivers: Vec<(ClientId, LatLng)>,
    index: AvailableDrivers,
    pickups: Vec<LatLng>,
    /// Per pickup, its `DECLINED` nearest drivers.
    declined: Vec<BTreeSet<ClientId>>,
}

impl Fixture {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(1);
        let drivers: Vec<_> = (0..DRIVERS)
            .map(|n| (driver_id(n), seoul(&mut rng)))
            .collect();
        let index = AvailableDrivers::new(drivers.iter().cloned());
        let pickups: Vec<_> = (0..PICKUPS).map(|_| seoul(&mut rng)).collect();
        let declined = pickups
            .iter()
            .map(|&p| {
                index
                    .nearest(p, RADIUS_M, DECLINED, |_| false)
                    .into_iter()
                    .collect()
            })
            .collect();
        let fixture = Self {
            drivers,
            index,
            pickups,
            declined,
        };
        fixture.check();
        fixture
    }

    /// What dispatch does when it offers a ride (`Store::offer_nearest_driver`).
    fn offer_candidates(&self, pickup: LatLng, refused: &BTreeSet<ClientId>) -> Vec<ClientId> {
        let tried: HashSet<ClientId> = HashSet::new();
        self.index.nearest(pickup, RADIUS_M, CANDIDATES, |d| {
            refused.contains(d) || tried.contains(d)
        })
    }

    /// The `n` drivers nearest to `to` by the index's own distance (chord between unit vectors),
    /// found by looking at every one of them.
    fn scan(&self, to: LatLng, n: usize) -> Vec<ClientId> {
        let q = to.unit_vector();
        let mut by_distance: Vec<(f64, &ClientId)> = self
            .drivers
            .iter()
            .map(|(id, at)| {
                let p = at.unit_vector();
                let d2 = (0..3).map(|i| (p[i] - q[i]).powi(2)).sum();
                (d2, id)
            })
            .collect();
        by_distance.select_nth_unstable_by(n, |a, b| a.0.total_cmp(&b.0));
        by_distance.truncate(n);
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_distance.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// Panics unless the index agrees with a linear scan, with and without declined drivers.
    fn check(&self) {
        for (pickup, declined) in self.pickups.iter().zip(&self.declined).take(CHECKS) {
            let expected = self.scan(*pickup, DECLINED + CANDIDATES);
            let none = self.offer_candidates(*pickup, &BTreeSet::new());
            assert_eq!(none, expected[..CANDIDATES], "nearest to {pickup:?}");
            let skipping = self.offer_candidates(*pickup, declined);
            assert_eq!(
                skipping,
                expected[DECLINED..],
                "nearest to {pickup:?} but {declined:?}"
            );
        }
    }
}

fn nearest(c: &mut Criterion) {
    let f = Fixture::new();
    let mut group = c.benchmark_group("nearest among 100k");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let nobody = BTreeSet::new();
    let mut i = 0;
    group.bench_function("offer: 8 candidates", |b| {
        b.iter(|| {
            i = (i + 1) % PICKUPS;
            f.offer_candidates(black_box(f.pickups[i]), black_box(&nobody))
        });
    });
    group.bench_function("offer: 8 candidates, nearest 3 declined", |b| {
        b.iter(|| {
            i = (i + 1) % PICKUPS;
            f.offer_candidates(black_box(f.pickups[i]), black_box(&f.declined[i]))
        });
    });
    group.bench_function("nearest 1", |b| {
        b.iter(|| {
            i = (i + 1) % PICKUPS;
            f.index
                .nearest(black_box(f.pickups[i]), RADIUS_M, 1, |_| false)
        });
    });
    group.finish();

    let mut group = c.benchmark_group("index of 100k");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let newcomer = driver_id(DRIVERS);
    group.bench_function("driver online then offline", |b| {
        b.iter(|| {
            i = (i + 1) % PICKUPS;
            f.index
                .set(black_box(newcomer.clone()), Some(black_box(f.pickups[i])));
            f.index.set(black_box(newcomer.clone()), None);
        });
    });
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("build at start-up", |b| {
        b.iter_batched(
            || f.drivers.clone(),
            AvailableDrivers::new,
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, nearest);
criterion_main!(benches);

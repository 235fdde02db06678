//! The available drivers by position, in memory, so that finding the nearest one to a pickup takes
//! microseconds even with a hundred thousand drivers.
//!
//! Points are [`LatLng::unit_vector`]s in an R-tree: straight-line distance between points on the
//! unit sphere grows with great-circle distance, so the nearest point in 3-D is the nearest driver
//! on Earth. The database stays the truth: the index changes after this instance's commits, and
//! whoever offers a ride re-checks the candidate inside its unit of work. Other instances of
//! dispatch commit too, unseen: a search that finds nobody catches up from the database first.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rstar::RTree;
use rstar::primitives::GeomWithData;
use tanda_core::geo::LatLng;
use tanda_core::id::ClientId;

type Entry = GeomWithData<[f64; 3], ClientId>;

#[derive(Default)]
pub struct AvailableDrivers {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tree: RTree<Entry>,
    /// Where each indexed driver is, to find its entry again.
    points: HashMap<ClientId, [f64; 3]>,
}

impl AvailableDrivers {
    pub fn new(drivers: impl IntoIterator<Item = (ClientId, LatLng)>) -> Self {
        let points: HashMap<_, _> = drivers
            .into_iter()
            .map(|(id, at)| (id, at.unit_vector()))
            .collect();
        let entries = points
            .iter()
            .map(|(id, p)| Entry::new(*p, id.clone()))
            .collect();
        Self {
            inner: Mutex::new(Inner {
                tree: RTree::bulk_load(entries),
                points,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The index is only ever changed by whole insert/remove calls: still valid after a panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a driver as available at `at`, or (`None`) as not available.
    pub fn set(&self, id: ClientId, at: Option<LatLng>) {
        let mut inner = self.lock();
        if let Some(old) = inner.points.remove(&id) {
            inner.tree.remove(&Entry::new(old, id.clone()));
        }
        if let Some(at) = at {
            let point = at.unit_vector();
            inner.tree.insert(Entry::new(point, id.clone()));
            inner.points.insert(id, point);
        }
    }

    /// Up to `limit` available drivers within `within_m` metres of `to`, nearest first, leaving
    /// out those `skip`s.
    pub fn nearest(
        &self,
        to: LatLng,
        within_m: f64,
        limit: usize,
        skip: impl Fn(&ClientId) -> bool,
    ) -> Vec<ClientId> {
        let max_chord_2 = chord_2(within_m);
        self.lock()
            .tree
            .nearest_neighbor_iter_with_distance_2(&to.unit_vector())
            .take_while(|(_, d2)| *d2 <= max_chord_2)
            .map(|(e, _)| &e.data)
            .filter(|id| !skip(id))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// The squared straight-line distance, on the unit sphere, between two points `metres` apart on
/// Earth's surface: what the tree measures, for a great-circle radius.
fn chord_2(metres: f64) -> f64 {
    let angle = (metres / tanda_core::geo::EARTH_RADIUS_M).min(std::f64::consts::PI);
    let chord = 2.0 * (angle / 2.0).sin();
    chord * chord
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }
    fn at(lat: f64, lng: f64) -> LatLng {
        LatLng::parse(lat, lng).unwrap()
    }

    #[test]
    fn nearest_first_skipping_and_following_changes() {
        let city_hall = at(37.5663, 126.9779);
        let drivers = AvailableDrivers::new([
            (id("far"), at(37.4979, 127.0276)),
            (id("near"), at(37.5665, 126.9780)),
        ]);
        drivers.set(id("mid"), Some(at(37.5700, 126.9850)));
        assert_eq!(
            drivers.nearest(city_hall, f64::INFINITY, 10, |_| false),
            [id("near"), id("mid"), id("far")]
        );
        assert_eq!(
            drivers.nearest(city_hall, f64::INFINITY, 1, |d| *d == id("near")),
            [id("mid")]
        );

        drivers.set(id("near"), None);
        drivers.set(id("far"), Some(at(37.5664, 126.9779)));
        assert_eq!(
            drivers.nearest(city_hall, f64::INFINITY, 10, |_| false),
            [id("far"), id("mid")]
        );
    }

    #[test]
    fn only_drivers_within_the_radius() {
        let city_hall = at(37.5663, 126.9779);
        let drivers = AvailableDrivers::new([
            (id("mid"), at(37.5700, 126.9850)),   // ~750 m
            (id("busan"), at(35.1151, 129.0415)), // ~325 km
        ]);
        assert_eq!(
            drivers.nearest(city_hall, 5_000.0, 10, |_| false),
            [id("mid")]
        );
        assert!(drivers.nearest(city_hall, 500.0, 10, |_| false).is_empty());
        let busan = at(35.1151, 129.0415).distance_m(city_hall);
        assert_eq!(
            drivers.nearest(city_hall, busan + 1.0, 10, |_| false).len(),
            2
        );
        assert_eq!(
            drivers.nearest(city_hall, busan - 1.0, 10, |_| false).len(),
            1
        );
    }

    #[test]
    fn nearest_across_the_antimeridian() {
        let fiji = at(-17.0, 179.9);
        let drivers = AvailableDrivers::new([
            (id("east"), at(-17.0, -179.9)),
            (id("west"), at(-17.0, 179.0)),
        ]);
        assert_eq!(
            drivers.nearest(fiji, f64::INFINITY, 1, |_| false),
            [id("east")]
        );
    }
}

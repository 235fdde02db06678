//! Finding the nearest available drivers to a pickup: a query of the drivers table, inside the
//! unit of work that makes the offer.
//!
//! Why the database and not an index in memory: several instances of dispatch register, move and
//! match drivers at once, and each commit is visible to the next query of every instance. An index
//! in each instance's memory sees only that instance's commits, so an instance offered the ride to
//! the nearest driver *it* knew of, not the nearest one (BENCHMARKS.md "Coherent matching" has the
//! measurements behind the choice). The partial index `drivers_available_at` on `(lat, lng)`
//! holds only available drivers.
//!
//! The search asks for the drivers inside a box around the pickup that contains the circle of
//! the current radius, keeps those inside the circle, nearest first, and widens the radius
//! fourfold until someone is found or the pickup radius is reached. Everyone within the circle is
//! inside the box, so the answer is exact; most searches in a city end at the first radius.

use tanda_core::geo::{EARTH_RADIUS_M, LatLng};
use tanda_core::id::ClientId;
use tanda_core::sql::{Conn, query};

use crate::domain::DriverStatus;
use crate::error::Error;

/// The first radius searched, in metres.
const FIRST_RADIUS_M: f64 = 250.0;

/// Up to `limit` available drivers within `within_m` metres of `to`, nearest first (ties by id),
/// leaving out those `skip`s. Fewer than `limit` when fewer are that near, or when the nearest
/// ones found are fewer than `limit` within a smaller radius: ask again, skipping these, for more.
pub async fn nearest_available(
    conn: &mut Conn<'_>,
    to: LatLng,
    within_m: f64,
    limit: usize,
    skip: impl Fn(&ClientId) -> bool,
) -> Result<Vec<ClientId>, Error> {
    let mut radius = FIRST_RADIUS_M.min(within_m);
    loop {
        let mut found: Vec<(f64, ClientId)> = in_box(conn, &Area::around(to, radius))
            .await?
            .into_iter()
            .filter(|(id, _)| !skip(id))
            .map(|(id, at)| (at.distance_m(to), id))
            .filter(|(d, _)| *d <= radius)
            .collect();
        if !found.is_empty() || radius >= within_m {
            found.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            return Ok(found.into_iter().take(limit).map(|(_, id)| id).collect());
        }
        radius = (radius * 4.0).min(within_m);
    }
}

/// The available drivers inside `area`, and where they are: a query for each of its longitude
/// ranges (one but across the antimeridian), as an `OR` of the two made SQLite's search slower.
async fn in_box(conn: &mut Conn<'_>, area: &Area) -> Result<Vec<(ClientId, LatLng)>, Error> {
    let mut found = Vec::new();
    for (west, east) in area.lng.iter().filter(|(west, east)| west <= east) {
        let rows = query(AVAILABLE_IN_BOX.as_str())
            .bind(area.lat.0)
            .bind(area.lat.1)
            .bind(*west)
            .bind(*east)
            .fetch_all(&mut *conn)
            .await?;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let corrupt = || Error::Corrupt(format!("driver {id}"));
            let at =
                LatLng::parse(row.try_get("lat")?, row.try_get("lng")?).map_err(|_| corrupt())?;
            found.push((ClientId::parse(&id).map_err(|_| corrupt())?, at));
        }
    }
    Ok(found)
}

/// The status is written into the statement, not bound: only then may the planner use the
/// partial index, whose predicate names the same literal.
static AVAILABLE_IN_BOX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT id, lat, lng FROM drivers
         WHERE status = '{}' AND lat BETWEEN $1 AND $2 AND lng BETWEEN $3 AND $4",
        DriverStatus::Available.as_str()
    )
});

/// A box of latitudes and longitudes around a circle on the Earth: one latitude range, and two
/// longitude ranges because a box may cross the antimeridian (the second is empty otherwise).
#[derive(Debug, PartialEq)]
struct Area {
    lat: (f64, f64),
    lng: [(f64, f64); 2],
}

/// Widens a box by this much in degrees (about 1 cm), so that rounding never leaves out a point
/// on the circle.
const MARGIN_DEG: f64 = 1e-7;
const EMPTY: (f64, f64) = (1.0, 0.0);
const ALL_LNG: (f64, f64) = (-180.0, 180.0);

impl Area {
    /// The box holding every point within `radius_m` of `centre`.
    fn around(centre: LatLng, radius_m: f64) -> Self {
        let angle = radius_m / EARTH_RADIUS_M;
        let dlat = angle.to_degrees() + MARGIN_DEG;
        let lat = (
            (centre.lat - dlat).max(-90.0),
            (centre.lat + dlat).min(90.0),
        );
        // The circle's widest longitude is asin(sin(angle) / cos(lat)) away; over a pole, or when
        // that exceeds a right angle, every longitude is in it.
        let widest = angle.sin() / centre.lat.to_radians().cos();
        if lat.0 <= -90.0 || lat.1 >= 90.0 || angle >= std::f64::consts::FRAC_PI_2 || widest >= 1.0
        {
            return Self {
                lat,
                lng: [ALL_LNG, EMPTY],
            };
        }
        let dlng = widest.asin().to_degrees() + MARGIN_DEG;
        let (west, east) = (centre.lng - dlng, centre.lng + dlng);
        let lng = if west < -180.0 {
            [(-180.0, east), (west + 360.0, 180.0)]
        } else if east > 180.0 {
            [(west, 180.0), (-180.0, east - 360.0)]
        } else {
            [(west, east), EMPTY]
        };
        Self { lat, lng }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(lat: f64, lng: f64) -> LatLng {
        LatLng::parse(lat, lng).unwrap()
    }

    impl Area {
        /// What the query's `WHERE` asks of a driver's position.
        fn contains(&self, at: LatLng) -> bool {
            let within = |(lo, hi): (f64, f64), x: f64| lo <= x && x <= hi;
            within(self.lat, at.lat) && self.lng.iter().any(|r| within(*r, at.lng))
        }
    }

    #[test]
    fn a_box_in_the_city_is_one_range_of_each() {
        let area = Area::around(at(37.5663, 126.9779), 1_000.0);
        assert_eq!(area.lng[1], EMPTY);
        // 1 km is 0.008993° of latitude, and at 37.57° N 0.011346° of longitude.
        assert!((area.lat.1 - 37.5663 - 0.008993).abs() < 1e-6, "{area:?}");
        assert!(
            (area.lng[0].1 - 126.9779 - 0.011346).abs() < 1e-6,
            "{area:?}"
        );
    }

    #[test]
    fn a_box_across_the_antimeridian_or_over_a_pole() {
        let fiji = Area::around(at(-17.0, 179.9), 50_000.0);
        assert!(fiji.contains(at(-17.0, -179.9)) && fiji.contains(at(-17.0, 179.5)));
        assert!(!fiji.contains(at(-17.0, 178.0)) && !fiji.contains(at(-17.0, -178.0)));
        let west = Area::around(at(-17.0, -179.9), 50_000.0);
        assert!(west.contains(at(-17.0, 179.9)) && !west.contains(at(-17.0, 178.0)));
        let pole = Area::around(at(89.9, 0.0), 50_000.0);
        assert_eq!(pole.lng, [ALL_LNG, EMPTY]);
        assert!(pole.contains(at(89.9, 180.0)));
    }

    proptest! {
        /// Every point within the radius is inside the box: the search can miss nobody.
        #[test]
        fn the_box_holds_the_whole_circle(
            lat in -89.99f64..89.99, lng in -180.0f64..180.0,
            radius in 1.0f64..3_000_000.0, bearing in 0.0f64..360.0, part in 0.0f64..=1.0,
        ) {
            let centre = at(lat, lng);
            let point = destination(centre, bearing, radius * part);
            prop_assume!(point.distance_m(centre) <= radius);
            prop_assert!(Area::around(centre, radius).contains(point), "{point:?}");
        }
    }

    /// The point `metres` away from `from` on the initial `bearing` (degrees from north).
    fn destination(from: LatLng, bearing: f64, metres: f64) -> LatLng {
        let (d, b) = (metres / EARTH_RADIUS_M, bearing.to_radians());
        let (p1, l1) = (from.lat.to_radians(), from.lng.to_radians());
        let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
        let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
        let lng = (l2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
        at(p2.to_degrees().clamp(-90.0, 90.0), lng)
    }
}

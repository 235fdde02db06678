//! Coordinates and distances on the Earth: parsed once at the edge, exact enough for a city.

use serde::{Deserialize, Serialize};

/// Mean Earth radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A validated WGS84 position: finite, latitude in [-90, 90], longitude in [-180, 180].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLng {
    pub lat: f64,
    pub lng: f64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidLatLng {
    #[error("lat must be a number between -90 and 90")]
    Lat,
    #[error("lng must be a number between -180 and 180")]
    Lng,
}

impl LatLng {
    pub fn parse(lat: f64, lng: f64) -> Result<Self, InvalidLatLng> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(InvalidLatLng::Lat);
        }
        if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
            return Err(InvalidLatLng::Lng);
        }
        Ok(Self { lat, lng })
    }

    /// Great-circle (haversine) distance in metres.
    pub fn distance_m(self, other: LatLng) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lng - self.lng).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }

    /// The point on the unit sphere. Straight-line (chord) distance between two such points grows
    /// monotonically with great-circle distance, so a 3-D nearest-neighbour search is exact.
    pub fn unit_vector(self) -> [f64; 3] {
        let (lat, lng) = (self.lat.to_radians(), self.lng.to_radians());
        [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seoul_city_hall_to_gangnam_station() {
        let city_hall = LatLng::parse(37.5663, 126.9779).unwrap();
        let gangnam = LatLng::parse(37.4979, 127.0276).unwrap();
        let d = city_hall.distance_m(gangnam);
        assert!((8_500.0..8_800.0).contains(&d), "{d}");
    }

    #[test]
    fn rejects_out_of_range_and_nan() {
        assert_eq!(LatLng::parse(91.0, 0.0), Err(InvalidLatLng::Lat));
        assert_eq!(LatLng::parse(0.0, -180.5), Err(InvalidLatLng::Lng));
        assert_eq!(LatLng::parse(f64::NAN, 0.0), Err(InvalidLatLng::Lat));
    }
}

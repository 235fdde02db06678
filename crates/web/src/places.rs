//! Named places around Seoul, for the pickup and drop-off pickers and the demo fleet. Their
//! names here are the ones bookings carry; the pages show them in their own language (`i18n`).

/// A well-known place: what people call it and where it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// A short id used in forms and URLs.
    pub key: &'static str,
    pub name: &'static str,
    pub lat: f64,
    pub lng: f64,
}

const fn place(key: &'static str, name: &'static str, lat: f64, lng: f64) -> Place {
    Place {
        key,
        name,
        lat,
        lng,
    }
}

/// Landmarks spread over the city, so rides have a range of lengths.
pub const SEOUL: [Place; 12] = [
    place("seoul-station", "Seoul Station", 37.5547, 126.9707),
    place("gangnam-station", "Gangnam Station", 37.4979, 127.0276),
    place("hongdae", "Hongik University", 37.5572, 126.9245),
    place("myeongdong", "Myeongdong", 37.5636, 126.9826),
    place("itaewon", "Itaewon", 37.5345, 126.9946),
    place("jamsil", "Lotte World Tower", 37.5126, 127.1025),
    place("yeouido", "Yeouido IFC", 37.5252, 126.9255),
    place("coex", "COEX", 37.5118, 127.0592),
    place("gimpo-airport", "Gimpo Airport", 37.5587, 126.7945),
    place("gyeongbokgung", "Gyeongbokgung Palace", 37.5796, 126.9770),
    place("ddp", "Dongdaemun Design Plaza", 37.5665, 127.0092),
    place("snu", "Seoul National University", 37.4599, 126.9519),
];

/// A landmark as a form's `<option>`: its key, and its name in the page's language.
pub(crate) struct PlaceOption {
    pub key: &'static str,
    pub label: String,
}

impl PlaceOption {
    /// Every landmark, named in `tr`'s language.
    pub(crate) fn all(tr: crate::i18n::Tr) -> Vec<PlaceOption> {
        SEOUL
            .iter()
            .map(|p| PlaceOption {
                key: p.key,
                label: tr.place(p.name),
            })
            .collect()
    }
}

/// The place with this key.
pub fn by_key(key: &str) -> Option<&'static Place> {
    SEOUL.iter().find(|p| p.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_places_are_in_seoul() {
        for (i, p) in SEOUL.iter().enumerate() {
            assert!(SEOUL[i + 1..].iter().all(|q| q.key != p.key), "{}", p.key);
            assert!(
                (37.4..37.7).contains(&p.lat) && (126.7..127.2).contains(&p.lng),
                "{}",
                p.key
            );
            assert_eq!(by_key(p.key), Some(p));
        }
        assert_eq!(by_key("atlantis"), None);
    }
}

//! The languages Tanda speaks and how it writes money and times in each.
//!
//! Korean is the default: the seeds' users are in Seoul. A receiver's language is chosen at sign-up
//! (`locale`) and a page's from the signed-in user's choice or the browser's `Accept-Language`.
//! Times are shown in Seoul time (KST, UTC+9, which has no daylight saving), whatever the language.
//! The words themselves live in each crate's Project Fluent files; this module holds only what both
//! notify and the pages need to agree on.

use std::time::{Duration, UNIX_EPOCH};

use crate::Timestamp;

/// A language Tanda speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    Ko,
    En,
}

/// Seoul's offset from UTC, in milliseconds.
const KST_OFFSET_MS: i64 = 9 * 3600 * 1000;

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::Ko, Locale::En];

    /// The BCP 47 tag: `ko` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Ko => "ko",
            Locale::En => "en",
        }
    }

    /// `ko` or `en` exactly (as the API takes it); anything else is `None`.
    pub fn parse(s: &str) -> Option<Locale> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The best of Tanda's languages for an `Accept-Language` header (RFC 9110 §12.5.4): the
    /// highest-weighted range whose primary tag is one Tanda speaks; Korean when none is.
    pub fn negotiate(accept_language: &str) -> Locale {
        let mut best: Option<(u16, Locale)> = None;
        for range in accept_language.split(',').take(32) {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1000), parse_weight);
            let (Some(weight), Some(locale)) = (weight, primary(tag)) else {
                continue;
            };
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, locale));
            }
        }
        best.map_or(Locale::default(), |(_, l)| l)
    }

    /// An amount of won: `12,300원` in Korean, `₩12,300` in English.
    pub fn won(self, amount: i64) -> String {
        let sign = if amount < 0 { "-" } else { "" };
        let grouped = group_thousands(amount.unsigned_abs());
        match self {
            Locale::Ko => format!("{sign}{grouped}원"),
            Locale::En => format!("{sign}₩{grouped}"),
        }
    }

    /// A moment in Seoul time: `12월 7일 15:04` in Korean, `7 Dec 15:04` in English.
    pub fn time(self, at: Timestamp) -> String {
        let local = UNIX_EPOCH + Duration::from_millis((at + KST_OFFSET_MS).max(0) as u64);
        // `2026-12-07T15:04:05Z`, read as Seoul's wall clock.
        let iso = humantime::format_rfc3339_seconds(local).to_string();
        let (month, day, hm) = (&iso[5..7], &iso[8..10], &iso[11..16]);
        let (month, day): (usize, u32) = (month.parse().unwrap_or(1), day.parse().unwrap_or(1));
        match self {
            Locale::Ko => format!("{month}월 {day}일 {hm}"),
            Locale::En => format!("{day} {} {hm}", MONTHS[month.clamp(1, 12) - 1]),
        }
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The language of a tag such as `ko-KR` or `en`; `None` for one Tanda does not speak.
fn primary(tag: &str) -> Option<Locale> {
    let lang = tag.split('-').next()?.to_ascii_lowercase();
    Locale::parse(&lang)
}

/// A quality value `0`–`1` with up to three decimals, in thousandths.
fn parse_weight(q: &str) -> Option<u16> {
    let q = q.trim();
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_takes_the_heaviest_language_tanda_speaks() {
        assert_eq!(Locale::negotiate("en-US,en;q=0.9,ko;q=0.8"), Locale::En);
        assert_eq!(Locale::negotiate("ko-KR,ko;q=0.9,en;q=0.8"), Locale::Ko);
        assert_eq!(Locale::negotiate("fr, en;q=0.5"), Locale::En);
        assert_eq!(Locale::negotiate("ko;q=0.2, EN;q=0.7"), Locale::En);
        assert_eq!(Locale::negotiate("en;q=0, fr"), Locale::Ko);
        assert_eq!(Locale::negotiate("fr, de"), Locale::Ko);
        assert_eq!(Locale::negotiate(""), Locale::Ko);
        assert_eq!(Locale::negotiate("en;q=2"), Locale::Ko);
    }

    #[test]
    fn won_is_grouped_and_placed_per_language() {
        assert_eq!(Locale::Ko.won(12_300), "12,300원");
        assert_eq!(Locale::En.won(12_300), "₩12,300");
        assert_eq!(Locale::En.won(0), "₩0");
        assert_eq!(Locale::Ko.won(1_234_567), "1,234,567원");
        assert_eq!(Locale::En.won(-100), "-₩100");
    }

    #[test]
    fn times_are_seoul_wall_clock() {
        // 2026-12-07T06:04:00Z is 15:04 in Seoul.
        let at = crate::clock::parse_rfc3339("2026-12-07T06:04:00Z").unwrap();
        assert_eq!(Locale::Ko.time(at), "12월 7일 15:04");
        assert_eq!(Locale::En.time(at), "7 Dec 15:04");
        // 20:00 UTC on 31 December is already New Year's Day in Seoul.
        let at = crate::clock::parse_rfc3339("2026-12-31T20:00:00Z").unwrap();
        assert_eq!(Locale::En.time(at), "1 Jan 05:00");
    }
}

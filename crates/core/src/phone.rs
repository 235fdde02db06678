//! A phone number, with one rule wherever Tanda takes one: a customer's on a booking, a driver's
//! on registration, a user's at sign-up. Up to 15 digits (the longest an international number
//! has), at least 7 (the shortest a local one has), written as people write them: spaces, `+`,
//! `-`, `(` and `)` allowed, at most 20 characters in all. Leading and trailing spaces are dropped.

use std::fmt;

/// The longest a phone number may be written, separators included.
pub const MAX_CHARS: usize = 20;
/// How many digits a phone number may have.
pub const DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be 7-15 digits, at most 20 characters, optionally with spaces, '+', '-', '(' and ')'"
)]
pub struct InvalidPhone;

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, InvalidPhone> {
        let value = raw.trim();
        let digits = value.chars().filter(char::is_ascii_digit).count();
        let allowed = |c: char| c.is_ascii_digit() || " +-()".contains(c);
        if DIGITS.contains(&digits) && value.len() <= MAX_CHARS && value.chars().all(allowed) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidPhone)
        }
    }

    /// A number read back from storage, where it was checked when it was written (under the rule
    /// of its day): it is not refused now.
    pub fn stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_people_write_them_are_taken() {
        for ok in [
            "010-1234-5678",
            "01012345678",
            "+82 10 1234 5678",
            "+82 (10) 1234-5678",
            "  02-123-4567  ",
            "1234567",
            "+82 (10)1234-5678901",
        ] {
            let phone = Phone::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
            assert_eq!(phone.as_str(), ok.trim());
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "   ",
            "112",
            "123456",
            "0000000000000000",
            "+82 (10) 1234 - 56789",
            "010-1234-567x",
            "call me",
            "010.1234.5678",
            "010\n1234\n5678",
        ] {
            assert_eq!(Phone::parse(bad), Err(InvalidPhone), "{bad:?}");
        }
    }

    #[test]
    fn the_limits_themselves_are_allowed() {
        assert!(Phone::parse(&"1".repeat(7)).is_ok());
        assert!(Phone::parse(&"1".repeat(15)).is_ok());
        assert!(Phone::parse(&"1".repeat(6)).is_err());
        assert!(Phone::parse(&"1".repeat(16)).is_err());
        let twenty = "+82 (10)1234-5678901";
        assert_eq!(twenty.len(), MAX_CHARS);
        assert!(Phone::parse(twenty).is_ok());
        assert!(Phone::parse(&format!("{twenty} ")).is_ok(), "trimmed first");
        assert!(Phone::parse(&format!("({twenty})")).is_err());
    }
}

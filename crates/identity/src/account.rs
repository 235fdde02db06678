//! An account and the parsing of a sign-up: what a user id, a password, a role and a locale may
//! be. Passwords are hashed with Argon2id (the parameters OWASP recommends, carried in the PHC
//! string so that they can be raised later) and never kept, logged or shown in any other form.

use argon2::Argon2;
use argon2::{PasswordHash, PasswordHasher, PasswordVerifier};
use tanda_core::auth::Role;
use tanda_core::id::ClientId;
use tanda_core::phone::Phone;

use crate::Error;

/// Shorter passwords are refused (`weak_password`).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer ones too: hashing cost must not be the caller's to choose.
pub const MAX_PASSWORD_BYTES: usize = 256;

pub use tanda_core::locale::Locale;

/// A password as typed: only ever hashed or checked against a hash.
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Password, Error> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Error::invalid(
                "weak_password",
                format!("password must have at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(Error::invalid(
                "invalid_password",
                format!("password must be at most {MAX_PASSWORD_BYTES} bytes"),
            ));
        }
        Ok(Password(raw))
    }

    /// A password the caller typed at sign-in, not judged (a wrong one simply fails to match).
    pub fn typed(raw: String) -> Password {
        Password(raw)
    }

    /// The password itself: only for showing a generated one, once.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The Argon2id PHC string, with a fresh salt. CPU-heavy: call it off the async workers.
    pub fn hash(&self) -> String {
        Argon2::default()
            .hash_password(self.0.as_bytes())
            .expect("Argon2id with default parameters hashes any password under the length cap")
            .to_string()
    }

    /// Whether this is the password `phc` was made from. CPU-heavy, like [`Password::hash`].
    pub fn matches(&self, phc: &str) -> bool {
        self.0.len() <= MAX_PASSWORD_BYTES
            && PasswordHash::new(phc).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(self.0.as_bytes(), &hash)
                    .is_ok()
            })
    }
}

/// What a sign-up names.
pub struct NewAccount {
    pub user_id: ClientId,
    pub name: String,
    pub phone: String,
    pub role: Role,
    pub locale: Locale,
}

/// A stored account.
#[derive(Debug, Clone)]
pub struct Account {
    pub user_id: ClientId,
    pub password_hash: String,
    pub role: Role,
    pub locale: Locale,
}

/// Trimmed free text of 1..=`max` characters without control characters.
pub fn text(field: &str, raw: &str, max: usize) -> Result<String, Error> {
    let value = raw.trim();
    let len = value.chars().count();
    if len == 0 || len > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            &format!("invalid_{field}"),
            format!("{field} must be 1-{max} characters of text"),
        ));
    }
    Ok(value.to_owned())
}

/// A phone number, by the one rule Tanda has (`tanda_core::phone`).
pub fn phone(raw: &str) -> Result<String, Error> {
    Phone::parse(raw)
        .map(Phone::into_string)
        .map_err(|e| Error::invalid("invalid_phone", format!("phone {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_password_only() {
        let p = Password::parse("correct horse".to_owned()).unwrap();
        let phc = p.hash();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(p.matches(&phc));
        assert!(!Password::typed("correct horsE".to_owned()).matches(&phc));
        assert!(!p.matches("not a hash"));
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        let short = Password::parse("1234567".to_owned()).err().unwrap();
        assert_eq!(short.code(), "weak_password");
        assert!(Password::parse("12345678".to_owned()).is_ok());
        assert!(Password::parse("x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}

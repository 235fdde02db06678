//! The pages' words in Korean and English, and which of the two a page speaks.
//!
//! The words are Project Fluent messages (`locales/ko/web.ftl`, `locales/en/web.ftl`), compiled
//! into the binary by `fluent-templates`. Money and times are written by `tanda_core::locale`,
//! which notify shares, so a fare reads the same in a page and in its notification.
//!
//! A page speaks the language of its `lang` cookie (the switcher on every page sets it), else the
//! signed-in user's choice (the token's `locale` claim), else the browser's `Accept-Language`,
//! else Korean.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid, static_loader};
use tanda_core::auth::Caller;
use tanda_core::clock::parse_rfc3339;
pub use tanda_core::locale::Locale;

use crate::api::ApiError;
use crate::places::SEOUL;

static_loader! {
    static WORDS = {
        locales: "./locales",
        fallback_language: "ko",
        // No Unicode isolation marks around arguments: ids, names and amounts are read as
        // they are (and the pages escape them).
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static KO: LanguageIdentifier = langid!("ko");
static EN: LanguageIdentifier = langid!("en");

/// The cookie the language switcher sets.
pub const LANG_COOKIE: &str = "lang";

/// A page's language, and its words: templates call `tr.t` with a message's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tr(pub Locale);

/// A value for a message's `{ $name }`: text, or a number (which picks plural forms).
pub trait Arg {
    fn fluent(&self) -> FluentValue<'static>;
}

impl Arg for str {
    fn fluent(&self) -> FluentValue<'static> {
        FluentValue::from(self.to_owned())
    }
}

impl Arg for String {
    fn fluent(&self) -> FluentValue<'static> {
        self.as_str().fluent()
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn fluent(&self) -> FluentValue<'static> {
        (**self).fluent()
    }
}

macro_rules! number_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn fluent(&self) -> FluentValue<'static> {
                FluentValue::from(*self)
            }
        }
    )*};
}
number_arg!(i64, u64, usize, u32);

impl Tr {
    /// `ko` or `en`, for `<html lang>`.
    pub fn lang(&self) -> &'static str {
        self.0.as_str()
    }

    pub fn is(&self, lang: &str) -> bool {
        self.lang() == lang
    }

    fn id(&self) -> &'static LanguageIdentifier {
        match self.0 {
            Locale::Ko => &KO,
            Locale::En => &EN,
        }
    }

    /// The message `key`.
    pub fn t(&self, key: &str) -> String {
        self.format(key, &[])
    }

    /// The message `key` with one argument.
    pub fn t1<V: Arg + ?Sized>(&self, key: &str, name: &str, value: &V) -> String {
        self.format(key, &[(name, value.fluent())])
    }

    /// The message `key` with two arguments.
    pub fn t2<V: Arg + ?Sized, W: Arg + ?Sized>(
        &self,
        key: &str,
        name: &str,
        value: &V,
        name2: &str,
        value2: &W,
    ) -> String {
        self.format(key, &[(name, value.fluent()), (name2, value2.fluent())])
    }

    /// The message `key` with its arguments.
    pub fn format(&self, key: &str, args: &[(&str, FluentValue<'static>)]) -> String {
        let found = if args.is_empty() {
            WORDS.try_lookup(self.id(), key)
        } else {
            WORDS.try_lookup_with_args(self.id(), key, &to_map(args))
        };
        found.unwrap_or_else(|| {
            tracing::warn!(
                key,
                lang = self.lang(),
                "a page asked for a word it does not have"
            );
            key.to_owned()
        })
    }

    /// The message `key` as HTML: its text escaped, and each of `html`'s arguments put in as
    /// markup, already escaped by the caller (for a template's `|safe`). Lets a sentence keep
    /// its own word order around an element, such as `<strong id="who">minji</strong>`.
    pub fn markup(
        &self,
        key: &str,
        args: &[(&str, FluentValue<'static>)],
        html: &[(&str, &str)],
    ) -> String {
        // Private-use characters stand for the markup while the sentence is formatted and escaped.
        let marks: Vec<String> = (0..html.len())
            .map(|i| char::from_u32(0xE000 + i as u32).map_or_else(String::new, String::from))
            .collect();
        let mut all: Vec<(&str, FluentValue<'static>)> = args.to_vec();
        for ((name, _), mark) in html.iter().zip(&marks) {
            all.push((name, FluentValue::from(mark.clone())));
        }
        let mut out = escape(&self.format(key, &all));
        for ((_, markup), mark) in html.iter().zip(&marks) {
            out = out.replace(mark.as_str(), markup);
        }
        out
    }

    /// `key` with one argument shown as `<strong id="{id}">value</strong>`.
    pub fn strong(&self, key: &str, name: &str, value: &str, id: &str) -> String {
        let html = if id.is_empty() {
            format!("<strong>{}</strong>", escape(value))
        } else {
            format!(r#"<strong id="{}">{}</strong>"#, escape(id), escape(value))
        };
        self.markup(key, &[], &[(name, &html)])
    }

    /// An amount of won: `12,300원`, `₩12,300`.
    pub fn won(&self, amount: i64) -> String {
        self.0.won(amount)
    }

    /// An RFC 3339 time from the API in Seoul time (as given, if it is not one).
    pub fn time(&self, rfc3339: &str) -> String {
        parse_rfc3339(rfc3339).map_or_else(|| rfc3339.to_owned(), |at| self.0.time(at))
    }

    /// How a status reads on a badge.
    pub fn status(&self, status: &str) -> String {
        let key = format!("status-{status}");
        if WORDS.try_lookup(self.id(), &key).is_some() {
            self.t(&key)
        } else {
            self.t("status-unknown")
        }
    }

    /// A place's name: one of Seoul's landmarks in this language, anything else as it is.
    pub fn place(&self, name: &str) -> String {
        match SEOUL.iter().find(|p| p.name == name) {
            Some(p) => self.t(&format!("place-{}", p.key)),
            None => name.to_owned(),
        }
    }

    /// `A → B`, in this language.
    pub fn route(&self, from: &str, to: &str) -> String {
        format!("{} → {}", self.place(from), self.place(to))
    }

    /// What the API refused, as a sentence for the page: Tanda's own words for the problems a
    /// person meets (a declined card, a sold-out flight), and the API's detail for the rest.
    pub fn problem(&self, e: &ApiError) -> String {
        let key = format!("problem-{}", e.code);
        let args = [("detail", FluentValue::from(e.detail.clone()))];
        match WORDS.try_lookup_with_args(self.id(), &key, &to_map(&args)) {
            Some(text) => text,
            None => e.detail.clone(),
        }
    }

    /// How a ride was paid: `카드 •••• 4242`, `현금`; nothing when the method is not known.
    pub fn paid(&self, method: Option<&str>, card_last4: Option<&str>) -> Option<String> {
        match (method, card_last4) {
            (Some("CASH"), _) => Some(self.t("paid-cash")),
            (Some("CARD"), Some(last4)) | (None, Some(last4)) if !last4.is_empty() => {
                Some(self.t1("paid-card", "last4", last4))
            }
            (Some("CARD"), _) => Some(self.t("paid-card-unknown")),
            _ => None,
        }
    }
}

fn to_map(
    args: &[(&str, FluentValue<'static>)],
) -> HashMap<Cow<'static, str>, FluentValue<'static>> {
    args.iter()
        .map(|(name, value)| (Cow::Owned((*name).to_owned()), value.clone()))
        .collect()
}

/// Text made safe to put in HTML, in an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The language of a request: its `lang` cookie, else the user's choice, else the browser's.
pub fn choose(headers: &HeaderMap, caller: Option<&Caller>) -> Locale {
    if let Some(chosen) = tanda_core::auth::cookie(headers, LANG_COOKIE)
        .as_deref()
        .and_then(Locale::parse)
    {
        return chosen;
    }
    if let Some(locale) = caller.and_then(|c| c.locale) {
        return locale;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Locale::default(), Locale::negotiate)
}

/// `Set-Cookie` for the language the switcher chose: a year, this site only, no script needs it.
pub fn lang_cookie(locale: Locale, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={locale}; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000{secure}"
    ))
    .expect("a language tag is cookie-safe text")
}

/// The language of a request and where it is (for the switcher's way back), for pages that
/// need no session. On a page's `GET` the edge has verified the session, if any, so the user's
/// choice counts here too.
pub struct Lang {
    pub tr: Tr,
    /// The path and query of the request.
    pub here: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang {
            tr: Tr(choose(&parts.headers, parts.extensions.get::<Caller>())),
            here: here(parts),
        })
    }
}

/// The path and query of a request.
pub fn here(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use fluent_syntax::ast;

    use super::*;

    const KO_FTL: &str = include_str!("../locales/ko/web.ftl");
    const EN_FTL: &str = include_str!("../locales/en/web.ftl");

    /// Every message and attribute of a Fluent file, as `id` and `id.attribute`.
    fn keys(ftl: &'static str) -> BTreeSet<String> {
        let resource = fluent_syntax::parser::parse(ftl).unwrap_or_else(|(_, errors)| {
            panic!("the file does not parse: {errors:?}");
        });
        let mut keys = BTreeSet::new();
        for entry in resource.body {
            match entry {
                ast::Entry::Message(m) => {
                    for a in &m.attributes {
                        keys.insert(format!("{}.{}", m.id.name, a.id.name));
                    }
                    keys.insert(m.id.name.to_owned());
                }
                ast::Entry::Term(t) => {
                    keys.insert(format!("-{}", t.id.name));
                }
                ast::Entry::Junk { content } => panic!("junk in a Fluent file: {content}"),
                _ => {}
            }
        }
        keys
    }

    #[test]
    fn both_languages_have_every_message() {
        let (ko, en) = (keys(KO_FTL), keys(EN_FTL));
        assert!(ko.len() > 100, "{} messages", ko.len());
        let only_ko: Vec<_> = ko.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&ko).collect();
        assert!(only_ko.is_empty(), "only in Korean: {only_ko:?}");
        assert!(only_en.is_empty(), "only in English: {only_en:?}");
    }

    /// Every word a template or the code asks for, in both languages.
    #[test]
    fn every_word_asked_for_exists() {
        let (ko, en) = (keys(KO_FTL), keys(EN_FTL));
        let mut asked = BTreeSet::new();
        let sources = crate::tests::TEMPLATES
            .iter()
            .map(|(_, text)| *text)
            .chain(crate::tests::SOURCES.iter().copied());
        for text in sources {
            for call in [".t(\"", ".t1(\"", ".t2(\"", ".markup(\"", ".strong(\""] {
                let mut rest = text;
                while let Some(at) = rest.find(call) {
                    rest = &rest[at + call.len()..];
                    let key = &rest[..rest.find('"').unwrap_or(0)];
                    if !key.is_empty() && !key.contains(['{', ' ']) {
                        asked.insert(key.to_owned());
                    }
                }
            }
        }
        assert!(asked.len() > 50, "{asked:?}");
        for key in &asked {
            assert!(ko.contains(key), "Korean has no {key:?}");
            assert!(en.contains(key), "English has no {key:?}");
        }
        for place in SEOUL {
            assert!(
                ko.contains(&format!("place-{}", place.key)),
                "{}",
                place.key
            );
        }
    }

    #[test]
    fn words_money_and_times_follow_the_language() {
        let (ko, en) = (Tr(Locale::Ko), Tr(Locale::En));
        assert_eq!(ko.status("REQUESTED"), "배차 요청됨");
        assert_eq!(en.status("REQUESTED"), "Requested");
        assert_eq!(en.status("WHATEVER"), "Unknown");
        assert_eq!(ko.won(12_300), "12,300원");
        assert_eq!(en.won(12_300), "₩12,300");
        assert_eq!(ko.time("2026-12-07T06:04:00Z"), "12월 7일 15:04");
        assert_eq!(en.time("2026-12-07T06:04:00Z"), "7 Dec 15:04");
        assert_eq!(en.time("soon"), "soon");
        assert_eq!(
            ko.route("Seoul Station", "Gangnam Station"),
            "서울역 → 강남역"
        );
        assert_eq!(
            en.route("Seoul Station", "37.1, 127.2"),
            "Seoul Station → 37.1, 127.2"
        );
        assert_eq!(
            ko.paid(Some("CARD"), Some("4242")).unwrap(),
            "카드 •••• 4242"
        );
        assert_eq!(ko.paid(Some("CASH"), Some("4242")).unwrap(), "현금");
        assert_eq!(en.paid(Some("CASH"), None).unwrap(), "Cash");
        assert_eq!(en.paid(None, None), None);
        let trips = |tr: Tr, n: usize| {
            tr.markup("trips-count", &[("n", n.into())], &[("count", "<b>n</b>")])
        };
        assert_eq!(trips(en, 1), "from <b>n</b> trip");
        assert_eq!(trips(en, 2), "from <b>n</b> trips");
        assert_eq!(trips(ko, 2), "운행 <b>n</b>건");
    }

    #[test]
    fn markup_escapes_the_sentence_and_keeps_the_element() {
        let en = Tr(Locale::En);
        assert_eq!(
            en.strong("who-for", "who", "<minji>", "who"),
            r#"for <strong id="who">&lt;minji&gt;</strong>"#
        );
        let ko = Tr(Locale::Ko);
        assert_eq!(
            ko.strong("who-for", "who", "minji", "who"),
            r#"<strong id="who">minji</strong> 님 대신"#
        );
    }

    #[test]
    fn problems_read_in_the_pages_language_or_as_the_api_said() {
        let problem = |code: &str, detail: &str| ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: code.to_owned(),
            detail: detail.to_owned(),
            retry_after: None,
        };
        let ko = Tr(Locale::Ko);
        assert!(
            ko.problem(&problem("invalid_card", "card fails Luhn"))
                .contains("카드")
        );
        assert!(
            Tr(Locale::En)
                .problem(&problem("invalid_amount", "amount must be from 1 to 10"))
                .contains("from 1 to 10")
        );
        assert_eq!(ko.problem(&problem("something_new", "as said")), "as said");
    }

    #[test]
    fn the_cookie_then_the_user_then_the_browser_choose() {
        let mut headers = HeaderMap::new();
        assert_eq!(choose(&headers, None), Locale::Ko);
        headers.insert(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9".parse().unwrap());
        assert_eq!(choose(&headers, None), Locale::En);
        let id = tanda_core::id::ClientId::parse("minji").unwrap();
        let korean = Caller::new(id, vec![]).with_locale(Some(Locale::Ko));
        assert_eq!(choose(&headers, Some(&korean)), Locale::Ko);
        headers.insert(header::COOKIE, "tanda_session=x; lang=en".parse().unwrap());
        assert_eq!(choose(&headers, Some(&korean)), Locale::En);
        headers.insert(header::COOKIE, "lang=fr".parse().unwrap());
        assert_eq!(
            choose(&headers, Some(&korean)),
            Locale::Ko,
            "not a language: ignored"
        );
        assert_eq!(
            lang_cookie(Locale::En, true),
            "lang=en; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000; Secure"
        );
    }
}

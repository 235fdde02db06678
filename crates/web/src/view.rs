//! Rendering helpers shared by the pages: HTML responses, error messages in a form's slot, and
//! how distances, durations and statuses read (money and times: [`Tr`]).

use askama::Template;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tanda_core::Timestamp;
use tanda_core::clock::parse_rfc3339;
use tanda_core::locale::Locale;

use crate::api::ApiError;
use crate::i18n::{Lang, Tr};
use crate::session::User;

/// What the layout around every page shows: the title, which page the navigation marks, who is
/// signed in (with the page's CSRF token for its forms), and the page's language.
pub struct Frame {
    pub title: String,
    pub nav: &'static str,
    pub user: Option<String>,
    /// The CSRF token htmx sends with every request of the page; empty when nobody is signed in.
    pub csrf: String,
    pub tr: Tr,
    /// Where the page is: the language switcher comes back here.
    pub here: String,
    operator: bool,
    customer: bool,
    driver: bool,
}

impl Frame {
    /// A page for whoever comes, signed in or not; `title` is the key of its words.
    pub fn guest(lang: &Lang, title: &str, nav: &'static str) -> Frame {
        Frame {
            title: lang.tr.t(title),
            nav,
            user: None,
            csrf: String::new(),
            tr: lang.tr,
            here: lang.here.clone(),
            operator: false,
            customer: false,
            driver: false,
        }
    }

    /// A page for `user`.
    pub fn of(user: &User, title: &str, nav: &'static str) -> Frame {
        Frame {
            title: user.tr.t(title),
            nav,
            user: Some(user.id().to_owned()),
            csrf: user.csrf.clone(),
            tr: user.tr,
            here: user.here.clone(),
            operator: user.is_operator(),
            customer: user.caller.has(tanda_core::auth::Role::Customer),
            driver: user.caller.has(tanda_core::auth::Role::Driver),
        }
    }

    /// Whether the navigation offers `page` (`customer`, `driver`, `traveller`, `operator`):
    /// every page to someone not signed in (it asks them to), the pages of their role to a user.
    pub fn shows(&self, page: &str) -> bool {
        if self.user.is_none() || self.operator {
            return true;
        }
        match page {
            "customer" | "traveller" => self.customer,
            "driver" => self.driver,
            _ => false,
        }
    }
}

/// A rendered template as a `200 text/html` response.
pub fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// A rendered fragment, for embedding in a page.
pub fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a fragment failed to render");
        // Whatever language the page speaks: the fragment that would have said is gone.
        let said: Vec<String> = Locale::ALL
            .iter()
            .map(|&l| Tr(l).t("render-failed"))
            .collect();
        format!(r#"<p class="alert" role="alert">{}</p>"#, said.join(" / "))
    })
}

#[derive(Template)]
#[template(
    source = r#"<p class="alert" role="alert">{{ message }}</p>"#,
    ext = "html"
)]
/// A message in place of something that could not be shown or done.
pub struct Alert<'a> {
    pub message: &'a str,
}

#[derive(Template)]
#[template(
    source = r#"<p class="muted" role="status">{{ message }}</p>"#,
    ext = "html"
)]
/// A message that something was done, in a form's message slot.
pub struct Notice<'a> {
    pub message: &'a str,
}

/// An error message shown in the element `#{slot}` (the form that failed keeps what was typed),
/// with the status the API answered.
pub fn error_in(slot: &str, status: StatusCode, message: &str) -> Response {
    let mut response = (status, Html(render(&Alert { message }))).into_response();
    let headers = response.headers_mut();
    if let Ok(target) = HeaderValue::from_str(&format!("#{slot}")) {
        headers.insert("hx-retarget", target);
    }
    headers.insert("hx-reswap", HeaderValue::from_static("innerHTML"));
    response
}

/// The API's problem, shown in `#{slot}` in the page's language.
pub fn api_error_in(tr: Tr, slot: &str, e: &ApiError) -> Response {
    error_in(slot, e.status, &tr.problem(e))
}

/// A successful action's fragment, which also empties the error slot `#{slot}` of the form that
/// caused it.
pub fn done(slot: &str, fragment: String) -> Response {
    Html(format!(
        r#"{fragment}<div id="{slot}" hx-swap-oob="true"></div>"#
    ))
    .into_response()
}

/// `850 m`, `12.4 km`.
pub fn distance(meters: i64) -> String {
    if meters < 1000 {
        format!("{meters} m")
    } else {
        format!("{:.1} km", meters as f64 / 1000.0)
    }
}

/// `under a minute`, `about 7 min`.
pub fn minutes(tr: Tr, seconds: i64) -> String {
    match (seconds + 30) / 60 {
        0 => tr.t("minutes-under"),
        n => tr.t1("minutes-about", "n", &n),
    }
}

/// `42 seconds`, `about 5 min`: how long to wait.
pub fn minutes_or_seconds(tr: Tr, seconds: u64) -> String {
    match seconds {
        0..60 => tr.t1("wait-seconds", "n", &seconds),
        _ => tr.t1("wait-minutes", "n", &seconds.div_ceil(60)),
    }
}

/// How a status reads on a badge, and the badge's colour class.
pub fn badge(tr: Tr, status: &str) -> (String, &'static str) {
    let class = match status {
        "REQUESTED" | "SEARCHING" | "PENDING" | "CANCEL_REQUESTED" | "OFFERED" => "wait",
        "DISPATCHED" | "IN_TRIP" | "PAID" | "AVAILABLE" => "go",
        "COMPLETED" | "CONFIRMED" | "ENDED" | "ISSUED" => "ok",
        "CANCELLED_BY_SYSTEM" | "PAYMENT_FAILED" | "FAILED" => "bad",
        _ => "off",
    };
    (tr.status(status), class)
}

/// The day an instant falls on in Seoul (UTC+9, no daylight saving), as days since the epoch.
pub fn seoul_day(at: Timestamp) -> i64 {
    (at + 9 * 3_600_000).div_euclid(86_400_000)
}

/// `seoul_day` of an RFC 3339 time from the API.
pub fn seoul_day_of(rfc3339: &str) -> Option<i64> {
    parse_rfc3339(rfc3339).map(seoul_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_time_read_naturally() {
        let (ko, en) = (Tr(Locale::Ko), Tr(Locale::En));
        assert_eq!(distance(850), "850 m");
        assert_eq!(distance(12_440), "12.4 km");
        assert_eq!(minutes(en, 20), "under a minute");
        assert_eq!(minutes(en, 400), "about 7 min");
        assert_eq!(minutes(ko, 400), "약 7분");
        assert_eq!(minutes_or_seconds(en, 1), "1 second");
        assert_eq!(minutes_or_seconds(en, 42), "42 seconds");
        assert_eq!(minutes_or_seconds(en, 299), "about 5 min");
        assert_eq!(minutes_or_seconds(ko, 42), "42초");
    }

    #[test]
    fn every_status_of_the_contract_has_a_label_in_both_languages() {
        for s in [
            "REQUESTED",
            "DISPATCHED",
            "IN_TRIP",
            "COMPLETED",
            "CANCEL_REQUESTED",
            "CANCELLED_BY_CUSTOMER",
            "CANCELLED_BY_SYSTEM",
            "SEARCHING",
            "ENDED",
            "CANCELLED",
            "FAILED",
            "OFFLINE",
            "AVAILABLE",
            "OFFERED",
            "PENDING",
            "PAID",
            "CONFIRMED",
            "PAYMENT_FAILED",
            "ISSUED",
            "VOID",
        ] {
            for l in Locale::ALL {
                let (label, class) = badge(Tr(l), s);
                assert_ne!(label, Tr(l).t("status-unknown"), "{s} in {l}");
                assert_ne!(class, "", "{s}");
            }
        }
        assert_eq!(badge(Tr(Locale::En), "WHATEVER").0, "Unknown");
        assert_eq!(
            badge(Tr(Locale::Ko), "IN_TRIP"),
            ("운행 중".to_owned(), "go")
        );
    }

    #[test]
    fn seoul_days_turn_at_midnight_korean_time() {
        let before = parse_rfc3339("2026-11-21T14:59:59Z").unwrap();
        let after = parse_rfc3339("2026-11-21T15:00:00Z").unwrap();
        assert_eq!(seoul_day(after) - seoul_day(before), 1);
        assert_eq!(seoul_day_of("2026-11-21T15:00:00Z"), Some(seoul_day(after)));
    }
}

//! Rendering helpers shared by the pages: HTML responses, error messages in a form's slot, and
//! how money, distances, durations and statuses read.

use askama::Template;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tanda_core::Timestamp;
use tanda_core::clock::parse_rfc3339;

use crate::api::ApiError;
use crate::session::User;

/// What the layout around every page shows: the title, which page the navigation marks, and
/// who is signed in (with the page's CSRF token for its forms).
pub struct Frame {
    pub title: &'static str,
    pub nav: &'static str,
    pub user: Option<String>,
    /// The CSRF token htmx sends with every request of the page; empty when nobody is signed in.
    pub csrf: String,
    operator: bool,
    customer: bool,
    driver: bool,
}

impl Frame {
    /// A page for whoever comes, signed in or not.
    pub fn guest(title: &'static str, nav: &'static str) -> Frame {
        Frame {
            title,
            nav,
            user: None,
            csrf: String::new(),
            operator: false,
            customer: false,
            driver: false,
        }
    }

    /// A page for `user` (or for whoever comes, when nobody is signed in).
    pub fn of(user: Option<&User>, title: &'static str, nav: &'static str) -> Frame {
        let Some(user) = user else {
            return Frame::guest(title, nav);
        };
        Frame {
            title,
            nav,
            user: Some(user.id().to_owned()),
            csrf: user.csrf.clone(),
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
        String::from(
            r#"<p class="alert" role="alert">This part of the page could not be shown.</p>"#,
        )
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

/// The API's problem, shown in `#{slot}`.
pub fn api_error_in(slot: &str, e: &ApiError) -> Response {
    error_in(slot, e.status, &e.detail)
}

/// A successful action's fragment, which also empties the error slot `#{slot}` of the form that
/// caused it.
pub fn done(slot: &str, fragment: String) -> Response {
    Html(format!(
        r#"{fragment}<div id="{slot}" hx-swap-oob="true"></div>"#
    ))
    .into_response()
}

/// `₩12,300`.
pub fn won(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + 4);
    if amount < 0 {
        out.push('-');
    }
    out.push('₩');
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
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
pub fn minutes(seconds: i64) -> String {
    match (seconds + 30) / 60 {
        0 => "under a minute".to_owned(),
        n => format!("about {n} min"),
    }
}

/// `42 seconds`, `about 5 min`: how long to wait.
pub fn minutes_or_seconds(seconds: u64) -> String {
    match seconds {
        1 => "1 second".to_owned(),
        0..60 => format!("{seconds} seconds"),
        _ => format!("about {} min", seconds.div_ceil(60)),
    }
}

/// How a status reads on a badge, and the badge's colour class.
pub fn badge(status: &str) -> (&'static str, &'static str) {
    match status {
        "REQUESTED" => ("Requested", "wait"),
        "SEARCHING" => ("Searching", "wait"),
        "PENDING" => ("Payment pending", "wait"),
        "CANCEL_REQUESTED" => ("Cancelling", "wait"),
        "OFFERED" => ("Offer waiting", "wait"),
        "DISPATCHED" => ("Taxi on the way", "go"),
        "IN_TRIP" => ("In trip", "go"),
        "PAID" => ("Paid", "go"),
        "AVAILABLE" => ("Available", "go"),
        "COMPLETED" => ("Completed", "ok"),
        "CONFIRMED" => ("Confirmed", "ok"),
        "ENDED" => ("Ended", "ok"),
        "ISSUED" => ("Issued", "ok"),
        "CANCELLED_BY_CUSTOMER" => ("Cancelled", "off"),
        "CANCELLED" => ("Cancelled", "off"),
        "VOID" => ("Void", "off"),
        "OFFLINE" => ("Offline", "off"),
        "CANCELLED_BY_SYSTEM" => ("No taxi found", "bad"),
        "PAYMENT_FAILED" => ("Payment failed", "bad"),
        "FAILED" => ("Failed", "bad"),
        _ => ("Unknown", "off"),
    }
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
    fn money_distance_and_time_read_naturally() {
        assert_eq!(won(0), "₩0");
        assert_eq!(won(4800), "₩4,800");
        assert_eq!(won(1_234_567), "₩1,234,567");
        assert_eq!(won(-100), "-₩100");
        assert_eq!(distance(850), "850 m");
        assert_eq!(distance(12_440), "12.4 km");
        assert_eq!(minutes(20), "under a minute");
        assert_eq!(minutes(400), "about 7 min");
        assert_eq!(minutes_or_seconds(42), "42 seconds");
        assert_eq!(minutes_or_seconds(299), "about 5 min");
    }

    #[test]
    fn every_status_of_the_contract_has_a_label() {
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
            assert_ne!(badge(s).0, "Unknown", "{s}");
        }
        assert_eq!(badge("WHATEVER").0, "Unknown");
    }

    #[test]
    fn seoul_days_turn_at_midnight_korean_time() {
        let before = parse_rfc3339("2026-11-21T14:59:59Z").unwrap();
        let after = parse_rfc3339("2026-11-21T15:00:00Z").unwrap();
        assert_eq!(seoul_day(after) - seoul_day(before), 1);
        assert_eq!(seoul_day_of("2026-11-21T15:00:00Z"), Some(seoul_day(after)));
    }
}

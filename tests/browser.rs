//! The web pages in a real browser: headless Chromium driven over WebDriver (chromedriver), against
//! a whole Tanda on a random port. Every click goes through the pages exactly as a person's would —
//! signing up and in included — and the pages reach the system only through its public API. Every
//! page is checked for what the browser refused to run or apply (the content security policy
//! allows no inline script or style) and for script errors. Each test saves screenshots under
//! `target/tmp/screenshots/` as artifacts.
//!
//! Each window speaks a language on purpose: Chromium's own language and `Accept-Language`, and
//! for English the pages' `lang` cookie too (a user's own language would otherwise win: the
//! operator's account is Korean). Most tests read the pages in English; one reads them in
//! Korean, the default, and switches.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them when missing).

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{OPERATOR_PASSWORD, TestApp, Topology, password_of};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a test waits for (events cross several services).
const PATIENCE: Duration = Duration::from_secs(20);

/// A chromedriver of the test's own, on a free port; windows are Chromium sessions on it.
struct Browser {
    driver: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for needed in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(needed).exists(),
                "{needed} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let ready = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < ready, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Browser {
            driver,
            url,
            profiles: tempfile::tempdir().unwrap(),
        }
    }

    /// A new browser window of the given size that reads the pages in English (its own
    /// profile, so windows share nothing).
    async fn window(&self, name: &str, width: u32, height: u32) -> Window {
        self.window_in(name, width, height, "en").await
    }

    /// A new browser window of the given size whose browser speaks `lang` (`ko` or `en`).
    async fn window_in(&self, name: &str, width: u32, height: u32, lang: &'static str) -> Window {
        let profile = self.profiles.path().join(name);
        let accept = if lang == "ko" { "ko-KR,ko" } else { "en-US,en" };
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
            format!("--lang={}", accept.split(',').next().unwrap_or(lang)),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({"binary": CHROMIUM, "args": args,
                   "prefs": {"intl.accept_languages": accept}}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session opens");
        let window = Window {
            client,
            name: name.to_owned(),
            lang,
            driver: self.url.clone(),
            lang_cookie_set: std::sync::atomic::AtomicBool::new(false),
        };
        window.watch(&self.url).await;
        window
    }
}

/// Runs in every page before its own scripts: records what the content security policy blocked
/// and any script error, for [`Window::assert_clean`].
const WATCH: &str = r#"
window.__tandaProblems = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__tandaProblems.push("CSP " + e.violatedDirective + " blocked " + (e.blockedURI || "inline")
    + " (" + e.sourceFile + ":" + e.lineNumber + ")");
});
window.addEventListener("error", function (e) { window.__tandaProblems.push("error: " + e.message); });
"#;

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One browser window, with the waits and screenshots the tests use.
struct Window {
    client: Client,
    name: String,
    /// The language the window reads the pages in: `ko` or `en`.
    lang: &'static str,
    /// The chromedriver this window is a session of.
    driver: String,
    /// Whether the pages' `lang` cookie is set (English windows, before the first page).
    lang_cookie_set: std::sync::atomic::AtomicBool,
}

impl Window {
    /// Has Chromium run [`WATCH`] in every document this window opens.
    async fn watch(&self, driver: &str) {
        let session = self.client.session_id().await.unwrap().unwrap();
        let answer = reqwest::Client::new()
            .post(format!("{driver}/session/{session}/goog/cdp/execute"))
            .json(&json!({"cmd": "Page.addScriptToEvaluateOnNewDocument",
                          "params": {"source": WATCH}}))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{}",
            answer.text().await.unwrap()
        );
    }

    /// The page now open ran no blocked script or style and no script failed, and it is styled
    /// by the site's stylesheet.
    async fn assert_clean(&self) {
        let problems = self
            .client
            .execute("return window.__tandaProblems || ['not watched'];", vec![])
            .await
            .unwrap();
        assert_eq!(
            problems,
            json!([]),
            "[{}] on {:?}",
            self.name,
            self.url().await
        );
        let inline_styles = self
            .client
            .execute(
                "return document.querySelectorAll('style, [style]').length;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(inline_styles, json!(0), "[{}] inline styles", self.name);
        let header = self
            .client
            .execute(
                "return getComputedStyle(document.querySelector('header.top')).backgroundColor;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(header, json!("rgb(28, 35, 48)"), "[{}] styled", self.name);
    }

    async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Opens `url` after checking the page it leaves.
    async fn open(&self, url: &str) {
        if self.url().await.starts_with("http") {
            self.assert_clean().await;
        }
        self.speak(url).await;
        self.client.goto(url).await.expect("the page opens");
    }

    /// An English window sets the pages' `lang` cookie for the site of `url` (once, before its
    /// first page there), so that every page speaks English whoever signs in.
    async fn speak(&self, url: &str) {
        use std::sync::atomic::Ordering;
        if self.lang != "en" || self.lang_cookie_set.swap(true, Ordering::SeqCst) {
            return;
        }
        let session = self.client.session_id().await.unwrap().unwrap();
        let answer = reqwest::Client::new()
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.driver
            ))
            .json(&json!({"cmd": "Network.setCookie",
                          "params": {"name": "lang", "value": "en", "url": url, "path": "/"}}))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{}",
            answer.text().await.unwrap()
        );
    }

    /// A label in the window's language.
    fn say<'a>(&self, ko: &'a str, en: &'a str) -> &'a str {
        if self.lang == "ko" { ko } else { en }
    }

    /// Signs up on the sign-up page (`role` is `customer` or `driver`) and waits for the page it
    /// leads to.
    async fn sign_up(&self, base: &str, username: &str, role: &str, next: &str) {
        self.open(&format!("{base}/signup?next={next}")).await;
        self.click(&format!("input[name=role][value={role}]")).await;
        self.fill("#signup-form input[name=username]", username)
            .await;
        self.fill("#signup-form input[name=password]", &password_of(username))
            .await;
        self.fill(
            "#signup-form input[name=name]",
            &format!("Name of {username}"),
        )
        .await;
        self.fill("#signup-form input[name=phone]", "010-2345-6789")
            .await;
        // The account's language starts as the page's.
        assert_eq!(
            self.value("#signup-form select[name=locale]").await,
            self.lang
        );
        self.press("#signup-form", self.say("회원가입", "Sign up"))
            .await;
        self.wait_text("#signed-in-as", username).await;
    }

    /// Signs in on the sign-in page and waits for the page it leads to.
    async fn sign_in(&self, base: &str, username: &str, password: &str) {
        self.open(&format!("{base}/signin")).await;
        self.fill("#signin-form input[name=username]", username)
            .await;
        self.fill("#signin-form input[name=password]", password)
            .await;
        self.press("#signin-form", self.say("로그인", "Sign in"))
            .await;
        self.wait_text("#signed-in-as", username).await;
    }

    async fn sign_out(&self) {
        self.assert_clean().await;
        self.press("header", self.say("로그아웃", "Sign out")).await;
        self.wait_text("header", self.say("로그인", "Sign in"))
            .await;
    }

    /// Waits until `css` matches an element whose text contains `needle`; returns that text.
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = e.text().await
                && text.contains(needle)
            {
                return text;
            }
            if Instant::now() > deadline {
                self.shot("timeout").await;
                let body = self.body_text().await;
                panic!(
                    "[{}] no `{css}` containing {needle:?} in time; page:\n{body}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` matches an element whose `attr` equals `value`.
    async fn wait_attr(&self, css: &str, attr: &str, value: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(Some(v)) = e.attr(attr).await
                && v == value
            {
                return;
            }
            if Instant::now() > deadline {
                self.shot("timeout").await;
                let body = self.body_text().await;
                panic!(
                    "[{}] no `{css}` with {attr}={value:?} in time; page:\n{body}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page has put a fresh element in place of `css`'s (its own refresh).
    async fn wait_refresh(&self, css: &str) {
        let mark = "const e = document.querySelector(arguments[0]);\
                    if (e) { e.dataset.testSeen = '1'; } return !!e;";
        let marked = self.client.execute(mark, vec![json!(css)]).await.unwrap();
        assert_eq!(marked, json!(true), "[{}] no `{css}` to watch", self.name);
        let fresh = "const e = document.querySelector(arguments[0]);\
                     return !!e && !e.dataset.testSeen;";
        let deadline = Instant::now() + PATIENCE;
        while self.client.execute(fresh, vec![json!(css)]).await.unwrap() != json!(true) {
            assert!(
                Instant::now() < deadline,
                "[{}] `{css}` was never refreshed",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("[{}] no `{css}`: {e}", self.name))
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("the click lands");
    }

    /// Clicks the button whose text is `label` (inside `scope`). A panel that refreshes itself
    /// may replace the button between finding and clicking it: then the new one is clicked.
    async fn press(&self, scope: &str, label: &str) {
        let xpath = format!(
            "{}//button[normalize-space()='{label}']",
            css_to_xpath(scope)
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            let button = self
                .client
                .wait()
                .at_most(PATIENCE)
                .for_element(Locator::XPath(&xpath))
                .await
                .unwrap_or_else(|e| panic!("[{}] no button {label:?} in {scope}: {e}", self.name));
            match button.click().await {
                Ok(()) => return,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference
                        && Instant::now() < deadline => {}
                Err(e) => panic!("[{}] the click on {label:?} did not land: {e}", self.name),
            }
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(e) => format!("(no body: {e})"),
        }
    }

    /// Saves a screenshot as `target/tmp/screenshots/<window>-<step>.png`.
    async fn shot(&self, step: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{step}.png", self.name));
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Closes the window after checking the page it shows.
    async fn close(self) {
        self.assert_clean().await;
        let _ = self.client.close().await;
    }
}

/// Enough XPath for the scopes the tests use: `#id` or `tag`.
fn css_to_xpath(scope: &str) -> String {
    match scope.strip_prefix('#') {
        Some(id) => format!("//*[@id='{id}']"),
        None => format!("//{scope}"),
    }
}

async fn spawn() -> TestApp {
    TestApp::spawn(Topology::AllInOne).await
}

#[tokio::test]
async fn a_ride_by_clicks_with_customer_and_driver_watching_each_other_live() {
    let app = spawn().await;
    let base = app.api.base.clone();
    let browser = Browser::start().await;
    let driver = browser.window("driver", 1100, 900).await;
    let customer = browser.window("customer", 430, 932).await;

    // The driver signs up as a driver, registers their taxi once, and goes online.
    driver.sign_up(&base, "d-web", "driver", "").await;
    driver.wait_text("#register-form", "Car number").await;
    driver.shot("0-register").await;
    driver.fill("input[name=name]", "Kim Minjun").await;
    driver.fill("input[name=carNumber]", "12가 3456").await;
    driver.fill("input[name=phone]", "010-2222-3333").await;
    driver.select("select[name=place]", "seoul-station").await;
    driver.press("#register-form", "Register").await;
    driver.wait_text("h1", "Kim Minjun").await;
    driver.press("#driver-panel", "Go online").await;
    driver
        .wait_attr("#driver-status", "data-status", "AVAILABLE")
        .await;
    driver.shot("1-online").await;

    // The customer signs up, signs out, and signs in again; a page asked for while signed out
    // comes back after signing in.
    customer.sign_up(&base, "c-web", "customer", "").await;
    customer.wait_text("h1", "Ride").await;
    customer.sign_out().await;
    customer.open(&format!("{base}/customer")).await;
    customer.wait_text("h1", "Sign in").await;
    customer.fill("input[name=username]", "c-web").await;
    customer
        .fill("input[name=password]", "not my password")
        .await;
    customer.press("#signin-form", "Sign in").await;
    customer
        .wait_text(".alert", "username and password do not match")
        .await;
    customer.shot("0-wrong-password").await;
    customer
        .fill("input[name=password]", &password_of("c-web"))
        .await;
    customer.press("#signin-form", "Sign in").await;
    customer.wait_text("#who", "c-web").await;
    assert!(customer.url().await.ends_with("/customer"));

    // The customer requests a ride from Seoul Station to Gangnam Station.
    customer.fill("input[name=customerName]", "Lee Minji").await;
    customer.fill("input[name=phone]", "010-9876-5432").await;
    customer
        .select("select[name=pickup]", "seoul-station")
        .await;
    customer
        .select("select[name=dropoff]", "gangnam-station")
        .await;
    customer.press("#book-form", "Request taxi").await;
    customer
        .wait_text("#ride", "Seoul Station → Gangnam Station")
        .await;
    customer.shot("1-requested").await;

    // The offer reaches the driver's page by itself, with its countdown running.
    driver
        .wait_text("#offer", "Seoul Station → Gangnam Station")
        .await;
    let countdown = driver.wait_text("#offer .countdown", " s").await;
    let seconds: u32 = countdown.trim_end_matches(" s").parse().unwrap();
    assert!((1..=30).contains(&seconds), "countdown shows {countdown}");
    driver.shot("2-offer").await;
    driver.press("#offer", "Accept").await;
    driver
        .wait_attr("#driver-status", "data-status", "DISPATCHED")
        .await;

    // The customer sees the taxi coming without touching the page.
    customer
        .wait_attr("#ride-status", "data-status", "DISPATCHED")
        .await;
    customer.wait_text("#ride .taxi", "12가 3456").await;
    customer.shot("2-dispatched").await;

    driver.press("#trip", "Start trip").await;
    customer
        .wait_attr("#ride-status", "data-status", "IN_TRIP")
        .await;
    customer.shot("3-in-trip").await;

    // The driver ends the trip with the distance the page estimated.
    let estimate: i64 = driver.value("#end-distance").await.parse().unwrap();
    assert!((9_000..12_000).contains(&estimate), "estimate {estimate} m");
    driver.press("#trip", "End trip").await;
    driver
        .wait_attr("#driver-status", "data-status", "AVAILABLE")
        .await;
    let trips = driver
        .wait_text("#trips", "Seoul Station → Gangnam Station")
        .await;
    assert!(trips.contains("from 1 trip"), "{trips}");

    customer
        .wait_attr("#ride-status", "data-status", "COMPLETED")
        .await;
    let fare = customer.wait_text("#ride-fare", "₩").await;
    customer
        .wait_text("#history", "Seoul Station → Gangnam Station")
        .await;
    customer
        .wait_text("#notifications", "You have arrived")
        .await;
    customer.shot("4-completed").await;

    // What the pages show is what the API says.
    let token = app.api.token("c-web", &password_of("c-web")).await;
    let book = &app
        .api
        .get_as(&token, "/books?customerId=c-web")
        .await
        .expect(200)[0];
    assert_eq!(book["status"], "COMPLETED");
    let won = book["fare"].as_i64().unwrap();
    assert_eq!(fare, format_won(won));
    let earnings = driver.wait_text("#earnings", "₩").await;
    assert_eq!(earnings, format_won(won));
    driver.shot("3-earned").await;

    // The driver's session does not open the operator's page; the operator's does, and counts
    // the ride and sees every service ready.
    driver.open(&format!("{base}/operator")).await;
    driver.wait_text("h1", "Not for this account").await;
    driver.sign_out().await;
    driver.sign_in(&base, "operator", OPERATOR_PASSWORD).await;
    driver
        .wait_text("#ride-counts tr[data-status=COMPLETED]", "1")
        .await;
    for service in ["book", "dispatch", "pay", "notify", "reservation-view"] {
        driver
            .wait_text(&format!("#services tr[data-service={service}]"), "ready")
            .await;
    }
    driver
        .wait_text("#services tr[data-service=dispatch]", "pay: CLOSED")
        .await;
    driver.wait_text("#consumers", "ride-history").await;
    driver.shot("4-operator").await;

    // On behalf of the customer, the operator sees the customer's page.
    driver.open(&format!("{base}/customer")).await;
    driver.fill("input[name=customerId]", "c-web").await;
    driver.press("main", "Open").await;
    driver
        .wait_attr("#ride-status", "data-status", "COMPLETED")
        .await;
    driver.wait_text("h1", "for c-web").await;

    customer.close().await;
    driver.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_reservation_and_its_cancellation_by_clicks_with_the_wallet_following() {
    let app = spawn().await;
    let base = app.api.base.clone();
    app.api
        .post(
            "/flights",
            json!({"flightId": "KE703", "from": "ICN", "to": "NRT",
                   "departsAt": "2099-01-15T01:30:00Z", "seats": 3, "price": 189000}),
        )
        .await
        .expect(201);
    let browser = Browser::start().await;
    let w = browser.window("traveller", 1100, 1000).await;
    w.sign_up(&base, "u-web", "customer", "/traveller").await;
    w.wait_attr("#balance", "data-balance", "0").await;
    w.wait_text("#flights tr[data-flight=KE703] .seats-left", "3")
        .await;

    w.fill("#deposit-form input[name=amount]", "500,000").await;
    w.press("#deposit-form", "Deposit").await;
    w.wait_attr("#balance", "data-balance", "500000").await;
    assert_eq!(w.find("#balance").await.text().await.unwrap(), "₩500,000");

    w.press("#flights", "Reserve").await;
    w.wait_attr("#reservations li [data-status]", "data-status", "CONFIRMED")
        .await;
    w.wait_attr("#balance", "data-balance", "311000").await;
    w.wait_attr("#tickets li [data-status]", "data-status", "ISSUED")
        .await;
    w.wait_text("#flights tr[data-flight=KE703] .seats-left", "2")
        .await;
    w.shot("1-confirmed").await;

    w.press("#reservations", "Cancel").await;
    w.client
        .accept_alert()
        .await
        .expect("the confirmation is shown");
    w.wait_attr("#reservations li [data-status]", "data-status", "CANCELLED")
        .await;
    w.wait_attr("#balance", "data-balance", "500000").await;
    w.wait_attr("#tickets li [data-status]", "data-status", "VOID")
        .await;
    w.wait_text("#flights tr[data-flight=KE703] .seats-left", "3")
        .await;
    w.wait_text("#notifications", "Refunded ₩189,000").await;
    w.shot("2-cancelled").await;

    let token = app.api.token("u-web", &password_of("u-web")).await;
    let account = app.api.get_as(&token, "/accounts/u-web").await.expect(200);
    assert_eq!(account["balance"], 500000);
    let reservations = app
        .api
        .get_as(&token, "/reservations?userId=u-web")
        .await
        .expect(200);
    assert_eq!(
        reservations.as_array().unwrap().len(),
        1,
        "one click, one reservation"
    );
    assert_eq!(reservations[0]["status"], "CANCELLED");

    // Another traveller's page is not this session's to open.
    w.open(&format!("{base}/traveller?userId=someone-else"))
        .await;
    w.wait_text("h1", "Not your page").await;

    w.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_forms_say_what_is_wrong_and_keep_what_was_typed() {
    let app = spawn().await;
    let base = app.api.base.clone();
    app.api.register_driver("d-near", common::CITY_HALL).await;
    app.api.online("d-near").await;
    let browser = Browser::start().await;
    let w = browser.window("forms", 430, 932).await;

    // A username that is taken, then a card number that fails the Luhn check.
    w.sign_up(&base, "c-typo", "customer", "").await;
    w.sign_out().await;
    w.open(&format!("{base}/signup")).await;
    w.fill("#signup-form input[name=username]", "c-typo").await;
    w.fill("#signup-form input[name=password]", &password_of("c-typo"))
        .await;
    w.fill("#signup-form input[name=name]", "Park Jiho").await;
    w.fill("#signup-form input[name=phone]", "010-5555-6666")
        .await;
    w.press("#signup-form", "Sign up").await;
    w.wait_text(".alert", "That username is taken").await;
    assert_eq!(w.value("#signup-form input[name=name]").await, "Park Jiho");
    assert_eq!(w.value("#signup-form input[name=password]").await, "");
    w.sign_in(&base, "c-typo", &password_of("c-typo")).await;

    w.fill("input[name=customerName]", "Park Jiho").await;
    w.fill("input[name=phone]", "010-5555-6666").await;
    w.fill("input[name=card]", "4242 4242 4242 4241").await;
    w.press("#book-form", "Request taxi").await;
    let message = w.wait_text("#book-error .alert", "card").await;
    assert!(message.to_lowercase().contains("card"), "{message}");
    assert_eq!(w.value("input[name=card]").await, "4242 4242 4242 4241");
    assert_eq!(w.value("input[name=customerName]").await, "Park Jiho");
    w.shot("1-bad-card").await;

    // Coordinates that are not numbers.
    w.fill("input[name=card]", "4242 4242 4242 4242").await;
    w.select("select[name=pickup]", "coords").await;
    w.click("details summary").await;
    w.fill("input[name=pickupLat]", "north").await;
    w.fill("input[name=pickupLng]", "126.97").await;
    w.press("#book-form", "Request taxi").await;
    w.wait_text("#book-error .alert", "\"north\" is not a number")
        .await;
    let token = app.api.token("c-typo", &password_of("c-typo")).await;
    assert_eq!(
        app.api
            .get_as(&token, "/books?customerId=c-typo")
            .await
            .expect(200),
        json!([]),
        "nothing was booked"
    );

    // Fixed, the same form books (and the message goes away).
    w.fill("input[name=pickupLat]", "37.5665").await;
    w.press("#book-form", "Request taxi").await;
    w.wait_attr("#ride-status", "data-status", "REQUESTED")
        .await;
    let errors = w.find("#book-error").await.text().await.unwrap();
    assert_eq!(errors, "", "the old message is cleared");

    // A deposit that is not an amount, then one the API refuses.
    w.open(&format!("{base}/traveller")).await;
    w.fill("#deposit-form input[name=amount]", "lots").await;
    w.press("#deposit-form", "Deposit").await;
    w.wait_text("#wallet-error .alert", "\"lots\" is not a whole number")
        .await;
    w.fill("#deposit-form input[name=amount]", "-5000").await;
    w.press("#deposit-form", "Deposit").await;
    // Waits for words only the API's refusal has: the old message also
    // mentions the amount, and is still on screen until the answer comes.
    let refused = w.wait_text("#wallet-error .alert", "from 1 to").await;
    assert!(
        !refused.contains("lots"),
        "the new message replaced the old: {refused}"
    );
    w.shot("2-bad-deposit").await;
    assert_eq!(
        app.api.get_as(&token, "/accounts/c-typo").await.expect(200)["balance"],
        0
    );

    // A session that ended sends the page to sign in, and back after.
    w.sign_out().await;
    w.open(&format!("{base}/traveller")).await;
    w.wait_text("h1", "Sign in").await;
    w.fill("#signin-form input[name=username]", "c-typo").await;
    w.fill("#signin-form input[name=password]", &password_of("c-typo"))
        .await;
    w.press("#signin-form", "Sign in").await;
    w.wait_attr("#balance", "data-balance", "0").await;

    w.close().await;
    app.shutdown().await;
}

/// `₩12,300`, as the pages show money.
fn format_won(amount: i64) -> String {
    let digits = amount.to_string();
    let mut out = String::from("₩");
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Another site's page that posts a form to Tanda as soon as it loads: here a page on another
/// port of the same host, which is the same *site* to the browser, so it sends the victim's
/// `SameSite=Lax` session cookie along (a page on another domain would not even get that far).
/// The origin the browser reports gives it away, and nothing is deposited.
#[tokio::test]
async fn a_cross_site_form_riding_on_the_session_is_refused_in_a_real_browser() {
    let app = spawn().await;
    let base = app.api.base.clone();
    let browser = Browser::start().await;
    let w = browser.window("victim", 1100, 900).await;
    w.sign_up(&base, "v-web", "customer", "/traveller").await;
    w.wait_attr("#balance", "data-balance", "0").await;

    let attack = format!(
        r#"<!doctype html><html><body>
        <form id="f" method="post" action="{base}/ui/traveller/deposit">
          <input name="amount" value="777"></form>
        <script>document.getElementById("f").submit();</script></body></html>"#
    );
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let attack = attack.clone();
            async move { axum::response::Html(attack) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, page).await.unwrap() });

    w.client
        .goto(&evil)
        .await
        .expect("the other site's page opens");
    w.wait_text("body", "csrf_rejected").await;
    w.shot("1-refused").await;
    let token = app.api.token("v-web", &password_of("v-web")).await;
    let account = app.api.get_as(&token, "/accounts/v-web").await.expect(200);
    assert_eq!(account["balance"], 0, "nothing was deposited");

    // The victim's own page still deposits.
    w.client.goto(&format!("{base}/traveller")).await.unwrap();
    w.fill("#deposit-form input[name=amount]", "5,000").await;
    w.press("#deposit-form", "Deposit").await;
    w.wait_attr("#balance", "data-balance", "5000").await;
    w.close().await;
    app.shutdown().await;
}

/// `12,300원`, as the pages show money in Korean.
fn format_won_ko(amount: i64) -> String {
    format!("{}원", format_won(amount).trim_start_matches('₩'))
}

/// Korean is the pages' default: a customer whose browser speaks Korean signs up (the account's
/// language is Korean unless changed), books, and reads their ride, its fare in won and their
/// history in Korean; the switcher turns the same page English. The Korean page's screenshot is
/// the README's (`docs/screenshots/customer-ko.png`).
#[tokio::test]
async fn the_pages_speak_korean_by_default_and_english_on_request() {
    let app = spawn().await;
    let base = app.api.base.clone();
    app.api.register_driver("d-ko", common::CITY_HALL).await;
    app.api.online("d-ko").await;
    let browser = Browser::start().await;
    let w = browser.window_in("customer-ko", 1000, 700, "ko").await;

    w.sign_up(&base, "c-ko", "customer", "").await;
    w.wait_attr("html", "lang", "ko").await;
    w.wait_text("h1", "택시").await;
    let form = w.wait_text("#book-form", "택시 부르기").await;
    for label in ["출발지", "도착지", "카드 번호", "전화번호"] {
        assert!(form.contains(label), "{label} in {form}");
    }
    w.wait_text("#ride", "아직 부른 택시가 없습니다").await;
    w.wait_text("header", "로그아웃").await;

    w.fill("input[name=customerName]", "이민지").await;
    w.fill("input[name=phone]", "010-9876-5432").await;
    w.select("select[name=pickup]", "seoul-station").await;
    w.select("select[name=dropoff]", "gangnam-station").await;
    w.press("#book-form", "택시 부르기").await;
    w.wait_text("#ride-status", "배차 요청됨").await;
    w.wait_text("#ride", "서울역 → 강남역").await;

    // The driver takes the ride through the API; the page follows by itself.
    let dispatch = app.api.offer_for("d-ko").await["dispatchId"]
        .as_str()
        .unwrap()
        .to_owned();
    for step in ["accept", "start", "end"] {
        app.api
            .post(
                &format!("/dispatches/{dispatch}/{step}"),
                json!({"driverId": "d-ko"}),
            )
            .await
            .expect(200);
    }
    w.wait_attr("#ride-status", "data-status", "COMPLETED")
        .await;
    w.wait_text("#ride-status", "운행 완료").await;
    let token = app.api.token("c-ko", &password_of("c-ko")).await;
    let book = &app
        .api
        .get_as(&token, "/books?customerId=c-ko")
        .await
        .expect(200)[0];
    let fare = book["fare"].as_i64().unwrap();
    let shown = w.wait_text("#ride-fare", "원").await;
    assert_eq!(shown, format_won_ko(fare));
    w.wait_text("#ride-paid", "카드 •••• 4242").await;
    w.wait_text("#history", "서울역 → 강남역").await;
    w.wait_text("#history", &format_won_ko(fare)).await;
    w.client
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .unwrap();
    let shot = w.shot("1-korean").await;
    let readme = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&readme).unwrap();
    std::fs::copy(&shot, readme.join("customer-ko.png")).unwrap();

    // English on request: the same page, its words and its money.
    w.assert_clean().await;
    w.press("header", "English").await;
    w.wait_attr("html", "lang", "en").await;
    w.wait_text("#book-form", "Request taxi").await;
    w.wait_text("#ride", "Seoul Station → Gangnam Station")
        .await;
    assert_eq!(w.wait_text("#ride-fare", "₩").await, format_won(fare));
    w.wait_text("#ride-status", "Completed").await;
    w.wait_text("#ride-paid", "Card •••• 4242").await;
    w.shot("2-english").await;
    assert!(w.url().await.ends_with("/customer"), "back on the page");

    // And back.
    w.assert_clean().await;
    w.press("header", "한국어").await;
    w.wait_attr("html", "lang", "ko").await;
    w.wait_text("#book-form", "택시 부르기").await;

    w.close().await;
    app.shutdown().await;
}

/// A card declined at the end of a trip: the driver's page says so and offers to end again or to
/// take cash; the customer replaces the card on their ride's page, and the driver ends again. A
/// second ride on the declined card is paid in cash. Both pages say how each ride was paid.
#[tokio::test]
async fn a_declined_card_is_replaced_or_the_fare_taken_in_cash_by_clicks() {
    let app = spawn().await;
    let base = app.api.base.clone();
    let browser = Browser::start().await;
    let driver = browser.window("declined-driver", 1100, 900).await;
    let customer = browser.window("declined-customer", 430, 932).await;

    driver.sign_up(&base, "d-dec", "driver", "").await;
    driver.fill("input[name=name]", "Park Jisoo").await;
    driver.fill("input[name=carNumber]", "34나 5678").await;
    driver.fill("input[name=phone]", "010-3333-4444").await;
    driver.select("select[name=place]", "seoul-station").await;
    driver.press("#register-form", "Register").await;
    driver.press("#driver-panel", "Go online").await;
    driver
        .wait_attr("#driver-status", "data-status", "AVAILABLE")
        .await;
    customer.sign_up(&base, "c-dec", "customer", "").await;

    // A ride on a card the network declines, driven to its end.
    let ride = async |customer: &Window, driver: &Window| {
        customer.fill("input[name=customerName]", "Choi Yuna").await;
        customer.fill("input[name=phone]", "010-5555-0000").await;
        customer
            .fill("input[name=card]", "4000 0000 0000 0002")
            .await;
        customer
            .select("select[name=pickup]", "seoul-station")
            .await;
        customer.select("select[name=dropoff]", "myeongdong").await;
        customer.press("#book-form", "Request taxi").await;
        driver
            .wait_text("#offer", "Seoul Station → Myeongdong")
            .await;
        driver.press("#offer", "Accept").await;
        driver.press("#trip", "Start trip").await;
        customer
            .wait_attr("#ride-status", "data-status", "IN_TRIP")
            .await;
        driver.press("#trip", "End trip").await;
        driver.wait_text("#declined", "card was declined").await;
        driver
            .wait_attr("#driver-status", "data-status", "IN_TRIP")
            .await;
    };

    ride(&customer, &driver).await;
    driver.shot("1-declined").await;
    // The choice stays while the page refreshes itself.
    driver.wait_refresh("#driver-panel").await;
    driver.wait_text("#declined", "card was declined").await;

    // The customer replaces the card during the trip; the driver ends again.
    customer.wait_text("#card-form", "•••• 0002").await;
    customer.fill("#new-card", "4242 4242 4242 4242").await;
    customer.press("#card-form", "Replace card").await;
    customer.wait_text("#card-form", "•••• 4242").await;
    customer.wait_text("#ride-error", "•••• 4242").await;
    customer.shot("1-card-replaced").await;
    driver.press("#trip", "End again").await;
    driver
        .wait_attr("#driver-status", "data-status", "AVAILABLE")
        .await;
    customer
        .wait_attr("#ride-status", "data-status", "COMPLETED")
        .await;
    customer.wait_text("#ride-paid", "Card •••• 4242").await;
    driver.wait_text("#trips", "from 1 trip").await;

    // The next ride, declined again: the driver takes cash.
    ride(&customer, &driver).await;
    driver.press("#trip", "Paid in cash").await;
    driver
        .wait_attr("#driver-status", "data-status", "AVAILABLE")
        .await;
    let trips = driver.wait_text("#trips", "from 2 trips").await;
    assert!(trips.contains("Cash") && trips.contains("Card"), "{trips}");
    customer
        .wait_attr("#ride-status", "data-status", "COMPLETED")
        .await;
    customer.wait_text("#ride-paid", "Cash").await;
    customer.wait_text("#history", "Cash").await;
    customer.wait_text("#history", "Card •••• 4242").await;
    customer.shot("2-cash").await;
    driver.shot("2-cash").await;

    let token = app.api.token("c-dec", &password_of("c-dec")).await;
    let books = app
        .api
        .get_as(&token, "/books?customerId=c-dec")
        .await
        .expect(200);
    let pays = |book: &serde_json::Value| {
        let path = format!("/pays?bookId={}", book["bookId"].as_str().unwrap());
        let (api, token) = (&app.api, token.clone());
        async move { api.get_as(&token, &path).await.expect(200) }
    };
    let cash = pays(&books[0]).await;
    assert_eq!(cash[0]["method"], "CASH", "{cash}");
    let card = pays(&books[1]).await;
    assert_eq!(card[0]["method"], "CARD", "{card}");
    assert_eq!(card[0]["cardLast4"], "4242", "{card}");

    customer.close().await;
    driver.close().await;
    app.shutdown().await;
}

/// `/docs` renders the API's own document with the vendored viewer: nothing from another site,
/// nothing the content security policy blocks, every service's operations listed.
#[tokio::test]
async fn the_api_document_renders_at_docs() {
    let app = spawn().await;
    let base = app.api.base.clone();
    let browser = Browser::start().await;
    let w = browser.window("docs", 1200, 900).await;
    w.client.goto(&format!("{base}/docs")).await.unwrap();
    let rendered = "const d = document.querySelector('rapi-doc'); \
                    return d && d.shadowRoot ? d.shadowRoot.textContent : '';";
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = w.client.execute(rendered, vec![]).await.unwrap();
        let text = text.as_str().unwrap_or_default();
        if [
            "/books/{bookId}",
            "/reservations",
            "/auth/token",
            "/admin/dead-letters",
        ]
        .iter()
        .all(|path| text.contains(path))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer did not render: {text:.2000}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.shot("1-docs").await;
    let problems = w
        .client
        .execute("return window.__tandaProblems || ['not watched'];", vec![])
        .await
        .unwrap();
    assert_eq!(problems, json!([]), "the viewer ran into the page's policy");
    // (Not `close`: its checks are the site's pages', and the viewer is styled its own way.)
    let _ = w.client.close().await;
    app.shutdown().await;
}

/// The live map. A customer's map shows the pickup, the drop-off and, once a driver accepts, the
/// taxi; when the driver reports a new position (`PUT /drivers/{id}/location`) the taxi moves on
/// the customer's map without a click (positions are not notifications: a map with a taxi on its
/// way asks again every few seconds). The driver's map shows the trip and themselves, the
/// operator's the driver among the fleet. Nobody else's map is anyone's to read.
#[tokio::test]
async fn the_map_follows_the_taxi_as_the_driver_moves() {
    let app = spawn().await;
    let base = app.api.base.clone();
    let browser = Browser::start().await;
    let customer = browser.window("map-customer", 1000, 843).await;
    let driver = browser.window("map-driver", 1000, 843).await;
    let operator = browser.window("map-operator", 1000, 843).await;
    let map_in_view = "document.getElementById('map').scrollIntoView({block: 'center'});";

    // A driver waiting online a few hundred metres north of Seoul Station.
    let driver_api = app.api.signed_up("d-map", "driver").await;
    driver_api
        .post(
            "/drivers",
            json!({"driverId": "d-map", "name": "Park Jisoo", "carNumber": "31사 7219",
                   "phone": "010-7777-1234", "location": {"lat": 37.5601, "lng": 126.9745}}),
        )
        .await
        .expect(201);
    driver_api
        .post_empty("/drivers/d-map/online")
        .await
        .expect(200);
    driver.sign_in(&base, "d-map", &password_of("d-map")).await;
    driver.wait_attr("#map", "data-points", "taxi").await;

    // The customer books Seoul Station → Gangnam Station: both ends are on their map.
    customer.sign_up(&base, "c-map", "customer", "").await;
    customer.wait_attr("#map", "data-state", "ready").await;
    customer.fill("input[name=customerName]", "Lee Minji").await;
    customer.fill("input[name=phone]", "010-9876-5432").await;
    customer
        .select("select[name=pickup]", "seoul-station")
        .await;
    customer
        .select("select[name=dropoff]", "gangnam-station")
        .await;
    customer.press("#book-form", "Request taxi").await;
    customer
        .wait_attr("#map", "data-points", "pickup dropoff")
        .await;

    // The driver accepts: the customer's map shows the taxi where the driver is.
    driver.press("#offer", "Accept").await;
    driver
        .wait_attr("#map", "data-points", "pickup dropoff taxi")
        .await;
    customer
        .wait_attr("#map", "data-points", "pickup dropoff taxi")
        .await;
    let taxi = "#map circle[data-kind=taxi]";
    customer.wait_attr(taxi, "data-lat", "37.5601").await;
    let at = async |w: &Window| {
        let marker = w.find(taxi).await;
        (
            marker.attr("cx").await.unwrap(),
            marker.attr("cy").await.unwrap(),
        )
    };
    let before = at(&customer).await;

    // The driver reports a position nearer the pickup; the taxi moves on the customer's map.
    driver_api
        .put(
            "/drivers/d-map/location",
            json!({"lat": 37.5571, "lng": 126.9721}),
        )
        .await
        .expect(200);
    customer.wait_attr(taxi, "data-lat", "37.5571").await;
    customer.wait_attr(taxi, "data-lng", "126.9721").await;
    let after = at(&customer).await;
    assert_ne!(before, after, "the taxi's marker moved");
    customer.client.execute(map_in_view, vec![]).await.unwrap();
    customer.shot("map").await;
    driver
        .wait_attr("#map circle[data-kind=taxi]", "data-lat", "37.5571")
        .await;
    driver.client.execute(map_in_view, vec![]).await.unwrap();
    driver.shot("map").await;

    // The operator's map shows the driver, dispatched, with the ride they carry.
    operator.sign_in(&base, "operator", OPERATOR_PASSWORD).await;
    operator
        .wait_attr(
            "#map circle[data-key=taxi\\:d-map]",
            "data-status",
            "DISPATCHED",
        )
        .await;
    operator.find("#map circle[data-kind=pickup]").await;
    operator.client.execute(map_in_view, vec![]).await.unwrap();
    operator.shot("map").await;

    // On a phone-sized window the customer's map fits the screen and still shows the ride.
    customer.client.set_window_size(390, 844).await.unwrap();
    let width = customer
        .client
        .execute(
            "return document.querySelector('#map svg').clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        width.as_f64().is_some_and(|w| w > 200.0 && w < 390.0),
        "{width}"
    );
    customer
        .wait_attr("#map", "data-points", "pickup dropoff taxi")
        .await;
    customer.client.execute(map_in_view, vec![]).await.unwrap();
    customer.shot("map-phone").await;

    // A map is only its user's: not another customer's ride, not another driver, not the fleet.
    let token = app.api.token("c-map", &password_of("c-map")).await;
    let as_customer = app.api.as_token(&token);
    as_customer
        .get("/ui/map/customer?customerId=someone-else")
        .await
        .expect_problem(403, "forbidden");
    as_customer
        .get("/ui/map/driver?driverId=d-map")
        .await
        .expect_problem(403, "forbidden");
    as_customer
        .get("/ui/map/operator")
        .await
        .expect_problem(403, "forbidden");
    let mine = as_customer.get("/ui/map/customer").await.expect(200);
    assert_eq!(mine["points"][2]["lat"], 37.5571, "{mine}");

    customer.close().await;
    driver.close().await;
    operator.close().await;
    app.shutdown().await;
}

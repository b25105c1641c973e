//! The Loyalty Hub in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (W3C WebDriver) with fantoccini, against the real service (see
//! `common`: SQLite store, manual clock).
//!
//! Scenario members, each derived by hand from programs.md (clock 2030-01-15 12:00 UTC):
//!
//! - `camille` (NET-A-PORTER, FR → EUR): order o-c1 of €3,150.00 placed 1 Oct 2029,
//!   delivered 3 Oct 10:00 UTC; its window closes 28 days later (31 Oct) and the
//!   value is applied on 1 Nov 2029 00:00 London: Silver (€3,000), reviewed 1 Nov
//!   2030, with its welcome gift (1, valid 90 days: until 30 Jan 2030); next Gold
//!   at €6,000 → €2,850.00 to go. Order o-c2 (€500.00) delivered
//!   5 Jan 2030 matures 2 Feb and counts on 1 March 2030 (pending).
//! - `dmitri` (Perfone, RU → RUB): o-d1 of 320,000.00 ₽ paid at level base (5 %):
//!   16,000 points, available 14 days after delivery (21 Oct 2029), expiring 21 Oct
//!   2030; the kept total reaches standart (300,000); next gold at 700,000 →
//!   380,000.00 ₽ to go. o-d2 of 100,000.00 ₽ at standart (7 %): 7,000 points pending
//!   until 26 Jan 2030.
//! - `minjun` (MR PORTER, KR → USD): bronze on joining; o-m1 of $2,500.00 matures
//!   31 Mar 2029 → Silver ($2,000) in 2029, confirmed at the January 2030
//!   reassessment until 1 Jan 2031; 2030 spend is 0 → $6,500.00 to go to Gold.
//! - `louis` (NET-A-PORTER, no orders): the page camille's token must not open.
//!
//! Checked in French, Russian, Korean and English: tier, remaining amount formatted
//! for the locale, points, benefits with what is left, history in words, dates; the token cookie; a token that
//! cannot open another member's page (403) and no token (401); the phone width; the
//! staff console's sign-in, member search, what-if and tier chart. Screenshots go to
//! `target/screenshots/` (paths printed).
//!
//! Chromium and chromedriver come from `scripts/setup-browser.sh`; without them this
//! test FAILS, saying so.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};

use common::*;

const NOW: &str = "2030-01-15T12:00:00Z";

// ---- the browser ---------------------------------------------------------------------------

fn binary(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: the browser tests need Debian's chromium and chromedriver. \
         Run `bash scripts/setup-browser.sh` (as root, or with sudo) first, or set {variable}.",
        path.display()
    );
    path
}

/// A chromedriver process on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(log: &std::path::Path) -> Driver {
    let chromedriver = binary("PALIER_CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port for chromedriver")
        .port();
    let log_file = std::fs::File::create(log).expect("creating the chromedriver log");
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = http.get(format!("{}/status", driver.url)).send().await
            && response.status().is_success()
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not answer on {} within 20 s", driver.url);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn open_browser(driver: &Driver) -> Client {
    let chromium = binary("PALIER_CHROMIUM", "/usr/bin/chromium");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--force-device-scale-factor=1", "--hide-scrollbars",
                "--lang=en-GB", "--no-first-run", "--disable-extensions",
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("opening a chromium session through chromedriver: {e}"))
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/screenshots");
    dir.canonicalize().unwrap_or(dir)
}

/// Text as a person reads it: no-break spaces as spaces.
fn plain(text: &str) -> String {
    text.replace(['\u{a0}', '\u{202f}'], " ")
}

// ---- the test ----------------------------------------------------------------------------

struct Ctx {
    browser: Client,
    server: Server,
    shots: PathBuf,
    tokens: Vec<(String, String)>,
}

impl Ctx {
    fn token(&self, member: &str) -> &str {
        &self.tokens.iter().find(|(m, _)| m == member).expect("a token for the member").1
    }

    async fn goto(&self, path: &str) {
        let url = self.server.url(path);
        self.browser.goto(&url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        let element = match self.browser.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => {
                let url = self.browser.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let page = self.browser.find(Locator::Css("main")).await.ok();
                let shown = match page {
                    Some(main) => main.text().await.unwrap_or_default(),
                    None => String::new(),
                };
                panic!("no {css} on {url}: {e}\n{shown}")
            }
        };
        plain(&element.text().await.unwrap_or_else(|e| panic!("reading {css}: {e}")))
    }

    async fn exists(&self, css: &str) -> bool {
        !self.browser.find_all(Locator::Css(css)).await.map(|all| all.is_empty()).unwrap_or(true)
    }

    async fn script(&self, script: &str) -> Value {
        self.browser.execute(script, vec![]).await.unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// A full-page screenshot (the window is stretched to the page, then put back).
    async fn snap(&self, name: &str) {
        let (width, height) = self.browser.get_window_size().await.expect("the window size");
        let page = self.script("return Math.ceil(document.documentElement.scrollHeight)").await;
        let page = page.as_u64().unwrap_or(height).clamp(400, 8000);
        self.browser.set_window_size(width as u32, page as u32).await.expect("resizing the window");
        self.script("window.scrollTo(0, 0); return true").await;
        let png = self.browser.screenshot().await.expect("a screenshot");
        self.browser.set_window_size(width as u32, height as u32).await.expect("resizing the window back");
        let path = self.shots.join(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        println!("screenshot: {}", path.display());
    }
}

/// What one member's page must show in one language.
struct Expect {
    program: &'static str,
    member: &'static str,
    tier: &'static str,
    remaining: &'static str,
    review: Option<&'static str>,
    points: Option<(&'static str, &'static str)>,
    history: &'static [&'static str],
    /// A line of the benefits list (the program file's entitlements).
    benefit: Option<&'static str>,
}

fn expectations(lang: &str) -> Vec<Expect> {
    let (camille_remaining, camille_review, camille_history): (&str, &str, &[&str]) = match lang {
        "fr" => (
            "Plus que 2 850,00 € pour atteindre Gold",
            "Votre échelon sera réexaminé le 1 novembre 2030.",
            &[
                "1 novembre 2029",
                "3 150,00 € comptabilisés, échelon Silver atteint",
                "Commande o-c1 passée : 3 150,00 €",
            ],
        ),
        "ru" => (
            "До уровня Gold осталось 2 850,00 €",
            "Дата пересмотра уровня: 1 ноября 2030 г.",
            &["1 ноября 2029 г.", "Учтено 3 150,00 €, достигнут уровень Silver", "Заказ o-c1 оформлен: 3 150,00 €"],
        ),
        "ko" => (
            "Gold 등급까지 €2,850.00 남았습니다",
            "등급은 2030년 11월 1일에 재산정됩니다.",
            &["2029년 11월 1일", "€3,150.00 반영, Silver 등급 달성", "주문 o-c1 완료: €3,150.00"],
        ),
        _ => (
            "€2,850.00 to go to reach Gold",
            "Your tier is reviewed on 1 November 2030.",
            &["1 November 2029", "€3,150.00 counted, Silver reached", "Order o-c1 placed: €3,150.00"],
        ),
    };
    let camille_benefit = match lang {
        "fr" => "Cadeau de bienvenue · reste : 1 · valable jusqu’au 30 janvier 2030",
        "ru" => "Приветственный подарок · осталось: 1 · действует до 30 января 2030 г.",
        "ko" => "웰컴 기프트 · 1회 남음 · 2030년 1월 30일까지 유효",
        _ => "Welcome gift · 1 left · valid until 30 January 2030",
    };
    let (dmitri_remaining, dmitri_points, dmitri_history): (&str, (&str, &str), &[&str]) = match lang {
        "fr" => (
            "Plus que 380 000,00 ₽ pour atteindre gold",
            ("16 000", "7 000"),
            &["16 000 points disponibles jusqu’au 21 octobre 2030"],
        ),
        "ru" => (
            "До уровня gold осталось 380 000,00 ₽",
            ("16 000", "7 000"),
            &["доступно баллов: 16 000 (до 21 октября 2030 г.)"],
        ),
        "ko" => (
            "gold 등급까지 ₽380,000.00 남았습니다",
            ("16,000", "7,000"),
            &["16,000포인트 사용 가능 (2030년 10월 21일까지)"],
        ),
        _ => {
            ("₽380,000.00 to go to reach gold", ("16,000", "7,000"), &["16,000 points available until 21 October 2030"])
        }
    };
    let (minjun_remaining, minjun_review, minjun_history): (&str, &str, &[&str]) = match lang {
        "fr" => (
            "Plus que 6 500,00 $US pour atteindre Gold",
            "Votre échelon sera réexaminé le 1 janvier 2031.",
            &["Échelon Silver confirmé jusqu’au 1 janvier 2031"],
        ),
        "ru" => (
            "До уровня Gold осталось 6 500,00 $",
            "Дата пересмотра уровня: 1 января 2031 г.",
            &["Уровень Silver подтверждён до 1 января 2031 г."],
        ),
        "ko" => (
            "Gold 등급까지 US$6,500.00 남았습니다",
            "등급은 2031년 1월 1일에 재산정됩니다.",
            &["2031년 1월 1일까지 Silver 등급 확정"],
        ),
        _ => (
            "$6,500.00 to go to reach Gold",
            "Your tier is reviewed on 1 January 2031.",
            &["Silver confirmed until 1 January 2031"],
        ),
    };
    vec![
        Expect {
            program: "net-a-porter",
            member: "camille",
            tier: "Silver",
            remaining: camille_remaining,
            review: Some(camille_review),
            points: None,
            history: camille_history,
            benefit: Some(camille_benefit),
        },
        Expect {
            program: "perfone",
            member: "dmitri",
            tier: "standart",
            remaining: dmitri_remaining,
            review: None,
            points: Some(dmitri_points),
            history: dmitri_history,
            benefit: None,
        },
        Expect {
            program: "mr-porter",
            member: "minjun",
            tier: "Silver",
            remaining: minjun_remaining,
            review: Some(minjun_review),
            points: None,
            history: minjun_history,
            benefit: None,
        },
    ]
}

fn scenario_events() -> Vec<Value> {
    let order = |id: &str, program: &str, at: &str, member: &str, order: &str, currency: &str, price: &str| {
        json!({
            "id": id, "type": "order.placed", "program": program, "at": at, "member": member, "order": order,
            "currency": currency,
            "lines": [{"line": "l-1", "sku": format!("sku-{order}"), "brand": "Maison", "category": "bags", "quantity": 1, "price": price}],
            "delivery": "0.00", "payments": [{"method": "card", "amount": price}],
        })
    };
    let delivered = |id: &str, program: &str, at: &str, order: &str| json!({"id": id, "type": "order.delivered", "program": program, "at": at, "order": order});
    let registered = |id: &str, program: &str, at: &str, member: &str, country: &str| json!({"id": id, "type": "member.registered", "program": program, "at": at, "member": member, "country": country});
    vec![
        registered("b-1", "net-a-porter", "2029-09-01T10:00:00Z", "camille", "FR"),
        order("b-2", "net-a-porter", "2029-10-01T10:00:00Z", "camille", "o-c1", "EUR", "3150.00"),
        delivered("b-3", "net-a-porter", "2029-10-03T10:00:00Z", "o-c1"),
        order("b-4", "net-a-porter", "2030-01-02T10:00:00Z", "camille", "o-c2", "EUR", "500.00"),
        delivered("b-5", "net-a-porter", "2030-01-05T10:00:00Z", "o-c2"),
        registered("b-6", "net-a-porter", "2029-09-02T10:00:00Z", "louis", "FR"),
        registered("b-10", "perfone", "2029-10-01T09:00:00+03:00", "dmitri", "RU"),
        order("b-11", "perfone", "2029-10-05T12:00:00+03:00", "dmitri", "o-d1", "RUB", "320000.00"),
        delivered("b-12", "perfone", "2029-10-07T12:00:00+03:00", "o-d1"),
        order("b-13", "perfone", "2030-01-10T12:00:00+03:00", "dmitri", "o-d2", "RUB", "100000.00"),
        delivered("b-14", "perfone", "2030-01-12T12:00:00+03:00", "o-d2"),
        registered("b-20", "mr-porter", "2029-02-01T10:00:00Z", "minjun", "KR"),
        order("b-21", "mr-porter", "2029-03-01T10:00:00Z", "minjun", "o-m1", "USD", "2500.00"),
        delivered("b-22", "mr-porter", "2029-03-03T10:00:00Z", "o-m1"),
    ]
}

async fn set_up(server: &Server) -> Vec<(String, String)> {
    let clock =
        server.request(Method::POST, "/v1/admin/clock", Some(ADMIN_KEY), Some(json!({"now": NOW}).to_string())).await;
    assert_eq!(clock.status, 200, "setting the clock: {}", clock.text);
    let events: Vec<String> = scenario_events().iter().map(Value::to_string).collect();
    for outcome in server.post_events(&events, Format::Array).await {
        assert!(outcome.is("accepted"), "a scenario event was not accepted: {outcome:?}");
    }
    // The engine agrees with the derivation above (else the browser checks would
    // fail for reasons that are not the page's).
    for (member, program, tier, remaining) in [
        ("camille", "net-a-porter", "silver", "2850.00"),
        ("dmitri", "perfone", "standart", "380000.00"),
        ("minjun", "mr-porter", "silver", "6500.00"),
    ] {
        let document = server.member(member, program, NOW).await.json();
        assert_eq!(document["tier"], tier, "{member}: {document}");
        assert_eq!(document["next_tier"]["remaining"], remaining, "{member}: {document}");
    }
    let dmitri = server.member("dmitri", "perfone", NOW).await.json();
    assert_eq!(dmitri["points"]["available"], 16000, "{dmitri}");
    assert_eq!(dmitri["points"]["pending"], 7000, "{dmitri}");
    let mut tokens = Vec::new();
    for (member, program) in
        [("camille", "net-a-porter"), ("dmitri", "perfone"), ("minjun", "mr-porter"), ("louis", "net-a-porter")]
    {
        let reply = server
            .request(
                Method::POST,
                &format!("/v1/members/{member}/tokens?program={program}"),
                Some(ADMIN_KEY),
                Some(json!({"ttl_seconds": 3600}).to_string()),
            )
            .await;
        assert_eq!(reply.status, 201, "a token for {member}: {}", reply.text);
        tokens.push((member.to_string(), reply.json()["token"].as_str().expect("a token").to_string()));
    }
    tokens
}

/// Status codes and headers, which a browser session does not show.
async fn http_checks(ctx: &Ctx) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
    let get = |path: String| {
        let client = client.clone();
        let url = ctx.server.url(&path);
        async move { client.get(url).send().await.expect("a reply") }
    };
    let camille = ctx.token("camille");
    let ok = get(format!("/hub/net-a-porter/camille?token={camille}&lang=fr")).await;
    assert_eq!(ok.status(), 200);
    let cookie = ok.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(cookie.starts_with("palier_member=pm1.") && cookie.contains("HttpOnly"), "cookie: {cookie}");
    assert!(ok.headers().get("content-security-policy").is_some());
    assert_eq!(ok.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let body = ok.text().await.expect("the page");
    assert!(body.contains("<html lang=\"fr\">"), "the page is in French");
    // Without `?lang=`, Accept-Language chooses.
    let russian = client
        .get(ctx.server.url(&format!("/hub/net-a-porter/camille?token={camille}")))
        .header("accept-language", "de-DE, ru;q=0.8, en;q=0.5")
        .send()
        .await
        .expect("a reply");
    assert!(russian.text().await.expect("the page").contains("<html lang=\"ru\">"), "Accept-Language: ru");
    for (path, status) in [
        (format!("/hub/net-a-porter/louis?token={camille}"), 403),
        (format!("/hub/perfone/dmitri?token={camille}"), 403),
        ("/hub/net-a-porter/camille".to_string(), 401),
        ("/hub/net-a-porter/camille?token=pm1.forged.token".to_string(), 401),
        // Refused before the member is looked up: who exists is not told.
        ("/hub/net-a-porter/nobody".to_string(), 401),
        (format!("/hub/net-a-porter/nobody?token={camille}"), 403),
        ("/hub/staff".to_string(), 401),
        ("/hub/staff?key=wrong".to_string(), 401),
    ] {
        assert_eq!(get(path.clone()).await.status(), status, "GET {path}");
    }
    // An operator's key in the header opens any member's page, and tells who is not there.
    let with_key = |path: &str| client.get(ctx.server.url(path)).bearer_auth(ADMIN_KEY).send();
    assert_eq!(with_key("/hub/net-a-porter/louis").await.expect("a reply").status(), 200);
    assert_eq!(with_key("/hub/net-a-porter/nobody").await.expect("a reply").status(), 404);
    assert_eq!(with_key("/hub/staff?lang=ru").await.expect("a reply").status(), 200);
    // The staff key is exchanged for a session, and leaves the address.
    let login = get(format!("/hub/staff?key={ADMIN_KEY}&lang=ko")).await;
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers().get("location").and_then(|v| v.to_str().ok()), Some("/hub/staff?lang=ko"));
    // Escaping: a member id with markup is shown as text.
    let odd = with_key("/hub/net-a-porter/%3Cscript%3Ealert(1)%3C%2Fscript%3E").await.expect("a reply");
    let odd = odd.text().await.expect("the page");
    assert!(!odd.contains("<script>alert"), "unescaped markup in {odd}");
    for asset in ["/hub/static/hub.css", "/hub/static/hub.js"] {
        assert_eq!(get(asset.to_string()).await.status(), 200, "{asset}");
    }
}

async fn member_pages(ctx: &Ctx) {
    for lang in ["fr", "ru", "ko", "en"] {
        for expect in expectations(lang) {
            let started = Instant::now();
            let token = ctx.token(expect.member);
            ctx.goto(&format!("/hub/{}/{}?token={token}&lang={lang}", expect.program, expect.member)).await;
            let context = format!("{} in {lang}", expect.member);
            let html_lang = ctx.script("return document.documentElement.lang").await;
            assert_eq!(html_lang, json!(lang), "{context}: the lang attribute");
            assert_eq!(ctx.text("#tier").await, expect.tier, "{context}: tier");
            assert_eq!(ctx.text("#remaining").await, expect.remaining, "{context}: remaining");
            if let Some(review) = expect.review {
                assert_eq!(ctx.text("#review").await, review, "{context}: review");
            }
            match expect.points {
                Some((available, pending)) => {
                    assert_eq!(ctx.text("#points-available").await, available, "{context}: points available");
                    assert_eq!(ctx.text("#points-pending").await, pending, "{context}: points pending");
                }
                None => assert!(!ctx.exists("#points-card").await, "{context}: no points section"),
            }
            let history = ctx.text("#history").await;
            for line in expect.history {
                assert!(history.contains(line), "{context}: the history lacks {line:?}:\n{history}");
            }
            if let Some(benefit) = expect.benefit {
                let benefits = ctx.text("#benefits").await;
                assert!(benefits.contains(benefit), "{context}: the benefits lack {benefit:?}:\n{benefits}");
            }
            let progress = ctx.browser.find(Locator::Id("progress-bar")).await.expect("a progress bar");
            let value: u32 = progress.attr("value").await.ok().flatten().and_then(|v| v.parse().ok()).unwrap_or(999);
            assert!(value <= 100, "{context}: progress {value}");
            // The script took the token out of the address bar.
            let url = ctx.browser.current_url().await.expect("the URL").to_string();
            assert!(!url.contains("token="), "{context}: the token stays in {url}");
            ctx.snap(&format!("hub-{lang}-{}.png", expect.program)).await;
            println!("member page {context}: checked in {:?}", started.elapsed());
        }
    }
    // Pending spend and when it counts (camille's o-c2: matures 2 Feb, applied 1 March).
    ctx.goto(&format!("/hub/net-a-porter/camille?token={}&lang=en", ctx.token("camille"))).await;
    let pending = ctx.text("#pending").await;
    assert!(pending.contains("o-c2") && pending.contains("€500.00") && pending.contains("1 March 2030"), "{pending}");
    assert_eq!(ctx.text("#pending-total").await, "€500.00");
    // Perfone: the expiry schedule and the points on their way.
    ctx.goto(&format!("/hub/perfone/dmitri?token={}&lang=fr", ctx.token("dmitri"))).await;
    let expiry = ctx.text("#expiry").await;
    assert!(expiry.contains("21 octobre 2030") && expiry.contains("16 000"), "{expiry}");
    let incoming = ctx.text("#incoming").await;
    assert!(
        incoming.contains("o-d2") && incoming.contains("7 000") && incoming.contains("26 janvier 2030"),
        "{incoming}"
    );
    assert_eq!(ctx.text("#review").await, "Votre échelon n’est jamais abaissé.");
    let benefits = ctx.text("#benefits-card").await;
    assert!(benefits.contains("Vos avantages"), "{benefits}");
}

async fn refusals(ctx: &Ctx) {
    // Once opened with camille's token, her cookie opens her page without it…
    ctx.goto(&format!("/hub/net-a-porter/camille?token={}&lang=fr", ctx.token("camille"))).await;
    ctx.goto("/hub/net-a-porter/camille?lang=en").await;
    assert_eq!(ctx.text("#tier").await, "Silver");
    // …and not louis's, nor a page of another program.
    ctx.goto("/hub/net-a-porter/louis?lang=en").await;
    assert_eq!(ctx.text("#error-title").await, "Not allowed");
    assert!(!ctx.exists("#tier").await, "louis's page leaked");
    ctx.snap("hub-forbidden.png").await;
    let camille = ctx.token("camille").to_string();
    ctx.goto(&format!("/hub/perfone/dmitri?token={camille}&lang=ru")).await;
    assert_eq!(ctx.text("#error-title").await, "Доступ запрещён");
    assert!(!ctx.exists("#points-card").await, "dmitri's page leaked");
    // No cookie, no token: sign-in needed.
    ctx.browser.delete_all_cookies().await.expect("deleting cookies");
    ctx.goto("/hub/net-a-porter/camille?lang=ko").await;
    assert_eq!(ctx.text("#error-title").await, "로그인이 필요합니다");
    ctx.snap("hub-unauthorized.png").await;
}

async fn phone_width(ctx: &Ctx) {
    let (width, height) = ctx.browser.get_window_size().await.expect("the window size");
    ctx.browser.set_window_size(390, 844).await.expect("a phone-sized window");
    let dmitri = ctx.token("dmitri").to_string();
    for (path, name) in [
        (format!("/hub/perfone/dmitri?token={dmitri}&lang=ru"), "hub-ru-phone.png"),
        (format!("/hub/staff?key={ADMIN_KEY}&lang=fr&program=net-a-porter&member=camille"), "staff-phone.png"),
    ] {
        ctx.goto(&path).await;
        let overflow =
            ctx.script("return document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
        assert!(overflow.as_i64().unwrap_or(1) <= 0, "{name}: the page is wider than the phone ({overflow} px)");
        ctx.snap(name).await;
    }
    ctx.browser.set_window_size(width as u32, height as u32).await.expect("the window back");
    // The skip link is the keyboard's first stop, and shows its focus.
    ctx.goto(&format!("/hub/perfone/dmitri?token={dmitri}&lang=en")).await;
    let body = ctx.browser.find(Locator::Css("body")).await.expect("the body");
    body.send_keys("\u{e004}").await.expect("pressing Tab");
    let focused = ctx
        .script("const a = document.activeElement; const s = getComputedStyle(a); return [a.className, s.outlineStyle, s.outlineWidth];")
        .await;
    assert_eq!(focused, json!(["skip", "solid", "3px"]), "the first Tab stop and its focus ring");
}

async fn staff_console(ctx: &Ctx) {
    // WebDriver deletes the cookies the current page sees: the session's path is /hub/staff.
    ctx.goto("/hub/staff?lang=en").await;
    ctx.browser.delete_all_cookies().await.expect("deleting cookies");
    // Sign in through the form.
    ctx.goto("/hub/staff?lang=en").await;
    assert_eq!(ctx.text("#error-title").await, "Staff sign-in");
    let key = ctx.browser.find(Locator::Id("key")).await.expect("the key field");
    key.send_keys(ADMIN_KEY).await.expect("typing the key");
    ctx.browser.find(Locator::Css("form button[type=submit]")).await.expect("sign in").click().await.expect("click");
    ctx.browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("find")).await.expect("the console");
    // Find a member.
    let program = ctx.browser.find(Locator::Id("program")).await.expect("the program list");
    program.select_by_value("net-a-porter").await.expect("choosing NET-A-PORTER");
    let member = ctx.browser.find(Locator::Id("member")).await.expect("the member field");
    member.send_keys("camille").await.expect("typing the member");
    ctx.browser.find(Locator::Css("#find button")).await.expect("find").click().await.expect("click");
    ctx.browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("summary")).await.expect("a summary");
    assert_eq!(ctx.text("#summary-tier").await, "Silver");
    let timeline = ctx.text("#timeline").await;
    assert!(timeline.contains("tier_upgraded") && timeline.contains("€3,150.00 counted"), "{timeline}");
    let chart = ctx.text("#distribution-table").await;
    assert!(chart.contains("Silver 1") && chart.contains("No tier 1"), "the tier distribution: {chart}");
    let bars = ctx.browser.find_all(Locator::Css("#distribution svg rect.bar")).await.expect("bars");
    assert_eq!(bars.len(), 5, "four tiers and no tier");
    assert!(ctx.text("#notifications").await.contains("No notifications"));
    ctx.snap("staff.png").await;
    // What if camille spent €3,000.00 more today? Applied on 1 March 2030: Gold.
    let events = ctx.browser.find(Locator::Id("events")).await.expect("the events field");
    events.clear().await.expect("clearing the events");
    let placed = json!({
        "id": "w-1", "type": "order.placed", "at": NOW, "member": "camille", "order": "w-o-1", "currency": "EUR",
        "lines": [{"line": "l-1", "sku": "sku-w", "brand": "Maison", "category": "bags", "quantity": 1, "price": "3000.00"}],
        "delivery": "0.00", "payments": [{"method": "card", "amount": "3000.00"}],
    });
    let delivered = json!({"id": "w-2", "type": "order.delivered", "at": "2030-01-16T12:00:00Z", "order": "w-o-1"});
    events.send_keys(&format!("{placed}\n{delivered}")).await.expect("typing the events");
    let as_of = ctx.browser.find(Locator::Id("as_of")).await.expect("the as-of field");
    as_of.clear().await.expect("clearing as_of");
    as_of.send_keys("2030-03-15T00:00:00Z").await.expect("typing as_of");
    ctx.browser.find(Locator::Id("run")).await.expect("the run button").click().await.expect("click");
    ctx.browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("simulation"))
        .await
        .expect("a simulation result");
    let statuses = ctx.text("#simulation-events").await;
    assert_eq!(statuses.matches("accepted").count(), 2, "{statuses}");
    assert_eq!(ctx.text("#simulated-tier").await, "Gold");
    assert_eq!(ctx.text("#simulated-qualifying").await, "€6,650.00");
    let ahead = ctx.text("#simulation-ahead").await;
    assert!(ahead.contains("1 March 2030") && ahead.contains("Gold reached"), "{ahead}");
    // Nothing was written: the member is still Silver.
    let document = ctx.server.member("camille", "net-a-porter", NOW).await.json();
    assert_eq!(document["tier"], "silver");
    ctx.snap("staff-whatif.png").await;
    // The console in Korean, for an MR PORTER member.
    ctx.goto("/hub/staff?lang=ko&program=mr-porter&member=minjun").await;
    assert_eq!(ctx.text("#summary-tier").await, "Silver");
    assert_eq!(ctx.text("#distribution-title").await, "등급 분포");
    ctx.snap("staff-ko.png").await;
    // A member nobody registered.
    ctx.goto("/hub/staff?lang=en&program=perfone&member=nobody").await;
    assert!(ctx.exists("#not-found").await);
    // Signing out ends the session.
    ctx.goto("/hub/staff?lang=en").await;
    ctx.browser
        .find(Locator::Css("form[action='/hub/staff/logout'] button"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    ctx.browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("key")).await.expect("signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loyalty_hub_in_chromium() {
    let started = Instant::now();
    let shots = screenshot_dir();
    let driver = start_driver(&shots.join("chromedriver.log")).await;
    let browser = open_browser(&driver).await;
    println!("chromium and chromedriver up in {:?}", started.elapsed());
    let db = Db::sqlite();
    let server = Server::start(&db.location).await;
    let tokens = set_up(&server).await;
    let ctx = Arc::new(Ctx { browser: browser.clone(), server, shots, tokens });
    let run = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let phase = Instant::now();
            http_checks(&ctx).await;
            println!("HTTP checks: {:?}", phase.elapsed());
            let phase = Instant::now();
            member_pages(&ctx).await;
            println!("member pages (3 members x 4 languages): {:?}", phase.elapsed());
            let phase = Instant::now();
            refusals(&ctx).await;
            println!("refusals: {:?}", phase.elapsed());
            let phase = Instant::now();
            phone_width(&ctx).await;
            println!("phone width and focus: {:?}", phase.elapsed());
            let phase = Instant::now();
            staff_console(&ctx).await;
            println!("staff console: {:?}", phase.elapsed());
        })
    };
    let outcome = run.await;
    // Close the browser whatever happened, then report.
    let _ = browser.close().await;
    drop(driver);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
    if let Ok(ctx) = Arc::try_unwrap(ctx) {
        ctx.server.stop().await;
    }
    println!("browser test: {:?} in all", started.elapsed());
}

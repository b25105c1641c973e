//! The Loyalty Hub (issue 6 §4): server-rendered pages for members and staff.
//!
//! - `GET /hub/{program}/{member}`: a member's tier, progress, pending spend,
//!   points, benefits and history in words, in French, Russian, Korean or English
//!   (`?lang=`, else `Accept-Language`, else English). Opened only by a member
//!   token for that very member (`?token=` once, then the `palier_member` cookie,
//!   or `Authorization: Bearer pm1.…`) or by an API key with `members:read` in the
//!   `Authorization` header. The caller is checked before the member is looked up,
//!   like the API's member routes: a refused request learns nothing of who exists.
//! - `GET /hub/staff`: the staff console (see `staff`), for API keys with
//!   `members:read`: `Authorization` header, `?key=` once (answered by a redirect
//!   that drops the key from the address and sets a signed session cookie), or the
//!   sign-in form.
//!
//! Templates are askama's (compiled with the service, HTML auto-escaped);
//! formatting per locale is `locale`, the words `text`, the page content `view`.
//! No CDN, no build step: one stylesheet and a few lines of optional JavaScript,
//! bundled into the binary.

mod locale;
mod staff;
mod text;
mod view;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use palier_core::Program;
use palier_core::member::Member;
use serde::Deserialize;
use sha2::Sha256;

pub use self::locale::Locale;
pub(crate) use self::staff::{staff_login, staff_logout, staff_page, staff_simulate};
use self::text::{Text, text};
use self::view::MemberView;
pub use self::view::{BenefitLine, Remaining};
use crate::AppState;
use crate::auth::{Caller, Denied};

const CSS: &str = include_str!("hub/static/hub.css");
const JS: &str = include_str!("hub/static/hub.js");

/// The member token, once a page was opened with `?token=`.
const MEMBER_COOKIE: &str = "palier_member";
/// A staff session: `s1.PAYLOAD.SIGNATURE`.
const STAFF_COOKIE: &str = "palier_staff";
/// How long a staff session lasts.
const STAFF_SESSION_SECONDS: i64 = 8 * 3600;

/// Only this origin's stylesheet and script; forms post to this origin only.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The benefits the member page lists: the member's open entitlements
/// (`palier_core::benefits`), with what is left and when the first unit lapses.
pub fn benefits_of(program: &Program, member: &Member, at: Timestamp) -> Vec<BenefitLine> {
    member
        .benefits(at)
        .into_iter()
        .map(|view| BenefitLine {
            name: palier_core::benefits::definition(program, Some(view.tier), &view.benefit)
                .map_or_else(|| view.benefit.to_string(), |b| b.name.clone()),
            id: view.benefit.to_string(),
            remaining: view.remaining.map_or(Remaining::Unlimited, Remaining::Left),
            valid_until: view.expires_at,
        })
        .collect()
}

// ---- pages ---------------------------------------------------------------------------

/// A link of the language switch.
pub(crate) struct LangLink {
    pub tag: &'static str,
    pub name: &'static str,
    pub href: String,
    pub current: bool,
}

/// What every page's frame needs.
pub(crate) struct Page {
    pub lang: &'static str,
    pub title: String,
    /// Above the page title (the program's name).
    pub kicker: String,
    pub t: &'static Text,
    pub languages: Vec<LangLink>,
}

impl Page {
    /// `href(tag)` is the same page in another language.
    pub fn new(locale: Locale, title: String, kicker: String, href: impl Fn(&str) -> String) -> Page {
        Page {
            lang: locale.tag(),
            title,
            kicker,
            t: text(locale),
            languages: Locale::ALL
                .into_iter()
                .map(|l| LangLink { tag: l.tag(), name: l.native_name(), href: href(l.tag()), current: l == locale })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "member.html")]
struct MemberPage {
    page: Page,
    view: MemberView,
}

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub page: Page,
    pub heading: String,
    pub body: String,
    /// Show the staff sign-in form.
    pub login: bool,
    pub lang: &'static str,
}

/// An HTML response with the hub's headers (no caching, no referrer, CSP).
pub(crate) fn html(status: StatusCode, body: Result<String, askama::Error>, cookies: &[String]) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "rendering a hub page");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response();
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"palier\""));
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A 303 to `location`, setting cookies.
pub(crate) fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The page for a refused or failed request, in the visitor's language.
pub(crate) fn error_page(locale: Locale, status: StatusCode, path: &str, login: bool) -> Response {
    let t = text(locale);
    let (heading, body) = match status {
        StatusCode::UNAUTHORIZED => (t.e401_title, t.e401_body),
        StatusCode::FORBIDDEN => (t.e403_title, t.e403_body),
        StatusCode::NOT_FOUND => (t.e404_title, t.e404_body),
        _ => (t.e400_title, ""),
    };
    let (heading, body) = if login { (t.login_title, t.login_body) } else { (heading, body) };
    let page = Page::new(locale, heading.to_string(), t.hub_title.to_string(), |tag| format!("{path}?lang={tag}"));
    let template = ErrorPage { page, heading: heading.to_string(), body: body.to_string(), login, lang: locale.tag() };
    html(status, template.render(), &[])
}

/// The locale of a request: `?lang=`, else `Accept-Language`, else English.
pub(crate) fn locale_of(lang: Option<&str>, headers: &HeaderMap) -> Locale {
    lang.and_then(Locale::parse)
        .or_else(|| headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(Locale::negotiate))
        .unwrap_or(Locale::En)
}

/// A cookie of the request.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A path segment, percent-encoded (RFC 3986 unreserved characters kept).
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Why a page is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No credential, or one that is not valid (401).
    Unauthenticated,
    /// A valid credential that does not open this page (403).
    Forbidden,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden => StatusCode::FORBIDDEN,
        }
    }
}

// ---- the member page ---------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct MemberQuery {
    token: Option<String>,
    lang: Option<String>,
}

/// Who may open a member's page: a token of that member (query, header or cookie) or
/// a key with `members:read` in the header. Returns the cookie to set, if any.
fn member_access(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
    program: &str,
    member: &str,
) -> Result<Option<String>, Refusal> {
    let now = state.inner.clock.now().as_second();
    let check = |token: &str| -> Result<(), Refusal> {
        let (token_program, token_member) =
            state.inner.keys.check_member_token(token, now).map_err(|_| Refusal::Unauthenticated)?;
        if token_program == program && token_member == member { Ok(()) } else { Err(Refusal::Forbidden) }
    };
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        check(token)?;
        // The token names one member; the cookie carries it to the other languages.
        let cookie = format!("{MEMBER_COOKIE}={token}; Path=/hub/; HttpOnly; SameSite=Lax");
        return Ok(Some(cookie));
    }
    if let Some(authorization) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return match state.inner.keys.authorize_member(Some(authorization), "members:read", member, now) {
            Ok(Caller::Key(_)) => Ok(None),
            Ok(Caller::Member { program: token_program, .. }) if token_program == program => Ok(None),
            Ok(Caller::Member { .. }) | Err(Denied::Forbidden(_)) => Err(Refusal::Forbidden),
            Err(Denied::Unauthenticated(_)) => Err(Refusal::Unauthenticated),
        };
    }
    match cookie(headers, MEMBER_COOKIE) {
        Some(token) => check(token).map(|()| None),
        None => Err(Refusal::Unauthenticated),
    }
}

/// `GET /hub/{program}/{member}`.
pub(crate) async fn member_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, member_id)): Path<(String, String)>,
    Query(query): Query<MemberQuery>,
) -> Response {
    let locale = locale_of(query.lang.as_deref(), &headers);
    let path = format!("/hub/{}/{}", encode(&program_id), encode(&member_id));
    let cookie = match member_access(&state, &headers, query.token.as_deref(), &program_id, &member_id) {
        Ok(cookie) => cookie,
        Err(refusal) => return error_page(locale, refusal.status(), &path, false),
    };
    let live = &state.inner.live;
    let Some(index) = live.program_index(&program_id) else {
        return error_page(locale, StatusCode::NOT_FOUND, &path, false);
    };
    let live_program = &live.programs[index];
    let now = state.inner.clock.now();
    // One recomputation gives the state, its document and its timeline.
    let Some(member) = live_program.journaled(&member_id, now) else {
        return error_page(locale, StatusCode::NOT_FOUND, &path, false);
    };
    let program = &live_program.program;
    let document = member.document(program, now);
    let benefits = benefits_of(program, &member, now);
    let view = view::member_view(program, &member, &document, member.journal(), &benefits, locale, now);
    let t = text(locale);
    let page = Page::new(locale, format!("{} · {}", t.hub_title, program.name), program.name.clone(), |tag| {
        format!("{path}?lang={tag}")
    });
    let cookies: Vec<String> = cookie.into_iter().collect();
    html(StatusCode::OK, MemberPage { page, view }.render(), &cookies)
}

// ---- static assets ------------------------------------------------------------------------

/// `GET /hub/static/hub.css`.
pub(crate) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /hub/static/hub.js`: progressive enhancement only; every page works without it.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

// ---- signed staff sessions -------------------------------------------------------------

/// The key that signs staff sessions: derived from the service's stored secret with
/// its own label, so a session can be nothing else and survives restarts.
fn session_mac(state: &AppState) -> Hmac<Sha256> {
    let key = derive(&state.inner.pseudonym_secret, b"palier hub staff session v1");
    Hmac::<Sha256>::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"))
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// A session for an API key id, valid for [`STAFF_SESSION_SECONDS`].
pub(crate) fn new_session(state: &AppState, key_id: &str, now: i64) -> String {
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"k": key_id, "exp": now + STAFF_SESSION_SECONDS}).to_string().as_bytes());
    let mut mac = session_mac(state);
    mac.update(payload.as_bytes());
    format!("s1.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// The key id of a session whose signature holds and that has not expired.
pub(crate) fn check_session(state: &AppState, session: &str, now: i64) -> Option<String> {
    let (payload, signature) = session.strip_prefix("s1.")?.split_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let mut mac = session_mac(state);
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let expires = claims["exp"].as_i64()?;
    (expires > now).then(|| claims["k"].as_str().map(str::to_string)).flatten()
}

/// The form token of a session (a form posted from elsewhere cannot know it).
pub(crate) fn csrf_token(state: &AppState, session: &str) -> String {
    let mut mac = session_mac(state);
    mac.update(b"csrf.");
    mac.update(session.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub(crate) fn check_csrf(state: &AppState, session: &str, token: &str) -> bool {
    let mut mac = session_mac(state);
    mac.update(b"csrf.");
    mac.update(session.as_bytes());
    URL_SAFE_NO_PAD.decode(token).is_ok_and(|bytes| mac.verify_slice(&bytes).is_ok())
}

// ---- links for operators --------------------------------------------------------------------

impl AppState {
    /// A member's hub address (path and query) with a fresh member token, audited
    /// like `POST /v1/members/{id}/tokens` (`palier demo` prints one).
    pub async fn hub_member_link(
        &self,
        program: &str,
        member: &str,
        lang: &str,
        ttl_seconds: i64,
        actor: &str,
    ) -> Result<String, String> {
        let index =
            self.inner.live.program_index(program).ok_or_else(|| format!("program {program:?} is not loaded"))?;
        if !self.inner.live.programs[index].contains(member) {
            return Err(format!("member {member:?} is not registered in {program}"));
        }
        let expires = self.inner.clock.now().as_second() + ttl_seconds.clamp(60, 30 * 24 * 3600);
        let token = self.inner.keys.member_token(program, member, expires);
        let audit = self.audit_entry(
            actor,
            "token.issued",
            index,
            member,
            serde_json::json!({"expires_unix": expires, "for": "hub"}),
        );
        self.inner.store.append_audit(&audit).await.map_err(|e| e.to_string())?;
        Ok(format!("/hub/{}/{}?token={token}&lang={lang}", encode(program), encode(member)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("claire"), "claire");
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(encode("net-a-porter"), "net-a-porter");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; palier_member=pm1.x.y"));
        headers.append(header::COOKIE, HeaderValue::from_static("palier_staff=s1.p.s"));
        assert_eq!(cookie(&headers, MEMBER_COOKIE), Some("pm1.x.y"));
        assert_eq!(cookie(&headers, STAFF_COOKIE), Some("s1.p.s"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn locale_from_query_then_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(locale_of(None, &headers), Locale::En);
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("ko-KR,ko;q=0.9"));
        assert_eq!(locale_of(None, &headers), Locale::Ko);
        assert_eq!(locale_of(Some("ru"), &headers), Locale::Ru);
        assert_eq!(locale_of(Some("xx"), &headers), Locale::Ko);
    }
}

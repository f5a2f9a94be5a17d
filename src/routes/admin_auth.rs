//! Who may use `/api/*` and the admin page: the holder of `admin.token`, or without one,
//! anyone who can reach a loopback bind
//! (docs/design.md#admin-access).
//!
//! The API takes `Authorization: Bearer <token>`. The page also takes HTTP Basic with the
//! token as the password (any user name), because that is what a browser can send without
//! scripts: it prompts once and repeats the header on every request (RFC 7617).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use base64::Engine as _;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, Code};
use crate::state::AppState;

/// What the request proves about its sender.
enum Access {
    Granted,
    /// `admin.token` is set and the request did not present it.
    Unauthorized,
    /// No `admin.token` and a non-loopback bind: admin is off.
    Disabled,
}

fn check(req: &ServiceRequest, allow_basic: bool) -> Access {
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered");
    match &state.settings.admin.token {
        Some(token) => {
            let presented = credential(req.headers(), allow_basic).unwrap_or_default();
            if bool::from(presented.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
                Access::Granted
            } else {
                // Logged without the presented value.
                tracing::warn!(path = %req.path(), "admin: missing or wrong token");
                Access::Unauthorized
            }
        }
        None if state.settings.admin_open_without_token() => Access::Granted,
        None => Access::Disabled,
    }
}

/// The token in `Authorization: Bearer …`, or with `allow_basic` the password of
/// `Authorization: Basic base64(user:password)`.
fn credential(headers: &HeaderMap, allow_basic: bool) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.to_owned());
    }
    let encoded = value.strip_prefix("Basic ").filter(|_| allow_basic)?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(_, password)| password.to_owned())
}

const DISABLED: &str = "the admin API is disabled on a non-loopback bind until admin.token is set";

/// Middleware for `/api/*`.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match check(&req, false) {
        Access::Granted => next.call(req).await,
        Access::Unauthorized => Err(ApiError::new(
            Code::Unauthorized,
            "admin API needs `Authorization: Bearer <admin.token>`",
        )
        .into()),
        Access::Disabled => Err(ApiError::new(Code::AdminDisabled, DISABLED).into()),
    }
}

/// Middleware for the admin page: like `/api/*`, but a 401 asks the browser for the token
/// (`WWW-Authenticate: Basic`), and a form post from another site is refused.
pub async fn require_admin_page(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let refuse = |req: ServiceRequest, response: HttpResponse| {
        Ok(req.into_response(response).map_into_boxed_body())
    };
    match check(&req, true) {
        Access::Granted => {}
        Access::Unauthorized => {
            let response = HttpResponse::Unauthorized()
                .insert_header((
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"kitefix admin\", charset=\"UTF-8\"",
                ))
                .content_type("text/plain; charset=utf-8")
                .body("kitefix admin: sign in with admin.token as the password\n");
            return refuse(req, response);
        }
        Access::Disabled => {
            return refuse(req, HttpResponse::Forbidden().body(format!("{DISABLED}\n")));
        }
    }
    if req.method() == actix_web::http::Method::POST && is_cross_site(req.headers()) {
        // Basic credentials ride along on any request the browser makes, so a form on
        // another site could post here (CSRF). Fetch Metadata and Origin tell us.
        tracing::warn!(path = %req.path(), "admin page: cross-site form post refused");
        return refuse(req, HttpResponse::Forbidden().body("cross-site request refused\n"));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// `Sec-Fetch-Site` other than same-origin / none, or an `Origin` whose host is not ours.
fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("Sec-Fetch-Site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false; // Not a browser, or an old one: nothing to compare.
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(header::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn basic_credentials_count_only_for_the_page() {
        // "admin:s3cret-admin-token-1"
        let h = headers(&[("authorization", "Basic YWRtaW46czNjcmV0LWFkbWluLXRva2VuLTE=")]);
        assert_eq!(credential(&h, true).as_deref(), Some("s3cret-admin-token-1"));
        assert_eq!(credential(&h, false), None);
        let h = headers(&[("authorization", "Bearer abc")]);
        assert_eq!(credential(&h, true).as_deref(), Some("abc"));
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(is_cross_site(&headers(&[("origin", "https://evil.example"), ("host", "k:8080")])));
        assert!(!is_cross_site(&headers(&[("origin", "http://k:8080"), ("host", "k:8080")])));
        assert!(!is_cross_site(&headers(&[("host", "k:8080")])), "curl sends no Origin");
    }
}

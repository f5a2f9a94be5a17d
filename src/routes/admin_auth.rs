//! Who may use `/api/*`: a bearer token (`admin.token`), or without one, anyone who can
//! reach a loopback bind (DESIGN.md: "none: admin API only on a loopback bind").

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered").clone();
    match &state.settings.admin.token {
        Some(token) => {
            let presented = req
                .headers()
                .get("Authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !bool::from(presented.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
                // Logged without the presented value.
                tracing::warn!(path = %req.path(), "admin API: missing or wrong bearer token");
                return Err(ApiError::unauthorized(
                    "admin API needs `Authorization: Bearer <admin.token>`",
                )
                .into());
            }
        }
        None if state.settings.admin_open_without_token() => {}
        None => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "the admin API is disabled on a non-loopback bind until admin.token is set",
            )
            .into());
        }
    }
    next.call(req).await
}

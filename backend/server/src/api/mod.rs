//! The HTTP surface: every route under `/api/v1`, the OpenAPI document generated from the
//! handlers' annotations (served at `/api/openapi.json`), `/health`, and the sandbox gateway's
//! pay page. Who may call a route is declared by the `Need<...>` extractor in its handler and
//! written in its doc line ("Roles: ..."); `tests/roles.rs` walks every documented route with
//! every role.

pub mod admin;
pub mod audit;
pub mod contract;
pub mod faces;
pub mod kiosk;
pub mod me;
pub mod money;
pub mod session;
pub mod types;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "CleanPlate backend", description = "The canteen's book of record: prepaid accounts, idempotent double-entry charges, meal rules, top-ups, refunds, plate waste and kiosks. Money is a decimal string in yuan; errors are {\"error\": {\"code\", \"message\"}}."),
    tags(
        (name = "session", description = "Login with a session cookie + CSRF token"),
        (name = "kiosk", description = "Kiosk devices (Authorization: Bearer <device token>)"),
        (name = "setup", description = "Canteens, meal windows, prices, subsidies"),
        (name = "staff", description = "People, their accounts and logins"),
        (name = "kiosks", description = "Kiosk registration and revocation"),
        (name = "money", description = "Charges, exceptions, refunds, top-ups, plate waste"),
        (name = "faces", description = "Consent and encrypted face templates"),
        (name = "me", description = "Staff self-service"),
        (name = "audit", description = "Audit log and invariant checks"),
        (name = "sandbox", description = "The built-in sandbox payment gateway's pages"),
    ),
    // Kinds used only by query parameters (body types bring their own along).
    components(schemas(wire::fields::ChargeStatusName, wire::fields::RefundStatusName))
)]
struct ApiDoc;

/// Largest body of every route but the photo upload.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The routes with their OpenAPI description, before state is attached. The sandbox gateway's
/// routes (its pay page and its notification endpoint) exist only when `sandbox` is true:
/// without it nothing can credit money but a configured, verified provider.
pub fn api_router(sandbox: bool) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // Photos are far larger than any JSON body, so the photo route gets its own limit (axum's,
    // for that route) and stays outside the 1 MB limit every other route has.
    let photos = OpenApiRouter::new()
        .routes(routes!(faces::add_face_photo))
        .layer(DefaultBodyLimit::max(crate::face_photos::MAX_PHOTO_BYTES));
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::me))
        .routes(routes!(kiosk::enrol))
        .routes(routes!(kiosk::kiosk_me))
        .routes(routes!(kiosk::charge))
        .routes(routes!(kiosk::void_charge))
        .routes(routes!(kiosk::waste))
        .routes(routes!(kiosk::gallery))
        .routes(routes!(kiosk::redeem_pay_code))
        .routes(routes!(kiosk::waste_stats))
        .routes(routes!(kiosk::balances))
        .routes(routes!(admin::list_canteens, admin::create_canteen))
        .routes(routes!(admin::get_canteen, admin::patch_canteen))
        .routes(routes!(admin::put_meal_window))
        .routes(routes!(admin::put_price))
        .routes(routes!(admin::list_subsidy_rules))
        .routes(routes!(admin::put_subsidy_rule))
        .routes(routes!(admin::grant_subsidies))
        .routes(routes!(admin::list_staff, admin::create_staff))
        .routes(routes!(admin::get_staff, admin::patch_staff))
        .routes(routes!(admin::staff_balance))
        .routes(routes!(admin::staff_statement))
        .routes(routes!(admin::offboard))
        .routes(routes!(admin::create_user))
        .routes(routes!(admin::create_enrolment_code))
        .routes(routes!(admin::list_kiosks))
        .routes(routes!(admin::revoke_kiosk))
        .routes(routes!(money::list_charges))
        .routes(routes!(money::get_charge))
        .routes(routes!(money::reverse_charge))
        .routes(routes!(money::resolve_exception))
        .routes(routes!(money::list_refunds))
        .routes(routes!(money::decide_refund))
        .routes(routes!(money::list_topups))
        .routes(routes!(money::reconcile))
        .routes(routes!(money::list_waste))
        .routes(routes!(faces::get_consent, faces::put_consent))
        .routes(routes!(faces::list_templates, faces::add_template))
        .routes(routes!(faces::delete_template))
        .routes(routes!(me::balance))
        .routes(routes!(me::statement))
        .routes(routes!(me::charges))
        .routes(routes!(me::refunds, me::request_refund))
        .routes(routes!(me::create_topup, me::topups))
        .routes(routes!(me::consent, me::set_consent))
        .routes(routes!(me::templates))
        .routes(routes!(me::create_pay_code))
        .routes(routes!(me::delete_template))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::check))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .merge(photos);
    if sandbox {
        api = api.merge(
            OpenApiRouter::new()
                .routes(routes!(money::notify))
                .routes(routes!(money::pay_page, money::pay_submit))
                .layer(tower_http::limit::RequestBodyLimitLayer::new(
                    MAX_BODY_BYTES,
                )),
        );
    }
    api.split_for_parts()
}

/// Liveness: answers while the process serves HTTP (it does not touch the database). Public.
#[utoipa::path(get, path = "/health", tag = "session",
    responses((status = 200, description = "serving", content_type = "text/plain", body = String, example = "ok")))]
pub async fn health() -> &'static str {
    "ok"
}

/// The complete application.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api_router(state.sandbox.is_some());
    let doc = Arc::new(document(doc));
    api.route(
        "/api/openapi.json",
        get(move || {
            let d = doc.clone();
            async move { Json((*d).clone()) }
        }),
    )
    // Unknown routes answer with the same JSON error shape as everything else.
    .fallback(|| async { crate::error::ApiError::NotFound("route") })
    .layer(axum::middleware::map_response(crate::error::json_errors))
    // The web pages answer their own errors as HTML, so they are merged after the layer that
    // turns every other error into the API's JSON shape.
    .merge(web::router(Arc::new(crate::pages::WebHost(state.clone()))))
    .layer(axum::middleware::from_fn(crate::error::refuse_long_uris))
    .layer(tower_http::trace::TraceLayer::new_for_http())
    .with_state(state)
}

/// The served document: the generated one, completed (security, errors), describing itself.
fn document(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut doc = contract::complete(serde_json::to_value(doc).unwrap_or_default());
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        paths.insert(
            "/api/openapi.json".into(),
            serde_json::json!({"get": {
                "tags": ["session"],
                "operationId": "openapi",
                "summary": "This document (OpenAPI 3.1). Public.",
                "security": [],
                "x-roles": [],
                "responses": {"200": {"description": "the document",
                    "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}),
        );
    }
    doc
}

//! The people-facing routes the kiosk's enrolment desk calls with a manager's (or a staff
//! member's) session: log in, find staff, record consent, add face templates, make kiosk
//! enrolment codes and staff logins, and a staff member's one-time pay code. The backend
//! answers with these same types, so the desk cannot drift from it.

use crate::fields;
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `POST /api/v1/auth/login`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The answer to a login; the session itself travels in the `cp_session` cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginResponse {
    /// Send back as the `X-CSRF-Token` header on every non-GET request.
    pub csrf_token: String,
    pub role: String,
    pub user_id: i64,
    pub staff_id: Option<i64>,
}

/// A staff member (`GET /api/v1/staff`, `GET /api/v1/staff/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Staff {
    pub id: i64,
    pub employee_no: String,
    pub name: String,
    pub department: String,
    pub category: String,
    pub active: bool,
    pub meals_per_period: u32,
}

/// `PUT /api/v1/staff/{id}/consent` (and `/api/v1/me/consent`): biometric consent given or
/// withdrawn. Withdrawing deletes the person's face templates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConsentRequest {
    pub granted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Consent {
    pub staff_id: i64,
    pub granted: bool,
    pub changed_at_ms: Option<i64>,
}

/// `POST /api/v1/staff/{id}/templates`: a face template computed at the desk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TemplateRequest {
    /// The face embedding (128 numbers from the kiosk's model).
    #[serde(deserialize_with = "fields::check::embedding")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::Embedding))]
    pub embedding: Vec<f32>,
}

/// A face template's metadata (never the embedding).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Template {
    pub id: i64,
    pub staff_id: i64,
    pub version: i64,
    pub deleted: bool,
}

/// `POST /api/v1/kiosks/enrolment-codes`: a one-time code to register a kiosk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrolmentCodeRequest {
    #[serde(deserialize_with = "fields::check::whole::<fields::Id, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::Id))]
    pub canteen_id: i64,
    /// How long the code stays valid (default 60 minutes).
    #[serde(
        default,
        deserialize_with = "fields::check::opt_whole::<fields::ValidMinutes, _>"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<fields::ValidMinutes>))]
    pub valid_minutes: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrolmentCode {
    /// Shown once; type it into the kiosk.
    pub code: String,
    pub expires_at_ms: i64,
}

/// `POST /api/v1/users`: a login for a manager, staff member or auditor.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserRequest {
    #[serde(deserialize_with = "fields::check::text::<fields::Username, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::Username))]
    pub username: String,
    #[serde(deserialize_with = "fields::check::text::<fields::NewPassword, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::NewPassword))]
    pub password: String,
    /// manager, staff or auditor.
    #[serde(deserialize_with = "fields::check::keyword::<fields::PersonRole, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::PersonRole))]
    pub role: String,
    /// Required for (and only for) staff users.
    #[serde(
        default,
        deserialize_with = "fields::check::opt_whole::<fields::Id, _>"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<fields::Id>))]
    pub staff_id: Option<i64>,
}

impl std::fmt::Debug for UserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRequest")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("staff_id", &self.staff_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub staff_id: Option<i64>,
}

/// `POST /api/v1/me/pay-codes`: a staff member's one-time pay code (see
/// [`PayCodeRedeemRequest`](crate::PayCodeRedeemRequest)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PayCode {
    /// Show as a QR code; one use.
    pub code: String,
    pub expires_at_ms: i64,
}

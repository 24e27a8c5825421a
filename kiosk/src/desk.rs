//! The enrolment desk: a manager's session with the backend, used to enrol faces
//! (consent first, then templates computed here with the same face pipeline the kiosk
//! runs, so a desk PC with a camera needs no upload; the backend can also enrol from an
//! uploaded photo, `POST /api/v1/staff/{id}/face-photos`), to set meal windows, and to make kiosk
//! enrolment codes, and to give a staff member a login. The same session type serves a
//! staff member's own calls (a one-time pay code from `/me/pay-codes`, as the mobile page
//! would make it). The demo script and the end-to-end tests drive it through the
//! `kiosk desk ...` subcommands. It logs in with a session cookie and sends the CSRF
//! token the backend requires on every change.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::ApiError;

pub struct Desk {
    base: String,
    agent: ureq::Agent,
    cookie: String,
    csrf: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StaffRow {
    pub id: i64,
    pub employee_no: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CanteenRow {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TemplateRow {
    pub id: i64,
    pub staff_id: i64,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CodeRow {
    pub code: String,
}

/// A one-time pay code made by a staff member (`POST /api/v1/me/pay-codes`).
#[derive(Debug, Clone, Deserialize)]
pub struct PayCode {
    pub code: String,
    pub expires_at_ms: i64,
}

fn status_error(status: u16, text: &str) -> ApiError {
    match serde_json::from_str::<wire::ErrorBody>(text) {
        Ok(b) => ApiError::Status {
            status,
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => ApiError::Status {
            status,
            code: "http_error".into(),
            message: text.chars().take(200).collect(),
        },
    }
}

impl Desk {
    pub fn login(base_url: &str, username: &str, password: &str) -> Result<Desk, ApiError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let base = base_url.trim_end_matches('/').to_string();
        #[derive(Serialize)]
        struct Login<'a> {
            username: &'a str,
            password: &'a str,
        }
        #[derive(Deserialize)]
        struct LoginOut {
            csrf_token: String,
        }
        let mut resp = agent
            .post(&format!("{base}/api/v1/auth/login"))
            .send_json(Login { username, password })
            .map_err(|e| ApiError::NoAnswer(e.to_string()))?;
        let status = resp.status().as_u16();
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("cp_session="))
            .and_then(|v| v.split(';').next())
            .map(str::to_string);
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ApiError::NoAnswer(e.to_string()))?;
        if status != 200 {
            return Err(status_error(status, &text));
        }
        let out: LoginOut =
            serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))?;
        let cookie = cookie
            .ok_or_else(|| ApiError::Decode("login answer without a session cookie".into()))?;
        Ok(Desk {
            base,
            agent,
            cookie,
            csrf: out.csrf_token,
        })
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ApiError> {
        let url = format!("{}{}", self.base, path);
        let result = match method {
            "GET" => self.agent.get(&url).header("Cookie", &self.cookie).call(),
            m => {
                let b = body.unwrap_or(serde_json::Value::Null);
                let req = match m {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                req.header("Cookie", &self.cookie)
                    .header("X-CSRF-Token", &self.csrf)
                    .send_json(b)
            }
        };
        let mut resp = result.map_err(|e| ApiError::NoAnswer(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ApiError::NoAnswer(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            ApiError::Decode(format!(
                "{e}: {}",
                text.chars().take(200).collect::<String>()
            ))
        })
    }

    pub fn staff(&self) -> Result<Vec<StaffRow>, ApiError> {
        let mut all: Vec<StaffRow> = Vec::new();
        loop {
            let after = all.last().map(|s| s.id).unwrap_or(0);
            let page: Vec<StaffRow> = self.call(
                "GET",
                &format!("/api/v1/staff?after_id={after}&limit=500"),
                None,
            )?;
            let done = page.len() < 500;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    pub fn staff_by_employee_no(&self, employee_no: &str) -> Result<StaffRow, ApiError> {
        self.staff()?
            .into_iter()
            .find(|s| s.employee_no == employee_no)
            .ok_or_else(|| ApiError::Status {
                status: 404,
                code: "not_found".into(),
                message: format!("no staff member with employee number {employee_no}"),
            })
    }

    pub fn grant_consent(&self, staff_id: i64) -> Result<(), ApiError> {
        let _: serde_json::Value = self.call(
            "PUT",
            &format!("/api/v1/staff/{staff_id}/consent"),
            Some(serde_json::json!({ "granted": true })),
        )?;
        Ok(())
    }

    pub fn add_template(&self, staff_id: i64, embedding: &[f32]) -> Result<TemplateRow, ApiError> {
        self.call(
            "POST",
            &format!("/api/v1/staff/{staff_id}/templates"),
            Some(serde_json::json!({ "embedding": embedding })),
        )
    }

    pub fn canteens(&self) -> Result<Vec<CanteenRow>, ApiError> {
        self.call("GET", "/api/v1/canteens", None)
    }

    pub fn set_meal_window(
        &self,
        canteen_id: i64,
        meal: &str,
        start: &str,
        end: &str,
    ) -> Result<(), ApiError> {
        let _: serde_json::Value = self.call(
            "PUT",
            &format!("/api/v1/canteens/{canteen_id}/meal-windows/{meal}"),
            Some(serde_json::json!({ "start": start, "end": end })),
        )?;
        Ok(())
    }

    /// Stretches the three meal windows over the whole day (00-08, 08-16, 16-24), in an
    /// order that never makes two windows overlap on the way (the backend refuses that).
    /// For demos and tests that must charge at any hour.
    pub fn all_day_meals(&self, canteen_id: i64) -> Result<(), ApiError> {
        self.set_meal_window(canteen_id, "dinner", "16:00", "24:00")?;
        self.set_meal_window(canteen_id, "breakfast", "00:00", "08:00")?;
        self.set_meal_window(canteen_id, "lunch", "08:00", "16:00")
    }

    pub fn enrolment_code(&self, canteen_id: i64) -> Result<String, ApiError> {
        let c: CodeRow = self.call(
            "POST",
            "/api/v1/kiosks/enrolment-codes",
            Some(serde_json::json!({ "canteen_id": canteen_id, "valid_minutes": 60 })),
        )?;
        Ok(c.code)
    }

    /// Any GET, for tests and tools (`/api/v1/charges?...`, `/api/v1/waste`).
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        self.call("GET", path, None)
    }

    /// Any POST with a JSON body (CSRF token included), for tests and tools.
    pub fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        self.call("POST", path, Some(body))
    }

    /// A manager gives a staff member a login (passwords need at least 10 characters).
    pub fn create_staff_login(
        &self,
        staff_id: i64,
        username: &str,
        password: &str,
    ) -> Result<(), ApiError> {
        let _: serde_json::Value = self.call(
            "POST",
            "/api/v1/users",
            Some(serde_json::json!({
                "username": username, "password": password, "role": "staff", "staff_id": staff_id
            })),
        )?;
        Ok(())
    }

    /// Logged in as a staff member: a one-time pay code to show as a QR code.
    pub fn create_pay_code(&self) -> Result<PayCode, ApiError> {
        self.call("POST", "/api/v1/me/pay-codes", Some(serde_json::json!({})))
    }
}

//! The enrolment desk: a manager's session with the backend, used to enrol faces
//! (consent first, then templates computed here with the same face pipeline the kiosk
//! runs, so a desk PC with a camera needs no upload; the backend can also enrol from an
//! uploaded photo, `POST /api/v1/staff/{id}/face-photos`), to set meal windows, to make kiosk
//! enrolment codes, and to give a staff member a login. The same session type serves a
//! staff member's own calls (a one-time pay code from `/me/pay-codes`, as the mobile page
//! would make it). The demo script, the end-to-end tests and the kiosk UI's desk screens drive
//! it. It logs in with a session cookie and sends the CSRF token the backend requires on every
//! change. Requests and answers are the `wire` types the backend itself uses.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wire::{
    Canteen, Consent, ConsentRequest, EnrolmentCode, EnrolmentCodeRequest, LoginRequest,
    LoginResponse, Meal, MealWindowRequest, PayCode, Staff, Template, TemplateRequest, User,
    UserRequest,
};

use crate::api::ApiError;

pub struct Desk {
    base: String,
    agent: ureq::Agent,
    cookie: String,
    csrf: String,
    login: LoginResponse,
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

/// Reads an answer: its body as `T` on 2xx, the API's error otherwise.
fn read_answer<T: DeserializeOwned>(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(T, Option<String>), ApiError> {
    let mut resp = result.map_err(|e| ApiError::NoAnswer(e.to_string()))?;
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
    if !(200..300).contains(&status) {
        return Err(status_error(status, &text));
    }
    let body = serde_json::from_str(&text).map_err(|e| {
        ApiError::Decode(format!(
            "{e}: {}",
            text.chars().take(200).collect::<String>()
        ))
    })?;
    Ok((body, cookie))
}

#[derive(Clone, Copy)]
enum Method {
    Post,
    Put,
}

impl Desk {
    pub fn login(base_url: &str, username: &str, password: &str) -> Result<Desk, ApiError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let base = base_url.trim_end_matches('/').to_string();
        let (login, cookie): (LoginResponse, _) =
            read_answer(agent.post(&format!("{base}/api/v1/auth/login")).send_json(
                LoginRequest {
                    username: username.to_string(),
                    password: password.to_string(),
                },
            ))?;
        let cookie = cookie
            .ok_or_else(|| ApiError::Decode("login answer without a session cookie".into()))?;
        Ok(Desk {
            base,
            agent,
            cookie,
            csrf: login.csrf_token.clone(),
            login,
        })
    }

    /// Who logged in (role, staff id).
    pub fn who(&self) -> &LoginResponse {
        &self.login
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = format!("{}{}", self.base, path);
        read_answer(self.agent.get(&url).header("Cookie", &self.cookie).call()).map(|(b, _)| b)
    }

    fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            Method::Put => self.agent.put(&url),
            Method::Post => self.agent.post(&url),
        };
        read_answer(
            req.header("Cookie", &self.cookie)
                .header("X-CSRF-Token", &self.csrf)
                .send_json(body),
        )
        .map(|(b, _)| b)
    }

    pub fn staff(&self) -> Result<Vec<Staff>, ApiError> {
        let mut all: Vec<Staff> = Vec::new();
        loop {
            let after = all.last().map(|s| s.id).unwrap_or(0);
            let page: Vec<Staff> =
                self.get(&format!("/api/v1/staff?after_id={after}&limit=500"))?;
            let done = page.len() < 500;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    pub fn staff_by_employee_no(&self, employee_no: &str) -> Result<Staff, ApiError> {
        self.staff()?
            .into_iter()
            .find(|s| s.employee_no == employee_no)
            .ok_or_else(|| ApiError::Status {
                status: 404,
                code: "not_found".into(),
                message: format!("no staff member with employee number {employee_no}"),
            })
    }

    pub fn consent(&self, staff_id: i64) -> Result<Consent, ApiError> {
        self.get(&format!("/api/v1/staff/{staff_id}/consent"))
    }

    /// Records consent given (`granted`) or withdrawn (which deletes the person's templates).
    pub fn set_consent(&self, staff_id: i64, granted: bool) -> Result<Consent, ApiError> {
        self.send(
            Method::Put,
            &format!("/api/v1/staff/{staff_id}/consent"),
            &ConsentRequest { granted },
        )
    }

    pub fn grant_consent(&self, staff_id: i64) -> Result<Consent, ApiError> {
        self.set_consent(staff_id, true)
    }

    pub fn templates(&self, staff_id: i64) -> Result<Vec<Template>, ApiError> {
        self.get(&format!("/api/v1/staff/{staff_id}/templates"))
    }

    pub fn add_template(&self, staff_id: i64, embedding: &[f32]) -> Result<Template, ApiError> {
        self.send(
            Method::Post,
            &format!("/api/v1/staff/{staff_id}/templates"),
            &TemplateRequest {
                embedding: embedding.to_vec(),
            },
        )
    }

    pub fn canteens(&self) -> Result<Vec<Canteen>, ApiError> {
        self.get("/api/v1/canteens")
    }

    pub fn set_meal_window(
        &self,
        canteen_id: i64,
        meal: Meal,
        start: &str,
        end: &str,
    ) -> Result<Canteen, ApiError> {
        self.send(
            Method::Put,
            &format!(
                "/api/v1/canteens/{canteen_id}/meal-windows/{}",
                meal.as_str()
            ),
            &MealWindowRequest {
                start: start.to_string(),
                end: end.to_string(),
            },
        )
    }

    /// Stretches the three meal windows over the whole day (00-08, 08-16, 16-24), in an
    /// order that never makes two windows overlap on the way (the backend refuses that).
    /// For demos and tests that must charge at any hour.
    pub fn all_day_meals(&self, canteen_id: i64) -> Result<(), ApiError> {
        self.set_meal_window(canteen_id, Meal::Dinner, "16:00", "24:00")?;
        self.set_meal_window(canteen_id, Meal::Breakfast, "00:00", "08:00")?;
        self.set_meal_window(canteen_id, Meal::Lunch, "08:00", "16:00")?;
        Ok(())
    }

    pub fn enrolment_code(&self, canteen_id: i64) -> Result<String, ApiError> {
        let c: EnrolmentCode = self.send(
            Method::Post,
            "/api/v1/kiosks/enrolment-codes",
            &EnrolmentCodeRequest {
                canteen_id,
                valid_minutes: Some(60),
            },
        )?;
        Ok(c.code)
    }

    /// Any GET, for tests and tools (`/api/v1/charges?...`, `/api/v1/waste`).
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        self.get(path)
    }

    /// Any POST with a JSON body (CSRF token included), for tests and tools.
    pub fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        self.send(Method::Post, path, &body)
    }

    /// A manager gives a staff member a login (passwords need at least 10 characters).
    pub fn create_staff_login(
        &self,
        staff_id: i64,
        username: &str,
        password: &str,
    ) -> Result<User, ApiError> {
        self.send(
            Method::Post,
            "/api/v1/users",
            &UserRequest {
                username: username.to_string(),
                password: password.to_string(),
                role: "staff".into(),
                staff_id: Some(staff_id),
            },
        )
    }

    /// Logged in as a staff member: a one-time pay code to show as a QR code.
    pub fn create_pay_code(&self) -> Result<PayCode, ApiError> {
        self.send(Method::Post, "/api/v1/me/pay-codes", &serde_json::json!({}))
    }
}

//! The server's side of the web pages (crate `web`): [`WebHost`] implements `web::Host` with
//! the same functions the API handlers use — the session lookup and CSRF comparison of
//! `auth`, the rate-limited password check of `api::session::open_session`, the top-up and
//! pay-code starters of `api::me` — so the pages and the API share one session, one CSRF
//! token and one rule for each thing.

use crate::auth::{csrf_matches, Principal};
use crate::crypto::{random_token, token_hash};
use crate::error::ApiError;
use crate::state::AppState;
use std::sync::Arc;
use store::{Store, User};
use web::{HostError, PageSession, SignIn};

pub struct WebHost(pub AppState);

/// Argon2 is deliberately slow: keep it off the async workers.
async fn hash_off_the_workers(secret: String) -> Result<String, HostError> {
    tokio::task::spawn_blocking(move || crate::crypto::hash_password(&secret))
        .await
        .map_err(|e| HostError::Internal(e.to_string()))?
        .map_err(|e| HostError::Internal(e.to_string()))
}

impl From<ApiError> for HostError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized => HostError::BadCredentials,
            ApiError::TooManyRequests => HostError::RateLimited,
            ApiError::Internal(d) => HostError::Internal(d),
            ApiError::Unavailable(d) => HostError::Unavailable(d),
            other => HostError::Refused {
                status: other.status().as_u16(),
                code: other.code().to_string(),
                message: other.to_string(),
            },
        }
    }
}

#[async_trait::async_trait]
impl web::Host for WebHost {
    fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    fn now_ms(&self) -> i64 {
        self.0.clock.now_ms()
    }

    fn random_token(&self) -> String {
        random_token()
    }

    fn cookie_secure(&self) -> bool {
        self.0.cfg.cookie_secure
    }

    async fn session(&self, cookie_token: &str) -> Result<Option<PageSession>, HostError> {
        let s = self
            .0
            .store
            .session(&token_hash(cookie_token), crate::state::now_ms())
            .await
            .map_err(ApiError::from)?;
        Ok(s.map(|s| PageSession {
            user: s.user,
            csrf_token: s.csrf_token,
        }))
    }

    fn csrf_matches(&self, session: &PageSession, sent: &str) -> bool {
        csrf_matches(sent, &session.csrf_token)
    }

    async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<SignIn, HostError> {
        let o = crate::api::session::open_session(&self.0, username, password, client_ip).await?;
        Ok(SignIn {
            user: o.user,
            set_cookie: o.cookie,
        })
    }

    async fn sign_out(&self, cookie_token: &str) -> Result<(), HostError> {
        self.0
            .store
            .delete_session(&token_hash(cookie_token))
            .await
            .map_err(ApiError::from)?;
        Ok(())
    }

    async fn start_top_up(&self, user: &User, amount: ledger::Fen) -> Result<String, HostError> {
        let p = Principal::User(user.clone());
        let (_, url) = crate::api::me::start_topup(&self.0, &p, amount).await?;
        Ok(url)
    }

    async fn new_pay_code(&self, user: &User) -> Result<(String, i64), HostError> {
        let me = Principal::User(user.clone()).own_staff_id()?;
        Ok(crate::api::me::issue_pay_code(&self.0, me).await?)
    }

    async fn enrol_photo(
        &self,
        manager: &User,
        staff_id: i64,
        photo: Vec<u8>,
    ) -> Result<f32, HostError> {
        let actor = Principal::User(manager.clone()).actor();
        let (_, face) =
            crate::api::faces::enrol_photo(&self.0, staff_id, photo.into(), &actor).await?;
        Ok(face.quality.score)
    }

    async fn issue_kiosk_code(
        &self,
        manager: &User,
        canteen_id: i64,
    ) -> Result<(String, i64), HostError> {
        Ok(crate::api::admin::issue_kiosk_code(
            &self.0,
            canteen_id,
            None,
            &Principal::User(manager.clone()).actor(),
        )
        .await?)
    }

    async fn revoke_kiosk(&self, manager: &User, kiosk_id: i64) -> Result<(), HostError> {
        crate::api::admin::revoke(&self.0, kiosk_id, &Principal::User(manager.clone()).actor())
            .await?;
        Ok(())
    }

    async fn reconcile_top_up(&self, order_no: &str) -> Result<String, HostError> {
        Ok(crate::api::money::reconcile_order(&self.0, order_no).await?)
    }

    async fn issue_sign_in_code(
        &self,
        manager: &User,
        staff_id: i64,
    ) -> Result<(String, i64), HostError> {
        let code = crate::api::admin::enrolment_code();
        // Real time, as sessions and the sign-in check keep it (not the business clock).
        let until = crate::state::now_ms() + self.0.cfg.sign_in_code_valid_hours.max(1) * 3_600_000;
        let hash = hash_off_the_workers(code.clone()).await?;
        self.0
            .store
            .issue_sign_in_code(
                staff_id,
                &hash,
                until,
                &Principal::User(manager.clone()).actor(),
            )
            .await
            .map_err(ApiError::from)?;
        Ok((code, until))
    }

    async fn set_own_password(
        &self,
        cookie_token: &str,
        user: &User,
        new_password: &str,
    ) -> Result<(), HostError> {
        use wire::fields::TextKind;
        // The API's rule for a new password, so the page and any future API route agree.
        let password = wire::fields::NewPassword::RULE
            .check(new_password)
            .map_err(|e| HostError::Refused {
                status: 422,
                code: e.code.to_string(),
                message: e.message,
            })?;
        let hash = hash_off_the_workers(password).await?;
        self.0
            .store
            .set_own_password(
                user.id,
                &hash,
                &token_hash(cookie_token),
                &Principal::User(user.clone()).actor(),
            )
            .await
            .map_err(ApiError::from)?;
        Ok(())
    }

    async fn verify_audit(&self) -> Result<store::CheckReport, HostError> {
        crate::full_check(&self.0.store, &self.0.cfg, self.0.clock.now_ms())
            .await
            .map_err(|e| HostError::Internal(e.to_string()))
    }
}

//! The staff's mobile page (`/me/...`).

use crate::HostRef;
use axum::Router;

pub fn routes() -> Router<HostRef> {
    Router::new()
}

//! Top-ups through a payment provider. [`PaymentProvider`] is what a real gateway (WeChat Pay,
//! Alipay, a bank) must implement: register an order and give a pay URL, verify and parse a
//! signed asynchronous notification, and answer an order query for reconciliation. The built-in
//! [`SandboxProvider`] behaves like such a gateway: a pay page, then a notification signed with
//! HMAC-SHA256 delivered asynchronously and retried until acknowledged, and a query endpoint.
//! Its own books live in the database (`sandbox_gateway`), apart from ours, so several backend
//! instances agree on what was paid.
//!
//! Crediting is exactly-once by construction in the store (`credit_payment` locks the order row
//! and credits only an uncredited order with the exact amount); this module's job is to refuse
//! anything not signed by the gateway before it gets there.

use crate::state::{now_ms, AppState};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use ledger::Fen;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use store::{CreditOutcome, PaymentOrder, PaymentReturn, Store};

pub const SIGNATURE_HEADER: &str = "x-sandbox-signature";

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("notification signature is missing or wrong")]
    BadSignature,
    #[error("notification is malformed: {0}")]
    Malformed(String),
    #[error("payment provider error: {0}")]
    Provider(String),
    #[error("no payment provider is configured")]
    NoProvider,
}

/// A verified notification: the provider says this order was paid this much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub order_no: String,
    pub amount: Fen,
    pub txn: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderOrderState {
    NotPaid,
    Paid { amount: Fen, txn: String },
}

#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Registers the order with the provider and returns where the payer goes to pay.
    async fn create(&self, order: &PaymentOrder) -> Result<String, PaymentError>;
    /// Checks the signature over the raw body and parses it. Nothing unsigned gets through.
    fn verify(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Notification, PaymentError>;
    /// Asks the provider what it knows about an order (reconciliation).
    async fn query(&self, order_no: &str) -> Result<ProviderOrderState, PaymentError>;
    /// Sends a payment back to the payer (an order refused because the person had left).
    /// Must be idempotent per order: asking twice refunds once and answers the same refund
    /// transaction.
    async fn refund(&self, refused: &PaymentReturn) -> Result<String, PaymentError>;
}

/// The sandbox notification body (what a gateway POSTs to us).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxNotice {
    pub order_no: String,
    /// Yuan, e.g. "50.00".
    pub amount: Decimal,
    pub txn: String,
    pub paid_at_ms: i64,
}

pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for HMAC.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub struct SandboxProvider {
    store: Arc<dyn Store>,
    secret: Vec<u8>,
    base_url: String,
}

impl SandboxProvider {
    pub fn new(store: Arc<dyn Store>, secret: &str, base_url: &str) -> Self {
        SandboxProvider {
            store,
            secret: secret.as_bytes().to_vec(),
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn signed_notice(&self, n: &SandboxNotice) -> (Vec<u8>, String) {
        let body = serde_json::to_vec(n).unwrap_or_default();
        let sig = sign(&self.secret, &body);
        (body, sig)
    }
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn create(&self, order: &PaymentOrder) -> Result<String, PaymentError> {
        Ok(format!("{}/sandbox/pay/{}", self.base_url, order.order_no))
    }

    fn verify(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Notification, PaymentError> {
        let sig = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| hex::decode(s.trim()).ok())
            .ok_or(PaymentError::BadSignature)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .map_err(|_| PaymentError::BadSignature)?;
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&sig)
            .map_err(|_| PaymentError::BadSignature)?;
        let n: SandboxNotice =
            serde_json::from_slice(body).map_err(|e| PaymentError::Malformed(e.to_string()))?;
        let amount = Fen::positive_from_yuan(n.amount)
            .map_err(|e| PaymentError::Malformed(e.to_string()))?;
        Ok(Notification {
            order_no: n.order_no,
            amount,
            txn: n.txn,
        })
    }

    async fn query(&self, order_no: &str) -> Result<ProviderOrderState, PaymentError> {
        match self
            .store
            .sandbox_payment(order_no)
            .await
            .map_err(|e| PaymentError::Provider(e.to_string()))?
        {
            Some(p) => Ok(ProviderOrderState::Paid {
                amount: p.amount,
                txn: p.txn,
            }),
            None => Ok(ProviderOrderState::NotPaid),
        }
    }

    async fn refund(&self, refused: &PaymentReturn) -> Result<String, PaymentError> {
        let provider_err = |e: store::StoreError| PaymentError::Provider(e.to_string());
        let paid = self
            .store
            .sandbox_payment(&refused.order_no)
            .await
            .map_err(provider_err)?
            .ok_or_else(|| PaymentError::Provider("the sandbox has no such payment".into()))?;
        if paid.txn != refused.provider_txn || paid.amount != refused.amount {
            return Err(PaymentError::Provider(
                "the refund does not match the sandbox's payment".into(),
            ));
        }
        let txn = format!("SBR{}", &crate::crypto::random_token()[..20]);
        self.store
            .sandbox_record_refund(&refused.order_no, refused.amount, &txn, now_ms())
            .await
            .map_err(provider_err)?;
        // The first refund's transaction, whichever call recorded it.
        self.store
            .sandbox_refund(&refused.order_no)
            .await
            .map_err(provider_err)?
            .ok_or_else(|| PaymentError::Provider("refund vanished".into()))
    }
}

/// Sends refused payments (the person had left) back to their payers through the provider
/// and records each return; what fails stays pending for the next round. Returns how many
/// went back.
pub async fn return_refused_payments(state: &AppState) -> Result<usize, PaymentError> {
    let Some(provider) = state.payments.as_ref() else {
        return Ok(0);
    };
    let pending = state
        .store
        .pending_payment_returns(100)
        .await
        .map_err(|e| PaymentError::Provider(e.to_string()))?;
    let mut returned = 0;
    for r in pending {
        match provider.refund(&r).await {
            Ok(refund) => {
                state
                    .store
                    .mark_payment_returned(&r.order_no, &refund, now_ms())
                    .await
                    .map_err(|e| PaymentError::Provider(e.to_string()))?;
                tracing::info!(order = %r.order_no, %refund, "payment returned to the payer (the person had left)");
                returned += 1;
            }
            Err(e) => {
                tracing::warn!(order = %r.order_no, error = %e, "returning a refused payment failed; will retry")
            }
        }
    }
    Ok(returned)
}

/// Retries refused payments' returns every `interval`, forever (a provider may be down).
pub async fn run_payment_returns(state: AppState, interval: std::time::Duration) {
    loop {
        if let Err(e) = return_refused_payments(&state).await {
            tracing::warn!(error = %e, "payment returns failed; will retry");
        }
        tokio::time::sleep(interval).await;
    }
}

/// Processes a raw notification: verify, then credit (exactly once, in the store). A refused
/// notification is logged but never written to the database: anyone can post here, and storing
/// what strangers send would let them fill the disk.
pub async fn handle_notification(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<CreditOutcome, PaymentError> {
    let provider = state.payments.as_ref().ok_or(PaymentError::NoProvider)?;
    let n = match provider.verify(headers, body) {
        Ok(n) => n,
        Err(e) => {
            let verdict = match e {
                PaymentError::BadSignature => "bad_signature",
                _ => "malformed",
            };
            tracing::warn!(
                verdict,
                bytes = body.len(),
                "refused a payment notification"
            );
            return Err(e);
        }
    };
    // Only a verified notification is kept, with the order it names.
    let raw = String::from_utf8_lossy(body)
        .chars()
        .take(4000)
        .collect::<String>();
    let outcome = state
        .store
        .credit_payment(&n.order_no, &n.txn, n.amount, &raw, now_ms())
        .await
        .map_err(|e| PaymentError::Provider(e.to_string()))?;
    if outcome == CreditOutcome::RefusedLeft {
        // Send it back at once; a failure is retried by `run_payment_returns`.
        if let Err(e) = return_refused_payments(state).await {
            tracing::warn!(error = %e, "returning a refused payment failed; will retry");
        }
    }
    Ok(outcome)
}

/// The sandbox's "payer pressed Pay": record the payment on the gateway side, then deliver the
/// signed notification asynchronously, retrying like a real gateway until it is acknowledged.
pub async fn sandbox_pay(
    state: AppState,
    sandbox: Arc<SandboxProvider>,
    order: PaymentOrder,
) -> Result<String, PaymentError> {
    let txn = format!("SBX{}", &crate::crypto::random_token()[..20]);
    let fresh = sandbox
        .store
        .sandbox_record_payment(&order.order_no, order.amount, &txn, now_ms())
        .await
        .map_err(|e| PaymentError::Provider(e.to_string()))?;
    let txn = if fresh {
        txn
    } else {
        match sandbox.query(&order.order_no).await? {
            ProviderOrderState::Paid { txn, .. } => txn,
            ProviderOrderState::NotPaid => {
                return Err(PaymentError::Provider("payment vanished".into()))
            }
        }
    };
    let notice = SandboxNotice {
        order_no: order.order_no.clone(),
        amount: order.amount.to_yuan(),
        txn: txn.clone(),
        paid_at_ms: now_ms(),
    };
    let (body, sig) = sandbox.signed_notice(&notice);
    tokio::spawn(async move {
        let mut headers = axum::http::HeaderMap::new();
        if let Ok(v) = sig.parse() {
            headers.insert(SIGNATURE_HEADER, v);
        }
        let mut delay = std::time::Duration::from_millis(50);
        for attempt in 1..=8 {
            tokio::time::sleep(delay).await;
            match handle_notification(&state, &headers, &body).await {
                Ok(outcome) => {
                    tracing::info!(order = %notice.order_no, ?outcome, attempt, "sandbox notification delivered");
                    return;
                }
                Err(e) => {
                    tracing::warn!(order = %notice.order_no, error = %e, attempt, "sandbox notification failed; retrying")
                }
            }
            delay *= 2;
        }
    });
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

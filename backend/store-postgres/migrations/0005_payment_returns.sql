-- A payment that arrives for someone who has left (offboarded) is not credited: their cash was
-- paid out when they left and could never be paid out again. The payment goes back to the payer
-- through the provider instead, and nothing enters the journal, so the books stay at zero.
-- One row per refused order; `returned_at` is set once the provider confirmed the refund.
CREATE TABLE payment_returns (
    order_no         TEXT    PRIMARY KEY REFERENCES payment_orders(order_no),
    amount_fen       BIGINT  NOT NULL CHECK (amount_fen > 0),
    provider_txn     TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    provider_refund  TEXT,
    returned_at      BIGINT,
    CHECK ((provider_refund IS NULL) = (returned_at IS NULL))
);

-- The sandbox gateway's own record of refunds (a real provider keeps this on its side).
CREATE TABLE sandbox_refunds (
    order_no     TEXT    PRIMARY KEY,
    amount_fen   BIGINT  NOT NULL,
    refund_txn   TEXT    NOT NULL,
    refunded_at  BIGINT  NOT NULL
);

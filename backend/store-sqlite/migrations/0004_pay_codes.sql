-- One-time pay codes: a person shows a QR code from their phone instead of their face (face
-- recognition must never be the only way to pay). Only the code's hash is stored; a code is
-- valid for a few minutes and can be redeemed once.
CREATE TABLE pay_codes (
    code_hash   TEXT    PRIMARY KEY,
    staff_id    INTEGER  NOT NULL REFERENCES staff(id),
    created_at  INTEGER  NOT NULL,
    expires_at  INTEGER  NOT NULL,
    used_at     INTEGER,
    kiosk_id    INTEGER  REFERENCES kiosks(id)
);

-- A manager hands a new member of staff (or one who forgot their password) a one-time sign-in
-- code instead of a password. The code is stored like a password (its argon2 hash) with the
-- time it stops working; a session opened with it may do nothing but set a real password,
-- which clears `one_time_until`.
ALTER TABLE users ADD COLUMN one_time_until BIGINT;

-- One login per member of staff: the staff page and a manager's "issue a code" both look a
-- person's login up by their staff id.
CREATE UNIQUE INDEX users_one_per_staff ON users (staff_id) WHERE staff_id IS NOT NULL;

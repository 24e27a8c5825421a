-- The dashboard's plate waste per meal period and per department, and the journal's list of
-- plates newest first. A plate's meal period is its charge's; looking each one up in charges
-- cost the dashboard about 300 ms for a month of a 5,000-person canteen (web-bench,
-- BENCHMARKS.md), so the period is copied onto the record when it is written (a charge's
-- period never changes) and carried, with the person, in the time index: a month is then one
-- range of the index, and the journal walks it newest first from any point.
ALTER TABLE waste_records ADD COLUMN meal TEXT;
UPDATE waste_records w SET meal = c.meal FROM charges c WHERE c.id = w.charge_id;
DROP INDEX waste_by_time;
CREATE INDEX waste_by_time ON waste_records (measured_at, id) INCLUDE (net_grams, staff_id, meal);

-- The managers' dashboard sums a month of charges and plate waste by day. Without these it
-- read every row ever written: 146 ms p50 for a year of a 5,000-person canteen (web-bench,
-- BENCHMARKS.md). Each index holds every column its query reads, so a month is one range
-- of the index, never the table. The charge path pays one more index entry per charge.
CREATE INDEX charges_by_time ON charges (kiosk_time, meal, status, amount_fen, subsidy_fen);
CREATE INDEX waste_by_time ON waste_records (measured_at, net_grams);
CREATE INDEX top_ups_by_credit ON payment_orders (credited_at) WHERE status = 'credited';
CREATE INDEX refunds_by_decision ON refunds (decided_at) WHERE status = 'approved';

-- The plate waste a canteen aims for, in grams per plate: the dashboard draws it as a line
-- across the month's waste so a manager sees at a glance whether the clean-plate campaign is
-- working. NULL: no target set.
ALTER TABLE canteens ADD COLUMN waste_target_grams BIGINT;

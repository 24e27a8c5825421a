-- When each kiosk was last heard from, for the managers' kiosk list (a kiosk that went quiet
-- during service hours is worth a walk over). Written at most once a minute per kiosk, when
-- the server looks its token up, so it costs nothing on the charge path.
ALTER TABLE kiosks ADD COLUMN last_seen_at BIGINT;

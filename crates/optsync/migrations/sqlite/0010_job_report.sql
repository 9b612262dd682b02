-- The audit as a typed job report: why an address was written (`rule`: propagation:SOURCE
-- or bounce), whether a read-back proved the write or its answer was trusted (`proof`), and
-- the events served as a JSON array. The free-text `detail` goes: it held only the rule.
ALTER TABLE audit ADD COLUMN rule TEXT;
ALTER TABLE audit ADD COLUMN proof TEXT;

UPDATE audit SET rule = 'propagation:' || substr(detail, 8)
 WHERE action = 'opted_out' AND detail LIKE 'source %';
UPDATE audit SET rule = 'bounce' WHERE action = 'opted_out' AND detail = 'hard bounce';
UPDATE audit SET event_ids = '[' || event_ids || ']';

ALTER TABLE audit DROP COLUMN detail;

-- Which opt-out path last worked for each app (learned from read-backs), and jobs that no path
-- can complete (blocked: retried on a schedule, never counted towards dead).

ALTER TABLE tenants ADD COLUMN opt_out_path TEXT;            -- rest | xmlrpc; NULL: not learned yet
ALTER TABLE tenants ADD COLUMN opt_out_path_at BIGINT;      -- when it last opted an address out
ALTER TABLE jobs ADD COLUMN blocked_since BIGINT;           -- first time no path could do the job

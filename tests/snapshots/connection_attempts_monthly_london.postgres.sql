-- connection_attempt_events
SELECT DATE_TRUNC('MONTH', "occurred_at" AT TIME ZONE 'Europe/London') AT TIME ZONE 'Europe/London' AS bucket, COUNT(*) AS p0, COUNT(CASE WHEN "outcome" = 'success' THEN 1 END) AS p1, COUNT(CASE WHEN "outcome" = 'success' OR ("outcome" = 'failure' AND "error_category" = 'institution') OR ("outcome" = 'failure' AND "error_category" IN ('aggregator', 'network_timeout')) THEN 1 END) AS p2 FROM connection_attempt_events WHERE "occurred_at" >= %s AND "occurred_at" < %s GROUP BY DATE_TRUNC('MONTH', "occurred_at" AT TIME ZONE 'Europe/London');
-- params: 2

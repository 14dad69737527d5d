/*
id: host_risk
title: Host risk above threshold
description: >
  The alerts of one host add up to a risk of 100 or more within 24 hours (hopping windows every hour). Each
  alert adds its hunt's risk (the hunt's `risk:`, else [incidents.risk] for its severity: by default a high
  alert 50, a medium one 25, a low one 10). The incident lists the host's alerts in the window and updates
  while later windows add more.
hypothesis: >
  One low- or medium-severity alert on a host is usually noise; many of them on the same host within a day
  are an intrusion in progress that no single hunt was sure of (risk-based alerting: the score of the
  entity, not of the alert, decides).
attack:
  techniques: []
  tactics: []
severity: high
window: hopping 24h every 1h
entity: host
response:
  - Read the incident's timeline - which hunts fired on the host, in what order, under which users - and decide whether one activity explains them.
  - Isolate the host if any alert shows execution, persistence or credential access that its owner cannot explain.
  - Tune the hunt behind most of the risk if the timeline is one benign activity repeated (an administrator's tool, a scanner).
*/
SELECT
  window_start,
  window_end,
  host,
  sum(risk) AS risk,
  count(*) AS alerts,
  count(DISTINCT hunt_id) AS hunts,
  array_agg(alert_id ORDER BY time, alert_id) AS alert_ids,
  min(time) AS first_seen,
  max(time) AS last_seen
FROM alerts
WHERE host IS NOT NULL
GROUP BY window_start, window_end, host
HAVING sum(risk) >= 100

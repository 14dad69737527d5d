/*
id: host_risk
title: Host risk above threshold
description: >
  The hunts that fired on one host add up to a risk of 100 or more within 24 hours (hopping windows every
  hour). Each hunt counts once, at its risk (the hunt's `risk:`, else [incidents.risk] for its severity: by
  default high 50, medium 25, low 10): the alerts of one burst in a hopping hunt's overlapping windows, or a
  noisy rule firing all day, do not add up. The incident lists the host's alerts in the window and updates
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
  sum(hunt_risk) AS risk,
  count(*) AS hunts,
  sum(hunt_alerts) AS alerts,
  array_sort(flatten(array_agg(hunt_alert_ids))) AS alert_ids,
  min(hunt_first_seen) AS first_seen,
  max(hunt_last_seen) AS last_seen
FROM (
  SELECT
    window_start,
    window_end,
    host,
    hunt_id,
    max(risk) AS hunt_risk,
    count(*) AS hunt_alerts,
    array_agg(alert_id) AS hunt_alert_ids,
    min(time) AS hunt_first_seen,
    max(time) AS hunt_last_seen
  FROM alerts
  WHERE host IS NOT NULL
  GROUP BY window_start, window_end, host, hunt_id
)
GROUP BY window_start, window_end, host
HAVING sum(hunt_risk) >= 100

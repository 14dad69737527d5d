/*
id: technique_outbreak
title: One technique on many hosts
description: >
  The same ATT&CK technique alerted on five or more distinct hosts within one hour (hopping windows every
  ten minutes). The incident is about the technique; it lists the hosts (first twenty by name) and the
  alerts.
hypothesis: >
  A worm, a compromised deployment tool or an attacker running one playbook across the estate shows up as
  the same technique on many hosts in a short time - an outbreak to contain as one, not as unrelated alerts.
attack:
  techniques: []
  tactics: []
severity: high
window: hopping 1h every 10m
entity: technique
response:
  - Identify what the hosts share - the same parent process, user, software deployment or source address - from the incident's timeline.
  - Contain the common source - the account, the deployment job, the network path - before cleaning individual hosts.
  - Block the artefact the alerts show (hash, command line, domain) at the EDR and proxy across all hosts.
*/
SELECT
  window_start,
  window_end,
  technique,
  count(DISTINCT host) AS hosts,
  array_slice(array_sort(array_agg(DISTINCT host)), 1, 20) AS sample_hosts,
  count(DISTINCT alert_id) AS alerts,
  array_sort(array_agg(DISTINCT alert_id)) AS alert_ids
FROM (
  SELECT window_start, window_end, host, alert_id, unnest(string_to_array(techniques, chr(10))) AS technique
  FROM alerts
  WHERE host IS NOT NULL AND techniques IS NOT NULL
)
GROUP BY window_start, window_end, technique
HAVING count(DISTINCT host) >= 5

/*
id: password_guessing
title: Password guessing against one account from one source
description: >
  Ten or more failed logons (Security 4625) from one source address against one account on one host within
  five minutes. Account names are compared case-insensitively (as Windows does) and reported in lower case.
  Failures without a network source (IpAddress "-" or empty, e.g. a local service with a stale
  password) are left out: there is no source to attribute or block.
hypothesis: >
  An attacker who knows or guesses an account name tries many passwords for it over the network (SMB, RDP,
  WinRM, OWA/IIS basic auth) from one machine. A human mistyping a password fails a handful of times and stops
  or is locked out; ten or more failures for the same account from the same address within five minutes is
  automated guessing. The same burst shows up in up to five overlapping windows (hopping 5m every 1m).
attack:
  techniques: [T1110.001]
  tactics: [credential-access]
severity: medium
window: hopping 5m every 1m
allowed_lateness: 30s
entity: ip_address
response:
  - Check whether the source address succeeded afterwards - search 4624 from ip_address for target_user_name on host after first_seen; a success after the burst means the password is known (escalate to high, reset it).
  - Identify the source - resolve ip_address to a host/owner (DHCP, asset inventory, VPN logs); internal sources mean a compromised machine, external ones an exposed service.
  - Read the 4625 Status/SubStatus (0xc000006a wrong password, 0xc0000234 locked out) and the LogonType/WorkstationName to see which service is attacked.
  - Block or contain the source (firewall rule, EDR isolation) and confirm the account is locked out or has MFA.
  - Look for the same source against other accounts (password_spray) and other hosts in the same period.
references:
  - https://attack.mitre.org/techniques/T1110/001/
  - https://learn.microsoft.com/en-us/windows/security/threat-protection/auditing/event-4625
*/
SELECT
  window_start,
  window_end,
  host,
  ip_address,
  lower(target_user_name) AS target_user_name,
  count(*) AS failures,
  min(event_time) AS first_seen,
  max(event_time) AS last_seen
FROM events
WHERE lower(channel) = 'security'
  AND event_id = 4625
  AND ip_address IS NOT NULL
  AND ip_address NOT IN ('-', '')
  AND target_user_name IS NOT NULL
GROUP BY window_start, window_end, host, ip_address, lower(target_user_name)
HAVING count(*) >= 10

/*
id: suspicious_service_install
title: Service installed with a suspicious binary path
description: >
  System 7045 (a service was installed) whose ImagePath runs a shell or script host (%COMSPEC%, cmd /c,
  PowerShell, mshta, rundll32, regsvr32, wscript, cscript), runs from a user-writable or staging folder
  (\Users\, \Temp\, \ProgramData\, \PerfLogs\), or runs from an admin share or a UNC path (ADMIN$, \\127.0.0.1\,
  \\host\). reason names the first condition that matched. Microsoft Defender's platform services (under
  ProgramData\Microsoft\Windows Defender\Platform\) are excluded; a product folder merely named "PowerShell ..."
  does not count as PowerShell.
hypothesis: >
  Remote execution tools (PsExec clones, Impacket smbexec/psexec, Metasploit psexec, Cobalt Strike
  jump psexec/psexec_psh) and privilege escalation (Meterpreter getsystem named-pipe impersonation) create a
  short-lived service whose ImagePath is a cmd/PowerShell one-liner or a binary freshly copied through ADMIN$,
  and persistence implants register services that run from user-writable folders. Legitimate software installs
  services from Program Files or System32 with a plain binary path.
attack:
  techniques: [T1543.003, T1569.002, T1021.002]
  tactics: [persistence, privilege-escalation, execution, lateral-movement]
severity: high
window: none
entity: host
response:
  - Decode and read image_path (a %COMSPEC% / PowerShell one-liner often carries base64 or a gzip stream) and record the payload, pipe names and network indicators.
  - Find who installed it - the 4624 type 3 logon and 4697 / 7045 security identifier on the host just before event_time, and 5140/5145 ADMIN$ access - to get the source host and account.
  - Check whether the service still exists and its binary is on disk (sc qc service_name, the ImagePath file); collect the binary before removing the service.
  - Hunt for the same service_name pattern or binary hash on other hosts - psexec-style tools usually hit several machines.
  - Isolate the host if the service is not an approved deployment, and reset the credentials used for the install.
references:
  - https://attack.mitre.org/techniques/T1543/003/
  - https://attack.mitre.org/techniques/T1569/002/
*/
SELECT
  event_time,
  host,
  service_name,
  image_path,
  service_type,
  start_type,
  account_name,
  CASE
    WHEN contains(lower(image_path), '%comspec%') THEN 'comspec'
    WHEN regexp_like(image_path, '(^|[\\\s"])cmd(\.exe)?"?(\s+/[a-z]\S*)*\s+/[ckr]\b', 'i') THEN 'cmd-one-liner'
    WHEN regexp_like(image_path, '(powershell|pwsh)(\.exe|\s+[-/])', 'i') THEN 'powershell'
    WHEN regexp_like(image_path, '(^|[\\\s"])(mshta|rundll32|regsvr32|wscript|cscript)(\.exe)?(["\s]|$)', 'i') THEN 'script-host'
    WHEN contains(lower(image_path), 'admin$') THEN 'admin-share'
    WHEN regexp_like(image_path, '^["\s]*\\\\[^\\?.]', 'i') THEN 'unc-path'
    WHEN contains(lower(image_path), '\users\') THEN 'users-folder'
    WHEN contains(lower(image_path), '\temp\') THEN 'temp-folder'
    WHEN contains(lower(image_path), '\programdata\') THEN 'programdata-folder'
    WHEN contains(lower(image_path), '\perflogs\') THEN 'perflogs-folder'
  END AS reason
FROM events
WHERE lower(channel) = 'system'
  AND event_id = 7045
  AND image_path IS NOT NULL
  AND (
    contains(lower(image_path), '%comspec%')
    OR regexp_like(image_path, '(^|[\\\s"])cmd(\.exe)?"?(\s+/[a-z]\S*)*\s+/[ckr]\b', 'i')
    OR regexp_like(image_path, '(powershell|pwsh)(\.exe|\s+[-/])', 'i')
    OR regexp_like(image_path, '(^|[\\\s"])(mshta|rundll32|regsvr32|wscript|cscript)(\.exe)?(["\s]|$)', 'i')
    OR contains(lower(image_path), 'admin$')
    OR regexp_like(image_path, '^["\s]*\\\\[^\\?.]', 'i')
    OR contains(lower(image_path), '\users\')
    OR contains(lower(image_path), '\temp\')
    OR contains(lower(image_path), '\programdata\')
    OR contains(lower(image_path), '\perflogs\')
  )
  AND NOT regexp_like(
    image_path,
    '^"?[a-z]:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\[^\\"]+\\[^\\"]+\.exe"?(\s|$)',
    'i'
  )

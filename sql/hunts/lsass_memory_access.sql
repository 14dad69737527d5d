/*
id: lsass_memory_access
title: LSASS opened with credential-dumping access rights
description: >
  Sysmon event 10 (ProcessAccess) where the target is lsass.exe and the granted access mask is one that
  credential-dumping tools request: memory read with query rights (0x1010, 0x1410, 0x410 - Mimikatz
  sekurlsa, comsvcs.dll MiniDump, nanodump), read/write/operation for patching (0x1038, 0x1438, 0x143a -
  lsadump::lsa /patch, skeleton key) and full access (0x1fffff and the 0x1f0fff-0x1f3fff variants - ProcDump,
  Task Manager "Create dump file", dumpert). Microsoft Defender's own engine is excluded only where it lives
  (the Defender platform folder under ProgramData or Program Files\Windows Defender), so a MsMpEng.exe
  dropped anywhere else still alerts; an event without a SourceImage is not excluded. call_trace_hint marks a
  call stack through dbghelp/dbgcore (MiniDumpWriteDump) or through unbacked memory (UNKNOWN, injected code).
hypothesis: >
  An attacker with administrative or SYSTEM rights on a host reads the memory of lsass.exe to extract NTLM
  hashes, Kerberos tickets and cleartext credentials (Mimikatz, ProcDump, comsvcs.dll MiniDump, Task Manager,
  custom syscall-based dumpers) to move laterally. Opening lsass with these rights is rare for legitimate
  software apart from security products, which are tuned out by exact path.
attack:
  techniques: [T1003.001]
  tactics: [credential-access]
severity: high
window: none
entity: host
response:
  - Identify source_image - its path, signer and hash (Sysmon 1 for the same process) - and whether it is an approved security/backup agent; anything else is a credential theft attempt.
  - Look for a dump file on disk around event_time (Sysmon 11 for *.dmp, lsass*.dmp, files in Temp/ProgramData) and for its exfiltration; delete and account for every copy.
  - Treat every credential cached on the host as compromised - reset the passwords of users and service accounts that logged on there, and reset krbtgt twice if a domain controller is affected.
  - Isolate the host and walk back the process tree (parent, logon session, first execution) to find how the attacker got administrative rights.
  - Hunt for use of the stolen credentials - new 4624 type 3/10 logons, pass-the-hash (4624 logon type 9, NTLM from unusual hosts) by the accounts that were on this host.
references:
  - https://attack.mitre.org/techniques/T1003/001/
  - https://learn.microsoft.com/en-us/windows/win32/procthread/process-security-and-access-rights
*/
SELECT
  event_time,
  host,
  source_image,
  target_image,
  lower(granted_access) AS granted_access,
  CASE
    WHEN contains(upper(coalesce(call_trace, '')), 'UNKNOWN(') THEN 'unbacked-memory'
    WHEN contains(lower(coalesce(call_trace, '')), 'dbghelp.dll')
      OR contains(lower(coalesce(call_trace, '')), 'dbgcore.dll') THEN 'minidump'
  END AS call_trace_hint,
  call_trace
FROM events
WHERE lower(channel) = 'microsoft-windows-sysmon/operational'
  AND event_id = 10
  AND ends_with(lower(target_image), '\lsass.exe')
  AND lower(granted_access) IN (
    '0x1010', '0x1410', '0x410',
    '0x1038', '0x1438', '0x143a',
    '0x1fffff', '0x1f3fff', '0x1f2fff', '0x1f1fff', '0x1f0fff'
  )
  AND NOT coalesce(
    regexp_like(source_image, '^[a-z]:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\[^\\]+\\[^\\]+\.exe$', 'i')
    OR regexp_like(source_image, '^[a-z]:\\Program Files\\Windows Defender\\[^\\]+\.exe$', 'i'),
    false
  )

/*
id: office_spawns_shell
title: Office application spawns a shell or LOLBin
description: >
  Word, Excel, PowerPoint, Outlook, Access, OneNote or Publisher (parent image WINWORD.EXE, EXCEL.EXE,
  POWERPNT.EXE, OUTLOOK.EXE, MSACCESS.EXE, ONENOTE.EXE, MSPUB.EXE) starting cmd.exe, powershell.exe, pwsh.exe,
  wscript.exe, cscript.exe, mshta.exe, rundll32.exe, regsvr32.exe, certutil.exe or bitsadmin.exe. File names are
  matched exactly after the last backslash, so cmdkey.exe or a tool named myWINWORD.EXE do not match.
  Sysmon event 1 and Security 4688.
hypothesis: >
  A user opens a malicious document, spreadsheet, OneNote notebook or e-mail attachment; its macro, embedded
  object or exploit makes the Office process start a shell, a script host or a proxy-execution / download LOLBin
  to fetch and run the next stage. Office applications almost never start these programs in
  normal use, so each hit is worth a look.
attack:
  techniques: [T1566.001, T1204.002, T1059, T1218, T1105]
  tactics: [initial-access, execution, defense-evasion, command-and-control]
severity: high
window: none
entity: host
response:
  - Identify the document - parent_command_line usually holds its path; collect the file (and the e-mail it came in, from the mail gateway) and detonate or analyse it.
  - Read command_line and follow the child's process tree (Sysmon ProcessGuid) for downloads (Sysmon 3/11/22) and dropped or executed payloads.
  - Search the mail system for the same sender, subject or attachment hash and pull it from all mailboxes; check who else opened it (the same hunt on other hosts).
  - Isolate the host if a payload ran, and reset the user's credentials (the user session may already be used for discovery).
  - Block the indicators (URLs, domains, hashes) found in the command line and payload at the proxy/EDR.
references:
  - https://attack.mitre.org/techniques/T1566/001/
  - https://attack.mitre.org/techniques/T1204/002/
*/
SELECT
  event_time,
  host,
  coalesce(user, subject_user_name) AS user,
  parent_image,
  parent_command_line,
  image,
  command_line
FROM events
WHERE (
    (lower(channel) = 'microsoft-windows-sysmon/operational' AND event_id = 1)
    OR (lower(channel) = 'security' AND event_id = 4688)
  )
  AND regexp_like(parent_image, '\\(winword|excel|powerpnt|outlook|msaccess|onenote|mspub)\.exe$', 'i')
  AND regexp_like(image, '\\(cmd|powershell|pwsh|wscript|cscript|mshta|rundll32|regsvr32|certutil|bitsadmin)\.exe$', 'i')

/*
id: encoded_powershell
title: PowerShell started with a base64-encoded command
description: >
  powershell.exe or pwsh.exe (also a renamed copy, recognised by its PE original file name) started with
  -EncodedCommand or any abbreviation PowerShell accepts (-e, -ec, -en, -enc, -enco ... -encodedcommand, with
  -, / or a Unicode dash) followed by a base64 argument: at least 16 base64 characters, a whole number of 4-char
  groups with optional = padding, ending at a quote, a space or the end of the line. -ExecutionPolicy, -Exec,
  -ep and similar parameters do not match. Sysmon event 1 and Security 4688.
hypothesis: >
  An attacker hides a PowerShell payload (download cradle, reverse shell, in-memory loader) from command-line
  logging and simple keyword rules by passing it base64-encoded (UTF-16LE) with -EncodedCommand; C2 stagers
  (Empire, Cobalt Strike, Metasploit psexec_psh) launch PowerShell exactly this way. Some management agents also
  use encoded commands, so the decoded content and the parent process decide.
attack:
  techniques: [T1059.001, T1027.010]
  tactics: [execution, defense-evasion]
severity: high
window: none
entity: host
response:
  - Decode encoded_payload (base64, then UTF-16LE) and read what it runs - look for IEX, DownloadString, FromBase64String, Reflection.Assembly, -join or nested encoding.
  - Check the parent process and user - an Office application, wmiprvse.exe, services.exe or wsmprovhost.exe as parent, or an unusual user, points to exploitation or lateral movement rather than an admin script.
  - Pull the PowerShell 4104 script-block events and Sysmon 3/11/22 (network, files, DNS) for the same process on the host to see what the payload did.
  - Extract indicators (URLs, IPs, domains, file names) from the decoded script and search for them across the fleet.
  - If malicious, isolate the host, kill the process tree and collect memory before rebooting.
references:
  - https://attack.mitre.org/techniques/T1027/010/
  - https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.core/about/about_powershell_exe
*/
SELECT
  event_time,
  host,
  coalesce(user, subject_user_name) AS user,
  image,
  command_line,
  regexp_match(
    command_line,
    '(?:^|\s)["'']?[-/–—―](?:e|ec|en|enc|enco|encod|encode|encoded|encodedc|encodedco|encodedcom|encodedcomm|encodedcomma|encodedcomman|encodedcommand)["'']?\s+["'']?((?:[A-Za-z0-9+/]{4}){4,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)(?:["'']|\s|$)',
    'i'
  )[1] AS encoded_payload,
  parent_image
FROM events
WHERE (
    (lower(channel) = 'microsoft-windows-sysmon/operational' AND event_id = 1)
    OR (lower(channel) = 'security' AND event_id = 4688)
  )
  AND (
    ends_with(lower(image), '\powershell.exe')
    OR ends_with(lower(image), '\pwsh.exe')
    OR lower(coalesce(original_file_name, '')) IN ('powershell.exe', 'pwsh.dll')
  )
  AND regexp_like(
    command_line,
    '(?:^|\s)["'']?[-/–—―](?:e|ec|en|enc|enco|encod|encode|encoded|encodedc|encodedco|encodedcom|encodedcomm|encodedcomma|encodedcomman|encodedcommand)["'']?\s+["'']?(?:[A-Za-z0-9+/]{4}){4,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?(?:["'']|\s|$)',
    'i'
  )

//! The shapes of the events: the channels they are logged to, and the data fields of each event type with the
//! writers that append them (Sysmon 1, 3 and 10, Security 4624 and 4625, System 7045).

use std::borrow::Cow;

use super::EventGenerator;
use super::domain::{Guid, Who};
use super::json::{fnv1a, kv, kv_guid, kv_hashes, kv_hex, kv_num, kv_plain};

/// The event log an event is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ch {
    /// `Microsoft-Windows-Sysmon/Operational`.
    Sysmon,
    /// `Security`.
    Security,
    /// `System`.
    System,
    /// `Microsoft-Windows-PowerShell/Operational`.
    PowerShell,
}

impl Ch {
    /// The channel name.
    pub(super) fn channel(self) -> &'static str {
        match self {
            Ch::Sysmon => "Microsoft-Windows-Sysmon/Operational",
            Ch::Security => "Security",
            Ch::System => "System",
            Ch::PowerShell => "Microsoft-Windows-PowerShell/Operational",
        }
    }

    /// The provider (`SourceName`) that writes the channel's events generated here.
    pub(super) fn provider(self) -> &'static str {
        match self {
            Ch::Sysmon => "Microsoft-Windows-Sysmon",
            Ch::Security => "Microsoft-Windows-Security-Auditing",
            Ch::System => "Service Control Manager",
            Ch::PowerShell => "Microsoft-Windows-PowerShell",
        }
    }

    /// Index of the channel's record counter.
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Everything about a Sysmon 1 process start except the random ids.
pub(super) struct Spawn {
    /// Host it happens on.
    pub(super) host: usize,
    /// Image path.
    pub(super) image: Cow<'static, str>,
    /// PE original file name.
    pub(super) original: &'static str,
    /// Command line.
    pub(super) cmd: Cow<'static, str>,
    /// Account of the new process.
    pub(super) who: Who,
    /// `Low`, `Medium`, `High` or `System`.
    pub(super) integrity: &'static str,
    /// Terminal session id.
    pub(super) session: u32,
    /// Parent image path.
    pub(super) parent_image: Cow<'static, str>,
    /// Parent command line.
    pub(super) parent_cmd: Cow<'static, str>,
    /// Account of the parent.
    pub(super) parent_who: Who,
    /// Seed of the fake hashes: `None` derives them from the image path (same binary, same hash).
    pub(super) hash_seed: Option<u64>,
}

/// The random identities of a process start: its own and its parent's.
#[derive(Clone, Copy)]
pub(super) struct Ids {
    /// Process GUID.
    pub(super) guid: Guid,
    /// Process id.
    pub(super) pid: u32,
    /// Parent process GUID.
    pub(super) parent_guid: Guid,
    /// Parent process id.
    pub(super) parent_pid: u32,
}

/// A Sysmon 3 network connection.
pub(super) struct Conn<'a> {
    /// Process GUID of the connecting process.
    pub(super) guid: Guid,
    /// Its process id.
    pub(super) pid: u32,
    /// Its image.
    pub(super) image: &'a str,
    /// Its account.
    pub(super) who: Who,
    /// UDP instead of TCP.
    pub(super) udp: bool,
    /// Source address.
    pub(super) src_ip: &'a str,
    /// Source host name.
    pub(super) src_host: &'a str,
    /// Source port.
    pub(super) src_port: u16,
    /// Destination address.
    pub(super) dst_ip: &'a str,
    /// Destination host name (`-` when unknown).
    pub(super) dst_host: &'a str,
    /// Destination port.
    pub(super) dst_port: u16,
    /// Destination port name.
    pub(super) dst_port_name: &'a str,
}

/// A Sysmon 10 process access.
pub(super) struct Access<'a> {
    /// GUID of the opening process.
    pub(super) src_guid: Guid,
    /// Its process id.
    pub(super) src_pid: u32,
    /// Thread that opened the handle.
    pub(super) src_tid: u32,
    /// Its image.
    pub(super) src_image: &'a str,
    /// Its account.
    pub(super) src_user: &'a str,
    /// GUID of the opened process.
    pub(super) tgt_guid: Guid,
    /// Its process id.
    pub(super) tgt_pid: u32,
    /// Its image.
    pub(super) tgt_image: &'a str,
    /// Access mask granted.
    pub(super) granted: u32,
    /// `module+offset|…` call stack.
    pub(super) call_trace: &'a str,
}

/// A Security 4624 successful logon.
pub(super) struct Logon<'a> {
    /// Requesting account SID.
    pub(super) subject_sid: &'a str,
    /// Requesting account name.
    pub(super) subject_user: &'a str,
    /// Requesting account domain.
    pub(super) subject_domain: &'a str,
    /// Requesting logon id.
    pub(super) subject_logon_id: u64,
    /// SID of the account logged on.
    pub(super) target_sid: &'a str,
    /// Account logged on.
    pub(super) target_user: &'a str,
    /// Its domain.
    pub(super) target_domain: &'a str,
    /// New logon id.
    pub(super) target_logon_id: u64,
    /// 2, 3 or 10.
    pub(super) logon_type: u8,
    /// `User32 `, `Kerberos`, `NtLmSsp ` (trailing spaces are real).
    pub(super) logon_process: &'a str,
    /// `Negotiate`, `Kerberos`, `NTLM`.
    pub(super) auth_package: &'a str,
    /// Source workstation name or `-`.
    pub(super) workstation: &'a str,
    /// `NTLM V2` for NTLM, else `-`.
    pub(super) lm_package: &'a str,
    /// Session key length (0 or 128).
    pub(super) key_length: u32,
    /// Process that asked for the logon (0 for network logons); written in hex as Windows does.
    pub(super) process_id: u32,
    /// Its image, or `-`.
    pub(super) process_name: &'a str,
    /// Source address.
    pub(super) ip: &'a str,
    /// Source port (0 for local logons).
    pub(super) port: u16,
    /// Whether the token is elevated.
    pub(super) elevated: bool,
}

/// A Security 4625 failed logon.
pub(super) struct Failure<'a> {
    /// Requesting account SID (`S-1-0-0` for network logons).
    pub(super) subject_sid: &'a str,
    /// Requesting account name (`-` for network logons).
    pub(super) subject_user: &'a str,
    /// Requesting account domain.
    pub(super) subject_domain: &'a str,
    /// Requesting logon id.
    pub(super) subject_logon_id: u64,
    /// Account name tried.
    pub(super) target_user: &'a str,
    /// Domain given.
    pub(super) target_domain: &'a str,
    /// Sub-status (`0xc000006a` bad password, `0xc0000064` no such user).
    pub(super) sub_status: &'a str,
    /// 2, 3 or 10.
    pub(super) logon_type: u8,
    /// Logon process.
    pub(super) logon_process: &'a str,
    /// Authentication package.
    pub(super) auth_package: &'a str,
    /// Source workstation name.
    pub(super) workstation: &'a str,
    /// Process that asked for the logon (0 for network logons); written in hex as Windows does.
    pub(super) process_id: u32,
    /// Its image, or `-`.
    pub(super) process_name: &'a str,
    /// Source address.
    pub(super) ip: &'a str,
    /// Source port.
    pub(super) port: u16,
}

/// Writes the data fields of a Security 4624.
pub(super) fn write_logon(out: &mut Vec<u8>, l: &Logon<'_>) {
    kv_plain(out, "SubjectUserSid", l.subject_sid);
    kv_plain(out, "SubjectUserName", l.subject_user);
    kv_plain(out, "SubjectDomainName", l.subject_domain);
    kv_hex(out, "SubjectLogonId", l.subject_logon_id);
    kv_plain(out, "TargetUserSid", l.target_sid);
    kv_plain(out, "TargetUserName", l.target_user);
    kv_plain(out, "TargetDomainName", l.target_domain);
    kv_hex(out, "TargetLogonId", l.target_logon_id);
    kv_num(out, "LogonType", u64::from(l.logon_type));
    kv_plain(out, "LogonProcessName", l.logon_process);
    kv_plain(out, "AuthenticationPackageName", l.auth_package);
    kv_plain(out, "WorkstationName", l.workstation);
    kv_plain(out, "LogonGuid", "{00000000-0000-0000-0000-000000000000}");
    kv_plain(out, "TransmittedServices", "-");
    kv_plain(out, "LmPackageName", l.lm_package);
    kv_num(out, "KeyLength", u64::from(l.key_length));
    kv_hex(out, "ProcessId", u64::from(l.process_id));
    kv(out, "ProcessName", l.process_name);
    kv_plain(out, "IpAddress", l.ip);
    kv_num(out, "IpPort", u64::from(l.port));
    kv_plain(out, "ImpersonationLevel", "%%1833");
    kv_plain(out, "RestrictedAdminMode", "-");
    kv_plain(out, "VirtualAccount", "%%1843");
    kv_plain(
        out,
        "ElevatedToken",
        if l.elevated { "%%1842" } else { "%%1843" },
    );
}

/// Writes the data fields of a Security 4625 (status "0xc000006d": bad user name or password).
pub(super) fn write_failure(out: &mut Vec<u8>, f: &Failure<'_>) {
    kv_plain(out, "SubjectUserSid", f.subject_sid);
    kv_plain(out, "SubjectUserName", f.subject_user);
    kv_plain(out, "SubjectDomainName", f.subject_domain);
    kv_hex(out, "SubjectLogonId", f.subject_logon_id);
    kv_plain(out, "TargetUserSid", "S-1-0-0");
    kv_plain(out, "TargetUserName", f.target_user);
    kv_plain(out, "TargetDomainName", f.target_domain);
    kv_plain(out, "Status", "0xc000006d");
    kv_plain(out, "FailureReason", "%%2313");
    kv_plain(out, "SubStatus", f.sub_status);
    kv_num(out, "LogonType", u64::from(f.logon_type));
    kv_plain(out, "LogonProcessName", f.logon_process);
    kv_plain(out, "AuthenticationPackageName", f.auth_package);
    kv_plain(out, "WorkstationName", f.workstation);
    kv_plain(out, "TransmittedServices", "-");
    kv_plain(out, "LmPackageName", "-");
    kv_num(out, "KeyLength", 0);
    kv_hex(out, "ProcessId", u64::from(f.process_id));
    kv(out, "ProcessName", f.process_name);
    kv_plain(out, "IpAddress", f.ip);
    kv_num(out, "IpPort", u64::from(f.port));
}

/// Writes the data fields of a Sysmon 10 (after `RuleName`/`UtcTime`).
pub(super) fn write_access(out: &mut Vec<u8>, a: &Access<'_>) {
    kv_guid(out, "SourceProcessGUID", &a.src_guid);
    kv_num(out, "SourceProcessId", u64::from(a.src_pid));
    kv_num(out, "SourceThreadId", u64::from(a.src_tid));
    kv(out, "SourceImage", a.src_image);
    kv_guid(out, "TargetProcessGUID", &a.tgt_guid);
    kv_num(out, "TargetProcessId", u64::from(a.tgt_pid));
    kv(out, "TargetImage", a.tgt_image);
    kv_hex(out, "GrantedAccess", u64::from(a.granted));
    kv(out, "CallTrace", a.call_trace);
    kv(out, "SourceUser", a.src_user);
    kv(out, "TargetUser", r"NT AUTHORITY\SYSTEM");
}

/// Writes the data fields of a System 7045.
pub(super) fn write_service(out: &mut Vec<u8>, name: &str, image_path: &str, start_type: &str) {
    kv(out, "ServiceName", name);
    kv(out, "ImagePath", image_path);
    kv_plain(out, "ServiceType", "user mode service");
    kv_plain(out, "StartType", start_type);
    kv_plain(out, "AccountName", "LocalSystem");
}

impl EventGenerator {
    /// Writes the data fields of a Sysmon 1 (after `RuleName`/`UtcTime`).
    pub(super) fn write_spawn(&self, out: &mut Vec<u8>, s: &Spawn, ids: &Ids) {
        kv_guid(out, "ProcessGuid", &ids.guid);
        kv_num(out, "ProcessId", u64::from(ids.pid));
        kv(out, "Image", &s.image);
        kv(out, "OriginalFileName", s.original);
        kv(out, "CommandLine", &s.cmd);
        let cwd = match s.who {
            Who::User(u) if s.session != 0 => self.users[u].cwd.as_str(),
            _ => r"C:\Windows\system32\",
        };
        kv(out, "CurrentDirectory", cwd);
        kv(out, "User", self.who_name(s.who));
        kv_hex(out, "LogonId", self.who_logon_id(s.who));
        kv_num(out, "TerminalSessionId", u64::from(s.session));
        kv_plain(out, "IntegrityLevel", s.integrity);
        kv_hashes(out, s.hash_seed.unwrap_or_else(|| fnv1a(&s.image)));
        kv_guid(out, "ParentProcessGuid", &ids.parent_guid);
        kv_num(out, "ParentProcessId", u64::from(ids.parent_pid));
        kv(out, "ParentImage", &s.parent_image);
        kv(out, "ParentCommandLine", &s.parent_cmd);
        kv(out, "ParentUser", self.who_name(s.parent_who));
    }

    /// Writes the data fields of a Sysmon 3 (after `RuleName`/`UtcTime`).
    pub(super) fn write_conn(&self, out: &mut Vec<u8>, c: &Conn<'_>) {
        kv_guid(out, "ProcessGuid", &c.guid);
        kv_num(out, "ProcessId", u64::from(c.pid));
        kv(out, "Image", c.image);
        kv(out, "User", self.who_name(c.who));
        kv_plain(out, "Protocol", if c.udp { "udp" } else { "tcp" });
        kv_plain(out, "Initiated", "true");
        kv_plain(out, "SourceIsIpv6", "false");
        kv_plain(out, "SourceIp", c.src_ip);
        kv_plain(out, "SourceHostname", c.src_host);
        kv_num(out, "SourcePort", u64::from(c.src_port));
        kv_plain(out, "SourcePortName", "-");
        kv_plain(out, "DestinationIsIpv6", "false");
        kv_plain(out, "DestinationIp", c.dst_ip);
        kv_plain(out, "DestinationHostname", c.dst_host);
        kv_num(out, "DestinationPort", u64::from(c.dst_port));
        kv_plain(out, "DestinationPortName", c.dst_port_name);
    }
}

//! The events of each scenario kind, from one run with one scenario of each kind.

use super::super::catalog::{EXCEL, EXPLORER, LSASS, OUTLOOK, POWERSHELL, RUNDLL32, WINWORD};
use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::collections::BTreeSet;

/// The events of each scenario, from a run where scenarios never overlap (one of each kind),
/// generated once and shared by the tests.
fn one_of_each() -> &'static BTreeMap<&'static str, Vec<Ev>> {
    static BY: std::sync::OnceLock<BTreeMap<&'static str, Vec<Ev>>> = std::sync::OnceLock::new();
    BY.get_or_init(|| {
        // 10-minute interval, 100 ms per event: 8 intervals plus 5 minutes to let the last one finish.
        let (_, evs) = run(config(7, Duration::from_secs(600)), 85 * 60 * 10, 100);
        let mut by: BTreeMap<&'static str, Vec<Ev>> = BTreeMap::new();
        for e in evs {
            if let Some(s) = e.scenario {
                by.entry(s.name()).or_default().push(e);
            }
        }
        by
    })
}

#[test]
fn lateral_movement_links_source_and_target() {
    let by = one_of_each();
    let evs = &by["ps_remoting_lateral_movement"];
    assert_eq!(
        evs.iter().map(Ev::id).collect::<Vec<_>>(),
        [1, 3, 4624, 1, 1]
    );
    let (ps, conn, logon, wsm, child) = (&evs[0], &evs[1], &evs[2], &evs[3], &evs[4]);
    assert_eq!(ps.s("Image"), POWERSHELL.path);
    assert_eq!(ps.s("ParentImage"), r"C:\Windows\explorer.exe");
    let target_short = wsm.s("Hostname").trim_end_matches(".corp.example");
    let cmd = ps.s("CommandLine");
    assert!(
        cmd.contains(&format!(
            "Invoke-Command -ComputerName {target_short} -ScriptBlock {{"
        )) || cmd.contains(&format!("Enter-PSSession -ComputerName {target_short}")),
        "{cmd}"
    );
    assert_eq!(conn.s("Hostname"), ps.s("Hostname"));
    assert_eq!(conn.s("DestinationPort"), "5985");
    assert_eq!(conn.s("DestinationHostname"), wsm.s("Hostname"));
    assert_eq!(conn.s("ProcessGuid"), ps.s("ProcessGuid"));
    assert_ne!(ps.s("Hostname"), wsm.s("Hostname"));
    assert_eq!(logon.s("Hostname"), wsm.s("Hostname"));
    assert_eq!(logon.s("LogonType"), "3");
    assert_eq!(logon.s("IpAddress"), conn.s("SourceIp"));
    assert_eq!(format!(r"CORP\{}", logon.s("TargetUserName")), ps.s("User"));
    assert_eq!(wsm.s("Image"), r"C:\Windows\System32\wsmprovhost.exe");
    assert_eq!(wsm.s("ParentImage"), r"C:\Windows\System32\svchost.exe");
    assert_eq!(
        wsm.s("CommandLine"),
        r"C:\Windows\system32\wsmprovhost.exe -Embedding"
    );
    assert!(
        child.s("Image").ends_with(r"\powershell.exe")
            || child.s("Image").ends_with(r"\whoami.exe")
    );
    assert_eq!(child.s("ParentImage"), wsm.s("Image"));
    assert_eq!(child.s("ParentProcessGuid"), wsm.s("ProcessGuid"));
    assert!(evs.windows(2).all(|w| w[0].ms() <= w[1].ms()));
    assert!(child.ms() - ps.ms() < 60_000);
}

#[test]
fn password_guessing_is_one_ip_one_user_one_host_12_to_20_times_in_30_to_90s() {
    let by = one_of_each();
    let evs = &by["password_guessing"];
    assert!((12..=20).contains(&evs.len()), "{} events", evs.len());
    for e in evs {
        assert_eq!(e.id(), 4625);
        assert_eq!(e.s("Status"), "0xc000006d");
        assert_eq!(e.s("SubStatus"), "0xc000006a");
        assert_eq!(e.s("LogonType"), "3");
    }
    for k in ["IpAddress", "TargetUserName", "Hostname"] {
        let distinct: BTreeSet<&str> = evs.iter().map(|e| e.s(k)).collect();
        assert_eq!(distinct.len(), 1, "{k}: {distinct:?}");
    }
    let span = evs.last().unwrap().ms() - evs[0].ms();
    assert!((30_000..=90_000).contains(&span), "span {span}");
}

#[test]
fn password_spray_is_one_ip_against_15_to_25_users_on_a_dc_in_1_to_3_minutes() {
    let by = one_of_each();
    let evs = &by["password_spray"];
    let users: BTreeSet<&str> = evs.iter().map(|e| e.s("TargetUserName")).collect();
    assert!((15..=25).contains(&users.len()), "{} users", users.len());
    assert_eq!(users.len(), evs.len(), "one attempt per account");
    let ips: BTreeSet<&str> = evs.iter().map(|e| e.s("IpAddress")).collect();
    assert_eq!(ips.len(), 1);
    let hosts: BTreeSet<&str> = evs.iter().map(|e| e.s("Hostname")).collect();
    assert_eq!(hosts.len(), 1);
    assert!(
        hosts.iter().next().unwrap().starts_with("SRV-DC"),
        "{hosts:?}"
    );
    for e in evs {
        assert_eq!(e.id(), 4625);
        assert!(
            ["0xc000006a", "0xc0000064"].contains(&e.s("SubStatus")),
            "{}",
            e.line
        );
        assert_eq!(e.s("LogonType"), "3");
    }
    let span = evs.last().unwrap().ms() - evs[0].ms();
    assert!((60_000..=180_000).contains(&span), "span {span}");
}

#[test]
fn encoded_powershell_carries_a_utf16le_base64_script() {
    let by = one_of_each();
    let evs = &by["encoded_powershell"];
    assert_eq!(evs.len(), 1);
    let e = &evs[0];
    assert_eq!(e.id(), 1);
    assert_eq!(e.s("Image"), POWERSHELL.path);
    assert!(
        [
            r"C:\Windows\System32\cmd.exe",
            r"C:\Windows\system32\wbem\wmiprvse.exe"
        ]
        .contains(&e.s("ParentImage"))
    );
    let words: Vec<&str> = e.s("CommandLine").split_whitespace().collect();
    let flag = words
        .iter()
        .position(|w| ["-enc", "-encodedcommand", "-e"].contains(&w.to_ascii_lowercase().as_str()));
    let b64 = words[flag.expect("an -enc flag") + 1];
    let bytes = BASE64.decode(b64).expect("valid base64");
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let script = String::from_utf16(&units).expect("UTF-16LE");
    assert!(
        script.contains("http") || script.contains("TCPClient"),
        "{script}"
    );
}

#[test]
fn lsass_access_uses_a_dumping_mask_and_call_trace() {
    let by = one_of_each();
    let evs = &by["lsass_access"];
    let access: Vec<&Ev> = evs.iter().filter(|e| e.id() == 10).collect();
    assert_eq!(access.len(), 1);
    let a = access[0];
    assert_eq!(a.s("TargetImage"), LSASS);
    assert!(BAD_MASKS.contains(&a.s("GrantedAccess")), "{}", a.line);
    let trace = a.s("CallTrace");
    assert!(
        ["dbghelp.dll", "dbgcore.dll", "UNKNOWN("]
            .iter()
            .any(|m| trace.contains(m)),
        "{trace}"
    );
    let src = a.s("SourceImage");
    assert!(
        src.contains(r"\AppData\Local\Temp\")
            || src == RUNDLL32.path
            || src.contains(r"\Temp\")
            || src.contains(r"\Downloads\"),
        "{src}"
    );
    let start = evs
        .iter()
        .find(|e| e.id() == 1)
        .expect("the tool's process start");
    assert_eq!(start.s("ProcessGuid"), a.s("SourceProcessGUID"));
}

#[test]
fn suspicious_service_install_is_a_random_localsystem_service_with_a_bad_path() {
    let by = one_of_each();
    let evs = &by["suspicious_service_install"];
    assert_eq!(evs.len(), 1);
    let e = &evs[0];
    assert_eq!(
        (e.id(), e.s("Channel"), e.s("SourceName")),
        (7045, "System", "Service Control Manager")
    );
    assert_eq!(e.s("AccountName"), "LocalSystem");
    let name = e.s("ServiceName");
    assert!(
        name.len() == 8 && name.bytes().all(|b| b.is_ascii_alphabetic()),
        "{name}"
    );
    let path = e.s("ImagePath");
    let short = e.s("Hostname").trim_end_matches(".corp.example");
    assert!(
        path.starts_with("%COMSPEC% /c powershell -nop -w hidden -enc ")
            || path == r"C:\Users\Public\svc.exe"
            || (path.starts_with(r"C:\Windows\Temp\") && path.ends_with(".exe"))
            || (path.starts_with(&format!(r"\\{short}\ADMIN$\")) && path.ends_with(".exe")),
        "{path}"
    );
}

#[test]
fn privileged_group_add_names_the_group_the_member_dn_and_the_actor() {
    let by = one_of_each();
    let evs = &by["privileged_group_add"];
    assert_eq!(evs.len(), 1);
    let e = &evs[0];
    match e.id() {
        4732 => assert_eq!(
            (e.s("TargetUserName"), e.s("TargetDomainName")),
            ("Administrators", "Builtin")
        ),
        4728 => assert_eq!(e.s("TargetUserName"), "Domain Admins"),
        other => panic!("event id {other}"),
    }
    let member = e.s("MemberName");
    assert!(
        member.starts_with("CN=") && member.ends_with(",OU=Users,DC=corp,DC=example"),
        "{member}"
    );
    assert!(e.s("SubjectUserName").contains('.'), "{}", e.line);
    assert_ne!(
        &member[3..member.find(',').unwrap()],
        e.s("SubjectUserName")
    );
}

#[test]
fn office_spawns_shell_has_an_office_parent_and_a_shell_child() {
    let by = one_of_each();
    let evs = &by["office_spawns_shell"];
    assert_eq!(evs.len(), 2);
    let (office, child) = (&evs[0], &evs[1]);
    assert_eq!(office.s("ParentImage"), EXPLORER.path);
    let parent = child.s("ParentImage");
    assert!(
        [WINWORD.path, EXCEL.path, OUTLOOK.path].contains(&parent),
        "{parent}"
    );
    assert!(parent.starts_with(r"C:\Program Files\Microsoft Office\root\Office16\"));
    assert_eq!(parent, office.s("Image"));
    assert!(
        SHELLS.iter().any(|s| ends_with_ci(child.s("Image"), s)),
        "{}",
        child.line
    );
    assert_eq!(child.s("ParentProcessGuid"), office.s("ProcessGuid"));
}

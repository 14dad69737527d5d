//! Attack scenarios that arrive over the network: PowerShell remoting to another host, password guessing
//! and password spraying.

use rand::Rng;
use rand::seq::SliceRandom;

use super::catalog::{
    DOMAIN, EXPLORER, EXPLORER_CMD, POWERSHELL, SPRAY_GUESSES, SVCHOST, WHOAMI, WSMPROVHOST,
    WSMPROVHOST_CMD,
};
use super::domain::Who;
use super::events::{Ch, Conn, Failure, Ids, Logon, Spawn, write_failure, write_logon};
use super::{EventGenerator, Scenario};

impl EventGenerator {
    /// PowerShell remoting from a workstation to another host: Sysmon 1 (Invoke-Command/Enter-PSSession),
    /// Sysmon 3 to 5985, then on the target 4624 type 3, wsmprovhost.exe and its child.
    pub(super) fn inject_ps_remoting(&mut self, t: i64) {
        let src = self.workstation();
        self.ps_remoting_from(t, src);
    }

    /// [`Self::inject_ps_remoting`] from workstation `src`.
    pub(super) fn ps_remoting_from(&mut self, t: i64, src: usize) {
        const S: Scenario = Scenario::PsRemotingLateralMovement;
        let dst = self.other_host(src, true);
        let u = self.hosts[src].user;
        let target = self.hosts[dst].short.clone();
        let cmd = if self.rng.random_bool(0.3) {
            format!(
                r#""{}" -NoExit -Command "Enter-PSSession -ComputerName {target}""#,
                POWERSHELL.path
            )
        } else {
            let block = self.pick(&[
                "whoami; hostname",
                "Get-Process",
                "net localgroup administrators",
                r"Get-ChildItem C:\Users",
                "Get-Service | Where-Object Status -eq 'Running'",
                "ipconfig /all",
            ]);
            format!(
                r#"powershell.exe -NoProfile -Command "Invoke-Command -ComputerName {target} -ScriptBlock {{ {block} }}""#
            )
        };
        let ps_ids = self.ids(src);
        let ps = Spawn {
            host: src,
            image: POWERSHELL.path.into(),
            original: POWERSHELL.original,
            cmd: cmd.into(),
            who: Who::User(u),
            integrity: "Medium",
            session: 1,
            parent_image: EXPLORER.path.into(),
            parent_cmd: EXPLORER_CMD.into(),
            parent_who: Who::User(u),
            hash_seed: None,
        };
        self.queue_spawn(t, S, &ps, &ps_ids);

        let t_conn = t + self.rng.random_range(400..1500i64);
        let src_port = self.port();
        let mut body = Vec::with_capacity(1024);
        {
            let (s, d) = (&self.hosts[src], &self.hosts[dst]);
            let conn = Conn {
                guid: ps_ids.guid,
                pid: ps_ids.pid,
                image: POWERSHELL.path,
                who: Who::User(u),
                udp: false,
                src_ip: &s.ip,
                src_host: &s.fqdn,
                src_port,
                dst_ip: &d.ip,
                dst_host: &d.fqdn,
                dst_port: 5985,
                dst_port_name: "wsman",
            };
            self.write_conn(&mut body, &conn);
        }
        self.queue(t_conn, src, 3, Ch::Sysmon, S, body);

        let t_logon = t_conn + self.rng.random_range(100..600i64);
        let logon_id = u64::from(self.rng.random_range(0x10_0000..0xfff_ffffu32));
        let mut body = Vec::with_capacity(1024);
        {
            let user = &self.users[u];
            let logon = Logon {
                subject_sid: "S-1-0-0",
                subject_user: "-",
                subject_domain: "-",
                subject_logon_id: 0,
                target_sid: &user.sid,
                target_user: &user.name,
                target_domain: DOMAIN,
                target_logon_id: logon_id,
                logon_type: 3,
                logon_process: "Kerberos",
                auth_package: "Kerberos",
                workstation: "-",
                lm_package: "-",
                key_length: 0,
                process_id: 0,
                process_name: "-",
                ip: &self.hosts[src].ip,
                port: src_port,
                elevated: true,
            };
            write_logon(&mut body, &logon);
        }
        self.queue(t_logon, dst, 4624, Ch::Security, S, body);

        let t_host = t_logon + self.rng.random_range(100..800i64);
        let host_ids = self.ids(dst);
        let wsm = Spawn {
            host: dst,
            image: WSMPROVHOST.path.into(),
            original: WSMPROVHOST.original,
            cmd: WSMPROVHOST_CMD.into(),
            who: Who::User(u),
            integrity: "High",
            session: 0,
            parent_image: SVCHOST.path.into(),
            parent_cmd: r"C:\Windows\system32\svchost.exe -k DcomLaunch -p".into(),
            parent_who: Who::System,
            hash_seed: None,
        };
        self.queue_spawn(t_host, S, &wsm, &host_ids);

        let t_child = t_host + self.rng.random_range(1000..5000i64);
        let (exe, child_cmd) = self.pick(&[
            (&WHOAMI, r#""C:\Windows\system32\whoami.exe""#),
            (&WHOAMI, r#""C:\Windows\system32\whoami.exe" /all"#),
            (&POWERSHELL, r#""C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe" -NoLogo -NonInteractive"#),
        ]);
        let child_ids = Ids {
            guid: self.guid(dst),
            pid: self.pid(),
            parent_guid: host_ids.guid,
            parent_pid: host_ids.pid,
        };
        let child = Spawn {
            host: dst,
            image: exe.path.into(),
            original: exe.original,
            cmd: child_cmd.into(),
            who: Who::User(u),
            integrity: "High",
            session: 0,
            parent_image: WSMPROVHOST.path.into(),
            parent_cmd: WSMPROVHOST_CMD.into(),
            parent_who: Who::User(u),
            hash_seed: None,
        };
        self.queue_spawn(t_child, S, &child, &child_ids);
    }

    /// Where a password attack comes from: a workstation (its address and name) or a rogue device.
    /// Noise failed logons from that source are held off until the attack is over.
    fn attack_source(&mut self, not: usize, end: i64) -> (String, String) {
        if self.rng.random_bool(0.5) {
            let ws = self.other_workstation(not);
            if let Some(ws) = ws {
                self.typo_src[ws] = self.typo_src[ws].max(end);
                return (self.hosts[ws].ip.clone(), self.hosts[ws].short.clone());
            }
        }
        let name = if self.rng.random_bool(0.5) {
            "kali".to_string()
        } else {
            format!(
                "DESKTOP-{}",
                self.random_text(7, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
            )
        };
        (self.rogue_ip(), name)
    }

    /// A random workstation other than `not`, if there is one.
    fn other_workstation(&mut self, not: usize) -> Option<usize> {
        if self.workstations.iter().all(|&w| w == not) {
            return None;
        }
        loop {
            let w = self.workstation();
            if w != not {
                return Some(w);
            }
        }
    }

    /// `n` sorted offsets from 0 to `span` (first 0, last `span`).
    fn spread(&mut self, n: usize, span: i64) -> Vec<i64> {
        let mut offs: Vec<i64> = (0..n.saturating_sub(2))
            .map(|_| self.rng.random_range(1..span))
            .collect();
        offs.push(0);
        offs.push(span);
        offs.sort_unstable();
        offs
    }

    /// 12–20 failed network logons (bad password) from one source against one account on one host,
    /// spread over 30–90 seconds.
    pub(super) fn inject_password_guessing(&mut self, t: i64) {
        const S: Scenario = Scenario::PasswordGuessing;
        let target = self.host();
        let u = self.user();
        let n = self.rng.random_range(12..=20usize);
        let span = self.rng.random_range(30_000..=90_000i64);
        let (ip, workstation) = self.attack_source(target, t + span);
        self.typo_user[u] = self.typo_user[u].max(t + span);
        self.typo_host[target] = self.typo_host[target].max(t + span);
        for off in self.spread(n, span) {
            let port = self.port();
            let mut body = Vec::with_capacity(768);
            let failure = Failure {
                subject_sid: "S-1-0-0",
                subject_user: "-",
                subject_domain: "-",
                subject_logon_id: 0,
                target_user: &self.users[u].name,
                target_domain: DOMAIN,
                sub_status: "0xc000006a",
                logon_type: 3,
                logon_process: "NtLmSsp ",
                auth_package: "NTLM",
                workstation: &workstation,
                process_id: 0,
                process_name: "-",
                ip: &ip,
                port,
            };
            write_failure(&mut body, &failure);
            self.queue(t + off, target, 4625, Ch::Security, S, body);
        }
    }

    /// Failed network logons from one source against 15–25 different accounts (real ones: bad password;
    /// made-up ones: no such user) on a domain controller, spread over 1–3 minutes.
    pub(super) fn inject_password_spray(&mut self, t: i64) {
        const S: Scenario = Scenario::PasswordSpray;
        let dc = self.dc();
        let n = self.rng.random_range(15..=25usize);
        let span = self.rng.random_range(60_000..=180_000i64);
        let (ip, workstation) = self.attack_source(dc, t + span);
        self.typo_host[dc] = self.typo_host[dc].max(t + span);
        let real = ((n * 7) / 10).min(self.users.len());
        let mut real_users: Vec<usize> = (0..self.users.len()).collect();
        real_users.shuffle(&mut self.rng);
        real_users.truncate(real);
        let mut guesses: Vec<&'static str> = SPRAY_GUESSES.to_vec();
        guesses.shuffle(&mut self.rng);
        guesses.truncate(n - real);
        let mut targets: Vec<(String, &'static str)> = Vec::with_capacity(n);
        for &u in &real_users {
            self.typo_user[u] = self.typo_user[u].max(t + span);
            targets.push((self.users[u].name.clone(), "0xc000006a"));
        }
        targets.extend(guesses.iter().map(|g| (g.to_string(), "0xc0000064")));
        targets.shuffle(&mut self.rng);
        let offs = self.spread(n, span);
        for ((name, sub_status), off) in targets.iter().zip(offs) {
            let port = self.port();
            let mut body = Vec::with_capacity(768);
            let failure = Failure {
                subject_sid: "S-1-0-0",
                subject_user: "-",
                subject_domain: "-",
                subject_logon_id: 0,
                target_user: name,
                target_domain: DOMAIN,
                sub_status,
                logon_type: 3,
                logon_process: "NtLmSsp ",
                auth_package: "NTLM",
                workstation: &workstation,
                process_id: 0,
                process_name: "-",
                ip: &ip,
                port,
            };
            write_failure(&mut body, &failure);
            self.queue(t + off, dc, 4625, Ch::Security, S, body);
        }
    }
}

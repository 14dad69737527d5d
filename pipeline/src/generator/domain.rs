//! The modelled domain: hosts, user accounts, process GUIDs and the accounts processes run as; how hosts and
//! users are built from the seed, and the random picks of hosts, users, ids and addresses the events draw.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;

use super::EventGenerator;
use super::catalog::{
    DNS_SUFFIX, DOMAIN, DOMAIN_SID, EVIL_DOMAINS, FIRST_NAMES, LAST_NAMES, PUBLIC_NETS,
    SERVER_NAMES,
};
use super::events::Ids;

/// What a host is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// A user's workstation.
    Workstation,
    /// A domain controller.
    DomainController,
    /// Any other server.
    Server,
}

/// One modelled host.
pub(super) struct Host {
    /// `WS-0007.corp.example`.
    pub(super) fqdn: String,
    /// `WS-0007`.
    pub(super) short: String,
    /// IPv4 address.
    pub(super) ip: String,
    /// `WS-0007$`, the machine account.
    pub(super) machine_account: String,
    /// SID of the machine account.
    pub(super) machine_sid: String,
    /// What the host is for.
    pub(super) role: Role,
    /// First group of the host's Sysmon process GUIDs.
    guid_prefix: u32,
    /// Process id of lsass.exe.
    pub(super) lsass_pid: u32,
    /// Process GUID of lsass.exe.
    pub(super) lsass_guid: Guid,
    /// Index of the user who works at it (workstations) or administers it.
    pub(super) user: usize,
}

/// One modelled user account.
pub(super) struct User {
    /// `alice.kim`.
    pub(super) name: String,
    /// `CORP\alice.kim`.
    pub(super) qualified: String,
    /// `C:\Users\alice.kim`.
    pub(super) profile: String,
    /// `C:\Users\alice.kim\` (the usual working directory).
    pub(super) cwd: String,
    /// Account SID.
    pub(super) sid: String,
    /// Logon id of the user's interactive session.
    logon_id: u64,
}

/// A Sysmon process GUID (`{6a9a0f7b-5e0c-6756-5a00-000000002d00}` style).
#[derive(Clone, Copy, Debug)]
pub(super) struct Guid {
    /// Host-specific first group.
    pub(super) prefix: u32,
    /// Second group.
    pub(super) a: u16,
    /// Third group.
    pub(super) b: u16,
    /// Fourth group.
    pub(super) c: u16,
    /// Last group (48 bits used).
    pub(super) d: u64,
}

/// Who a process runs as.
#[derive(Clone, Copy, Debug)]
pub(super) enum Who {
    /// `NT AUTHORITY\SYSTEM`.
    System,
    /// `NT AUTHORITY\LOCAL SERVICE`.
    LocalService,
    /// `NT AUTHORITY\NETWORK SERVICE`.
    NetworkService,
    /// A domain user (index into the user list).
    User(usize),
}

impl Host {
    /// Process id of winlogon.exe, which asks for interactive logons.
    pub(super) fn winlogon_pid(&self) -> u32 {
        self.lsass_pid - 0x48
    }
}

/// Builds `n` distinct user accounts from the shuffled name pools.
pub(super) fn build_users(rng: &mut ChaCha8Rng, n: usize) -> Vec<User> {
    let mut first = FIRST_NAMES;
    let mut last = LAST_NAMES;
    first.shuffle(rng);
    last.shuffle(rng);
    let pairs = first.len() * last.len();
    (0..n)
        .map(|i| {
            // (i mod 64, (i / 64 + i) mod 64) is a distinct pair for every i below 64 * 64.
            let j = i % pairs;
            let f = first[j % first.len()];
            let l = last[(j / first.len() + j) % last.len()];
            let name = if i < pairs {
                format!("{f}.{l}")
            } else {
                format!("{f}.{l}{}", i / pairs + 1)
            };
            User {
                qualified: format!("{DOMAIN}\\{name}"),
                profile: format!(r"C:\Users\{name}"),
                cwd: format!(r"C:\Users\{name}\"),
                sid: format!("{DOMAIN_SID}-{}", 1105 + i),
                logon_id: u64::from(rng.random_range(0x10_0000..0xfff_ffffu32)),
                name,
            }
        })
        .collect()
}

/// Builds `n` hosts: about one server per twenty hosts (at least one domain controller), then workstations.
pub(super) fn build_hosts(rng: &mut ChaCha8Rng, n: usize, users: usize) -> Vec<Host> {
    let servers = (n / 20).clamp(1, n - 2);
    (0..n)
        .map(|i| {
            let (short, ip, role) = if i < servers {
                let short = match SERVER_NAMES.get(i) {
                    Some(name) => (*name).to_string(),
                    None => format!("SRV-APP{:02}", i - SERVER_NAMES.len() + 3),
                };
                let role = if short.starts_with("SRV-DC") {
                    Role::DomainController
                } else {
                    Role::Server
                };
                (
                    short,
                    format!("10.0.{}.{}", 10 + i / 240, 10 + i % 240),
                    role,
                )
            } else {
                let w = i - servers;
                let ip = format!("10.{}.{}.{}", 20 + w / 64_000, (w / 250) % 256, 5 + w % 250);
                (format!("WS-{:04}", w + 1), ip, Role::Workstation)
            };
            let guid_prefix = rng.random();
            let lsass_guid = Guid {
                prefix: guid_prefix,
                a: rng.random(),
                b: rng.random(),
                c: 0x0c00,
                d: u64::from(rng.random::<u16>()),
            };
            Host {
                fqdn: format!("{short}{DNS_SUFFIX}"),
                machine_account: format!("{short}$"),
                machine_sid: format!("{DOMAIN_SID}-{}", 20_000 + i),
                ip,
                role,
                guid_prefix,
                lsass_pid: 4 * rng.random_range(150..260u32),
                lsass_guid,
                user: i % users,
                short,
            }
        })
        .collect()
}

impl EventGenerator {
    /// A random element of a non-empty slice.
    pub(super) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        *xs.choose(&mut self.rng).expect("pick from an empty slice")
    }

    /// A random workstation index.
    pub(super) fn workstation(&mut self) -> usize {
        let i = self.rng.random_range(0..self.workstations.len());
        self.workstations[i]
    }

    /// A random server index.
    pub(super) fn server(&mut self) -> usize {
        let i = self.rng.random_range(0..self.servers.len());
        self.servers[i]
    }

    /// A random domain controller index.
    pub(super) fn dc(&mut self) -> usize {
        let i = self.rng.random_range(0..self.dcs.len());
        self.dcs[i]
    }

    /// A random host index.
    pub(super) fn host(&mut self) -> usize {
        self.rng.random_range(0..self.hosts.len())
    }

    /// A random host other than `not`.
    pub(super) fn other_host(&mut self, not: usize, prefer_server: bool) -> usize {
        loop {
            let h = if prefer_server && self.rng.random_bool(0.7) {
                self.server()
            } else {
                self.host()
            };
            if h != not {
                return h;
            }
        }
    }

    /// A random user index.
    pub(super) fn user(&mut self) -> usize {
        self.rng.random_range(0..self.users.len())
    }

    /// A plausible process id (a multiple of 4).
    pub(super) fn pid(&mut self) -> u32 {
        4 * self.rng.random_range(200..6000u32)
    }

    /// An ephemeral source port.
    pub(super) fn port(&mut self) -> u16 {
        self.rng.random_range(49152..=65535u16)
    }

    /// A fresh process GUID on `host`.
    pub(super) fn guid(&mut self, host: usize) -> Guid {
        Guid {
            prefix: self.hosts[host].guid_prefix,
            a: self.rng.random(),
            b: self.rng.random(),
            c: self.rng.random(),
            d: u64::from(self.rng.random::<u32>() & 0x00ff_ffff),
        }
    }

    /// Fresh ids for a process and its parent on `host`.
    pub(super) fn ids(&mut self, host: usize) -> Ids {
        Ids {
            guid: self.guid(host),
            pid: self.pid(),
            parent_guid: self.guid(host),
            parent_pid: self.pid(),
        }
    }

    /// `n` random characters from `alphabet`.
    pub(super) fn random_text(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| char::from(self.pick(alphabet))).collect()
    }

    /// A random public address.
    pub(super) fn public_ip(&mut self) -> String {
        let net = self.pick(&PUBLIC_NETS);
        format!(
            "{net}.{}.{}",
            self.rng.random_range(0..=255u8),
            self.rng.random_range(1..=254u8)
        )
    }

    /// An attacker's download server: an address or a look-alike domain.
    pub(super) fn evil_server(&mut self) -> String {
        if self.rng.random_bool(0.5) {
            format!(
                "{}.{}.{}.{}",
                self.pick(&[45u8, 91, 185, 193, 198]),
                self.rng.random_range(1..=254u8),
                self.rng.random_range(1..=254u8),
                self.rng.random_range(1..=254u8)
            )
        } else {
            self.pick(&EVIL_DOMAINS).to_string()
        }
    }

    /// An address in a range no modelled host uses (a rogue device).
    pub(super) fn rogue_ip(&mut self) -> String {
        format!(
            "10.66.{}.{}",
            self.rng.random_range(0..=255u8),
            self.rng.random_range(2..=254u8)
        )
    }

    /// `DOMAIN\name` style account text.
    pub(super) fn who_name(&self, who: Who) -> &str {
        match who {
            Who::System => r"NT AUTHORITY\SYSTEM",
            Who::LocalService => r"NT AUTHORITY\LOCAL SERVICE",
            Who::NetworkService => r"NT AUTHORITY\NETWORK SERVICE",
            Who::User(u) => &self.users[u].qualified,
        }
    }

    /// Logon id of an account's session.
    pub(super) fn who_logon_id(&self, who: Who) -> u64 {
        match who {
            Who::System => 0x3e7,
            Who::LocalService => 0x3e5,
            Who::NetworkService => 0x3e4,
            Who::User(u) => self.users[u].logon_id,
        }
    }
}

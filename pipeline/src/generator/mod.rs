//! Deterministic source of synthetic Windows security events, for demos, load tests and hunt checks.
//!
//! [`EventGenerator`] models a small Active Directory domain (`CORP` / `corp.example`): workstations named
//! `WS-0001.corp.example` …, a few servers (`SRV-DC01`, `SRV-FILE01`, `SRV-SQL01` …) and user accounts
//! such as `alice.kim`. Each call of [`EventGenerator::next_event`] appends one event to a buffer as a single
//! line of JSON in the *flat* shape that Winlogbeat, NXLog and the OTRF data sets use: `@timestamp`
//! (RFC 3339, UTC, milliseconds), `EventID` (a number), `Channel`, `Hostname`, `SourceName` and
//! `RecordNumber` at the top level, followed by the event's own data fields under their Windows names
//! (`Image`, `CommandLine`, `TargetUserName`, `LogonType` …). Event data values are strings, as Windows
//! records them (`"ProcessId":"4312"`, `"LogonType":"3"`).
//!
//! Most events are background noise in realistic proportions: Sysmon process starts (1), connections (3),
//! process access to lsass by Defender and WMI (10), file creates (11) and DNS queries (22); Security logons
//! (4624) and rare single failed logons (4625); benign PowerShell script blocks (4104) and rare benign
//! service installs (System 7045). No noise event matches the hunt logic of any [`Scenario`].
//!
//! Every `attack_interval` of event time one attack [`Scenario`] is injected, rotating through all eight
//! kinds in an order shuffled by the seed. A scenario is a short sequence of events queued with offsets of
//! up to a few minutes and interleaved with the noise as event time passes. [`EventGenerator::last_scenario`]
//! labels the event just written, so tests can check that the hunts fire on exactly those events.
//!
//! The output depends only on the [`GeneratorConfig`] and on the sequence of `now` values passed in: the
//! random numbers come from one ChaCha8 stream seeded by `seed`, and nothing reads the wall clock or
//! iterates a hash map.
//!
//! Field notes, where Windows itself is irregular:
//! - Sysmon events carry `RuleName` and `UtcTime` (`2026-11-28 07:40:01.123`) like real ones; process ids
//!   there are decimal strings, while Security 4624/4625 write `ProcessId` in hex (`"0x2f4"`, `"0x0"` for
//!   network logons), which the decoder reads as an integer too.
//! - `LogonProcessName` keeps the trailing space Windows writes (`"NtLmSsp "`, `"User32 "`).
//! - 4728/4732 name the group's SID `TargetSid`, as Windows does (there is no `TargetUserSid` in them).
//! - Noise failed logons are single mistakes: at most one per source address, per account and per host in
//!   any five minutes, and at most one a minute overall, so only the password scenarios produce bursts.

mod catalog;
mod domain;
mod events;
mod json;
mod noise;
mod noise_process;
mod scenarios_host;
mod scenarios_network;
mod source;
#[cfg(test)]
mod tests;

pub use source::GeneratorSource;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use domain::{Host, Role, User, build_hosts, build_users};
use events::{Ch, Ids, Spawn};
use json::{Clock, key, kv_plain, push_u64};

/// Fewest hosts modelled (a domain controller and two workstations); smaller `hosts` values are raised.
const MIN_HOSTS: u32 = 3;
/// Fewest user accounts modelled; smaller `users` values are raised.
const MIN_USERS: u32 = 2;
/// Most scenario events waiting at once; an attack slot that falls while more are queued is skipped.
const MAX_PENDING: usize = 10_000;
/// Least event time between two noise failed logons from one source address, for one user or on one
/// host: more than five minutes, so no five-minute window holds two of them.
const TYPO_GAP_MS: i64 = 5 * 60 * 1000 + 1000;
/// Least event time between any two noise failed logons.
const TYPO_GLOBAL_GAP_MS: i64 = 60_000;
/// Sentinel "long ago" time for the failed-logon rate limits.
const LONG_AGO: i64 = i64::MIN / 4;

/// What the generator models and how often it attacks.
#[derive(Clone, Debug)]
pub struct GeneratorConfig {
    /// Number of hosts: about one in twenty is a server (`SRV-DC01.corp.example`, `SRV-FILE01…`, at least
    /// one domain controller), the rest are workstations (`WS-0001.corp.example` …). At least 3 are modelled.
    pub hosts: u32,
    /// Number of user accounts (`alice.kim` style names from first/last name pools). At least 2 are modelled.
    pub users: u32,
    /// Seed of the random stream: the same seed, config and `now` sequence give byte-identical output.
    pub seed: u64,
    /// Event time between injected attack scenarios, the first one interval after the first event;
    /// `Duration::ZERO` injects none (pure background noise).
    pub attack_interval: Duration,
    /// Event time between multi-stage campaigns, the first one interval after the first event;
    /// `Duration::ZERO` runs none. A campaign, on one workstation: encoded PowerShell (execution), a
    /// credential dumper reading LSASS (credential access) 5 minutes later, PowerShell remoting from it to
    /// another host (lateral movement) at 12 minutes, a suspicious service installed on it (persistence) at
    /// 25 minutes — each stage the events of the scenario of that name.
    pub campaign_interval: Duration,
}

/// An attack pattern the generator can inject, each matching one hunt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// PowerShell remoting to another host: `Invoke-Command`/`Enter-PSSession`, a WinRM connection on
    /// 5985, a network logon on the target and `wsmprovhost.exe` starting a child there.
    PsRemotingLateralMovement,
    /// 12–20 failed network logons from one address against one account on one host within 30–90 s.
    PasswordGuessing,
    /// Failed network logons from one address against 15–25 different accounts on a domain controller
    /// within 1–3 minutes.
    PasswordSpray,
    /// powershell.exe started by cmd.exe or WmiPrvSE.exe with a base64 `-enc` payload.
    EncodedPowerShell,
    /// A credential-dumping tool opening lsass.exe with a suspicious access mask and call trace.
    LsassAccess,
    /// A service (System 7045) whose binary is a shell command, a temp/public-folder file or an ADMIN$ path.
    SuspiciousServiceInstall,
    /// A user added to the local Administrators (4732) or to Domain Admins (4728).
    PrivilegedGroupAdd,
    /// Word, Excel or Outlook starting cmd, powershell, wscript, mshta or rundll32.
    OfficeSpawnsShell,
}

impl Scenario {
    /// Every scenario, in declaration order.
    pub const ALL: [Scenario; 8] = [
        Scenario::PsRemotingLateralMovement,
        Scenario::PasswordGuessing,
        Scenario::PasswordSpray,
        Scenario::EncodedPowerShell,
        Scenario::LsassAccess,
        Scenario::SuspiciousServiceInstall,
        Scenario::PrivilegedGroupAdd,
        Scenario::OfficeSpawnsShell,
    ];

    /// The scenario's snake_case name, e.g. `"password_guessing"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::PsRemotingLateralMovement => "ps_remoting_lateral_movement",
            Scenario::PasswordGuessing => "password_guessing",
            Scenario::PasswordSpray => "password_spray",
            Scenario::EncodedPowerShell => "encoded_powershell",
            Scenario::LsassAccess => "lsass_access",
            Scenario::SuspiciousServiceInstall => "suspicious_service_install",
            Scenario::PrivilegedGroupAdd => "privileged_group_add",
            Scenario::OfficeSpawnsShell => "office_spawns_shell",
        }
    }

    /// Position of the scenario in [`Scenario::ALL`].
    fn index(self) -> usize {
        Scenario::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// A scenario event waiting for its event time.
struct Pending {
    /// Host it is logged on.
    host: usize,
    /// Windows event id.
    event_id: u16,
    /// Channel.
    channel: Ch,
    /// Scenario it belongs to.
    scenario: Scenario,
    /// The data fields, each written as `,"Key":value`, without the header or the closing brace.
    body: Vec<u8>,
}

/// Whether a slot of a schedule every `interval` ms (the first one interval after the first call) is due at
/// `t`; when it is, `next` moves to the first slot after `t` (slots skipped by a jump in `t` are dropped).
fn slot_due(next: &mut Option<i64>, t: i64, interval: i64) -> bool {
    let due = *next.get_or_insert(t.saturating_add(interval));
    if t < due {
        return false;
    }
    let missed = (t - due) / interval;
    *next = Some(due.saturating_add((missed + 1).saturating_mul(interval)));
    true
}

/// The deterministic event generator: background noise with attack scenarios injected on a schedule.
pub struct EventGenerator {
    /// The one random stream everything is drawn from.
    rng: ChaCha8Rng,
    /// All hosts: servers first, then workstations.
    hosts: Vec<Host>,
    /// Indexes of workstations.
    workstations: Vec<usize>,
    /// Indexes of servers (domain controllers included).
    servers: Vec<usize>,
    /// Indexes of domain controllers.
    dcs: Vec<usize>,
    /// All user accounts.
    users: Vec<User>,
    /// Attack interval in milliseconds; `None` when attacks are off.
    attack_ms: Option<i64>,
    /// Event time of the next attack slot (set by the first event).
    next_attack: Option<i64>,
    /// Campaign interval in milliseconds; `None` when campaigns are off.
    campaign_ms: Option<i64>,
    /// Event time of the next campaign (set by the first event).
    next_campaign: Option<i64>,
    /// Campaigns started, and the workstation of each.
    campaigns: Vec<usize>,
    /// Rotation order of the scenarios.
    order: [Scenario; 8],
    /// Position of the next scenario in `order`.
    next_kind: usize,
    /// Scenario events waiting, by (due time, sequence number).
    pending: BTreeMap<(i64, u64), Pending>,
    /// Sequence number of the last queued scenario event.
    seq: u64,
    /// Event time of the last event written.
    last_ms: i64,
    /// Scenario of the last event written.
    last_scenario: Option<Scenario>,
    /// Injection counts, in [`Scenario::ALL`] order.
    injected: [(Scenario, u64); 8],
    /// Next record number per host and channel.
    records: Vec<[u64; 4]>,
    /// Last noise failed logon per source (one slot per host, then one for 127.0.0.1).
    typo_src: Vec<i64>,
    /// Last noise failed logon per target user.
    typo_user: Vec<i64>,
    /// Last noise failed logon per logging host.
    typo_host: Vec<i64>,
    /// Last noise failed logon anywhere.
    typo_any: i64,
    /// Timestamp text cache.
    clock: Clock,
}

impl EventGenerator {
    /// Builds the modelled domain (hosts, users, scenario order) from `config`.
    #[must_use]
    pub fn new(config: GeneratorConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let users = build_users(&mut rng, config.users.max(MIN_USERS) as usize);
        let hosts = build_hosts(&mut rng, config.hosts.max(MIN_HOSTS) as usize, users.len());
        let workstations = (0..hosts.len())
            .filter(|&i| hosts[i].role == Role::Workstation)
            .collect();
        let servers = (0..hosts.len())
            .filter(|&i| hosts[i].role != Role::Workstation)
            .collect();
        let dcs = (0..hosts.len())
            .filter(|&i| hosts[i].role == Role::DomainController)
            .collect();
        let mut order = Scenario::ALL;
        order.shuffle(&mut rng);
        let attack_ms = if config.attack_interval.is_zero() {
            None
        } else {
            let ms = config
                .attack_interval
                .as_millis()
                .clamp(1, (i64::MAX / 4) as u128);
            Some(ms as i64)
        };
        let campaign_ms = (!config.campaign_interval.is_zero()).then(|| {
            config
                .campaign_interval
                .as_millis()
                .clamp(1, (i64::MAX / 4) as u128) as i64
        });
        let n_hosts = hosts.len();
        let n_users = users.len();
        EventGenerator {
            rng,
            hosts,
            workstations,
            servers,
            dcs,
            users,
            attack_ms,
            next_attack: None,
            campaign_ms,
            next_campaign: None,
            campaigns: Vec::new(),
            order,
            next_kind: 0,
            pending: BTreeMap::new(),
            seq: 0,
            last_ms: i64::MIN,
            last_scenario: None,
            injected: Scenario::ALL.map(|s| (s, 0)),
            records: vec![[0; 4]; n_hosts],
            typo_src: vec![LONG_AGO; n_hosts + 1],
            typo_user: vec![LONG_AGO; n_users],
            typo_host: vec![LONG_AGO; n_hosts],
            typo_any: LONG_AGO,
            clock: Clock {
                sec: i64::MIN,
                text: [b'0'; 19],
            },
        }
    }

    /// Appends the next event's JSON (one line, no trailing newline) to `out`, stamped with event time `now`
    /// (scenario events queued earlier get `now` plus their small in-scenario offset, never earlier than the
    /// previous event).
    ///
    /// A `now` earlier than the previous event's time is treated as that time, so event times never go
    /// backwards. An attack scenario is injected when `now` reaches the next attack slot (at most one per
    /// call; slots skipped by a jump in `now` are dropped). A queued scenario event whose time has come is
    /// written before any noise.
    pub fn next_event(&mut self, now: DateTime<Utc>, out: &mut Vec<u8>) {
        let t = now.timestamp_millis().max(self.last_ms);
        self.maybe_inject(t);
        self.maybe_campaign(t);
        let due = self.pending.first_key_value().map(|(&(due, _), _)| due);
        if let Some(due) = due
            && due <= t
        {
            let (_, p) = self
                .pending
                .pop_first()
                .expect("a first entry was just seen");
            let stamp = due.max(self.last_ms);
            self.begin(out, stamp, p.event_id, p.channel, p.host);
            out.extend_from_slice(&p.body);
            self.last_ms = stamp;
            self.last_scenario = Some(p.scenario);
        } else {
            self.noise(out, t);
            self.last_ms = t;
            self.last_scenario = None;
        }
        out.push(b'}');
    }

    /// The name of the scenario the most recent event belonged to, or None for background noise.
    #[must_use]
    pub fn last_scenario(&self) -> Option<Scenario> {
        self.last_scenario
    }

    /// How many scenarios of each kind have been injected so far: one entry per kind, in
    /// [`Scenario::ALL`] order.
    #[must_use]
    pub fn injected(&self) -> &[(Scenario, u64)] {
        &self.injected
    }

    // ----------------------------------------------------------------------------------------------
    // Scheduling and framing
    // ----------------------------------------------------------------------------------------------

    /// Injects the next scenario if `t` has reached the attack slot, and moves the slot on.
    fn maybe_inject(&mut self, t: i64) {
        if !self
            .attack_ms
            .is_some_and(|interval| slot_due(&mut self.next_attack, t, interval))
        {
            return;
        }
        if self.pending.len() < MAX_PENDING {
            let kind = self.order[self.next_kind];
            self.next_kind = (self.next_kind + 1) % self.order.len();
            self.inject(kind, t);
            self.injected[kind.index()].1 += 1;
        }
    }

    /// Starts a campaign when `t` reaches the next campaign slot (slots skipped by a jump are dropped).
    fn maybe_campaign(&mut self, t: i64) {
        if !self
            .campaign_ms
            .is_some_and(|interval| slot_due(&mut self.next_campaign, t, interval))
        {
            return;
        }
        const MINUTE: i64 = 60_000;
        let h = self.workstation();
        self.encoded_powershell_on(t, h);
        self.lsass_access_on(t + 5 * MINUTE, h);
        self.ps_remoting_from(t + 12 * MINUTE, h);
        self.service_install_on(t + 25 * MINUTE, h);
        self.campaigns.push(h);
    }

    /// The hosts (`WS-0007.corp.example` …) campaigns ran on so far, in order.
    pub fn campaign_hosts(&self) -> Vec<String> {
        self.campaigns
            .iter()
            .map(|&h| self.hosts[h].fqdn.clone())
            .collect()
    }

    /// Queues a scenario event due at `due`.
    fn queue(
        &mut self,
        due: i64,
        host: usize,
        event_id: u16,
        channel: Ch,
        scenario: Scenario,
        body: Vec<u8>,
    ) {
        self.seq += 1;
        self.pending.insert(
            (due, self.seq),
            Pending {
                host,
                event_id,
                channel,
                scenario,
                body,
            },
        );
    }

    /// Writes the event header: `{"@timestamp":…,"EventID":…,"Channel":…,"Hostname":…,"SourceName":…,
    /// "RecordNumber":…`, and for Sysmon `"RuleName"` and `"UtcTime"`. The caller writes the data fields and `}`.
    fn begin(&mut self, out: &mut Vec<u8>, ms: i64, event_id: u16, ch: Ch, host: usize) {
        out.extend_from_slice(b"{\"@timestamp\":\"");
        self.clock.write(out, ms, b'T');
        out.extend_from_slice(b"Z\",\"EventID\":");
        push_u64(out, u64::from(event_id));
        kv_plain(out, "Channel", ch.channel());
        kv_plain(out, "Hostname", &self.hosts[host].fqdn);
        kv_plain(out, "SourceName", ch.provider());
        let record = &mut self.records[host][ch.index()];
        *record += 1;
        key(out, "RecordNumber");
        push_u64(out, *record);
        if ch == Ch::Sysmon {
            kv_plain(out, "RuleName", "-");
            key(out, "UtcTime");
            out.push(b'"');
            self.clock.write(out, ms, b' ');
            out.push(b'"');
        }
    }

    // ----------------------------------------------------------------------------------------------
    // Attack scenarios (the kinds are written in `scenarios_network` and `scenarios_host`)
    // ----------------------------------------------------------------------------------------------

    /// Queues the events of one scenario of `kind` starting at `t`.
    fn inject(&mut self, kind: Scenario, t: i64) {
        match kind {
            Scenario::PsRemotingLateralMovement => self.inject_ps_remoting(t),
            Scenario::PasswordGuessing => self.inject_password_guessing(t),
            Scenario::PasswordSpray => self.inject_password_spray(t),
            Scenario::EncodedPowerShell => self.inject_encoded_powershell(t),
            Scenario::LsassAccess => self.inject_lsass_access(t),
            Scenario::SuspiciousServiceInstall => self.inject_service_install(t),
            Scenario::PrivilegedGroupAdd => self.inject_group_add(t),
            Scenario::OfficeSpawnsShell => self.inject_office_shell(t),
        }
    }

    /// Queues a Sysmon 1 for `spawn` at `due`.
    fn queue_spawn(&mut self, due: i64, scenario: Scenario, spawn: &Spawn, ids: &Ids) {
        let mut body = Vec::with_capacity(1024);
        self.write_spawn(&mut body, spawn, ids);
        self.queue(due, spawn.host, 1, Ch::Sysmon, scenario, body);
    }
}

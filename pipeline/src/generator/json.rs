//! Hand-written JSON: timestamps, numbers, hex, GUIDs, fake hashes and `,"key":value` pairs appended
//! straight to the output buffer.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::domain::Guid;

/// Cached text of the current second, so a timestamp costs a copy and three digits.
pub(super) struct Clock {
    /// The second `text` shows (Unix seconds).
    pub(super) sec: i64,
    /// `YYYY-MM-DDTHH:MM:SS`.
    pub(super) text: [u8; 19],
}

impl Clock {
    /// Writes `ms` (Unix milliseconds) as `YYYY-MM-DD<sep>HH:MM:SS.mmm`.
    pub(super) fn write(&mut self, out: &mut Vec<u8>, ms: i64, sep: u8) {
        let sec = ms.div_euclid(1000);
        if sec != self.sec {
            self.sec = sec;
            let dt = DateTime::<Utc>::from_timestamp(sec, 0).unwrap_or_default();
            let year = dt.year().clamp(0, 9999) as u32;
            let t = &mut self.text;
            digits(&mut t[0..4], year);
            t[4] = b'-';
            digits(&mut t[5..7], dt.month());
            t[7] = b'-';
            digits(&mut t[8..10], dt.day());
            t[10] = b'T';
            digits(&mut t[11..13], dt.hour());
            t[13] = b':';
            digits(&mut t[14..16], dt.minute());
            t[16] = b':';
            digits(&mut t[17..19], dt.second());
        }
        out.extend_from_slice(&self.text[..10]);
        out.push(sep);
        out.extend_from_slice(&self.text[11..]);
        out.push(b'.');
        let mut millis = [0u8; 3];
        digits(&mut millis, ms.rem_euclid(1000) as u32);
        out.extend_from_slice(&millis);
    }
}

/// Fills `buf` with the low decimal digits of `v`, zero-padded.
fn digits(buf: &mut [u8], mut v: u32) {
    for b in buf.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Appends `v` in decimal.
pub(super) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends the low `width` hex digits of `v`.
fn push_hex(out: &mut Vec<u8>, v: u64, width: u32, upper: bool) {
    let table: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    for i in (0..width).rev() {
        out.push(table[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// Appends `v` as `0x…` lowercase hex without leading zeros.
fn push_hex_short(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(b"0x");
    let width = if v == 0 {
        1
    } else {
        (64 - v.leading_zeros()).div_ceil(4)
    };
    push_hex(out, v, width, false);
}

/// Appends a GUID in braces.
pub(super) fn push_guid(out: &mut Vec<u8>, g: &Guid) {
    out.push(b'{');
    push_hex(out, u64::from(g.prefix), 8, false);
    out.push(b'-');
    push_hex(out, u64::from(g.a), 4, false);
    out.push(b'-');
    push_hex(out, u64::from(g.b), 4, false);
    out.push(b'-');
    push_hex(out, u64::from(g.c), 4, false);
    out.push(b'-');
    push_hex(out, g.d, 12, false);
    out.push(b'}');
}

/// Writes `,"key":` (keys are constant ASCII names).
pub(super) fn key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Writes `,"key":"value"` with the value escaped by serde_json.
pub(super) fn kv(out: &mut Vec<u8>, k: &str, value: &str) {
    key(out, k);
    serde_json::to_writer(&mut *out, value).expect("serializing a str into a Vec cannot fail");
}

/// Writes `,"key":"value"` for a value known to need no escaping (names, addresses, hex).
pub(super) fn kv_plain(out: &mut Vec<u8>, k: &str, value: &str) {
    debug_assert!(
        !value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20),
        "{value:?} needs escaping"
    );
    key(out, k);
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
}

/// Writes `,"key":"123"` (Windows event data are strings).
pub(super) fn kv_num(out: &mut Vec<u8>, k: &str, value: u64) {
    key(out, k);
    out.push(b'"');
    push_u64(out, value);
    out.push(b'"');
}

/// Writes `,"key":"0x1a2b"`.
pub(super) fn kv_hex(out: &mut Vec<u8>, k: &str, value: u64) {
    key(out, k);
    out.push(b'"');
    push_hex_short(out, value);
    out.push(b'"');
}

/// Writes `,"key":"{guid}"`.
pub(super) fn kv_guid(out: &mut Vec<u8>, k: &str, g: &Guid) {
    key(out, k);
    out.push(b'"');
    push_guid(out, g);
    out.push(b'"');
}

/// SplitMix64 step, used to expand a seed into fake hash digits.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a hash of a string (stable across runs and platforms).
pub(super) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes `,"Hashes":"SHA256=…,IMPHASH=…"` with digits derived from `seed`.
pub(super) fn kv_hashes(out: &mut Vec<u8>, seed: u64) {
    key(out, "Hashes");
    out.extend_from_slice(b"\"SHA256=");
    let mut state = seed;
    for _ in 0..4 {
        push_hex(out, splitmix(&mut state), 16, true);
    }
    out.extend_from_slice(b",IMPHASH=");
    for _ in 0..2 {
        push_hex(out, splitmix(&mut state), 16, true);
    }
    out.push(b'"');
}

//! MDM exports (JSON array of objects, or CSV with a header) as a second posture source.
//!
//! Column names are compared after lowercasing and dropping everything but letters and
//! digits, so `Last Check-in`, `last_check_in` and `lastCheckIn` are one name. Known names:
//!
//! | field | names |
//! |---|---|
//! | device id | `tenet device id`, `device id`, `id`, `udid` |
//! | device name | `device name`, `name`, `computer name`, `hostname`, `display name` |
//! | serial | `serial number`, `serial`, `hardware serial`, `serial no` |
//! | OS | `os`, `operating system`, `os name`, `platform` |
//! | OS version | `os version`, `operating system version`, `version`, `product version` |
//! | encrypted | `encrypted`, `is encrypted`, `encryption`, `encryption status`, `encryption state`, `disk encryption`, `filevault`, `filevault status`, `filevault 2 status`, `bitlocker`, `bitlocker status`, `storage encrypted` |
//! | firewall | `firewall`, `firewall enabled`, `firewall status`, `firewall state` |
//! | screen lock | `screen lock`, `screen lock enabled`, `passcode present`, `passcode` |
//! | endpoint protection | `endpoint protection`, `antivirus`, `antivirus status`, `edr`, `malware protection` |
//! | compliance state | `compliance`, `compliance state`, `compliance status`, `compliant`, `is compliant` |
//! | last check-in | `last check-in`, `last check-in time`, `last sync`, `last sync date time`, `last seen`, `last contact`, `last contact time`, `last inventory update`, `last reported` |
//!
//! Flags accept yes/no words (`true`, `enabled`, `encrypted`, `All Partitions Encrypted`,
//! `compliant`, `noncompliant`, `In grace period` …); `unknown`, `n/a` and empty cells are
//! unknown. Times are RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` in UTC, or Unix seconds. Unknown
//! columns are ignored. A bad row is reported with its line and the rest are still imported;
//! the file is refused only when no column is known, the match column is missing or a CSV
//! header names one field twice. A JSON object giving a known key twice or two names of one
//! field with different values is a bad row, and so are rows giving one device different
//! postures at the same check-in time.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::error::MdmError;
use crate::posture::Posture;
use crate::registry::DeviceRegistry;

/// How far in the future a check-in time may lie before its row is refused.
const CHECK_IN_SKEW: Duration = Duration::from_secs(300);

/// How export rows are matched to enrolled devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MdmMatch {
    /// By the Tenet device id in a device id column.
    #[default]
    DeviceId,
    /// By hardware serial number, as given at enrolment.
    Serial,
    /// By device name, as given at enrolment.
    Name,
}

impl MdmMatch {
    fn field(self) -> Field {
        match self {
            Self::DeviceId => Field::DeviceId,
            Self::Serial => Field::Serial,
            Self::Name => Field::Name,
        }
    }
}

/// A row's line and its device and posture, or why it is bad.
type RowOutcome = (u64, Result<(Uuid, Posture), String>);

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// The line the row starts on (1-based).
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MdmImport {
    /// Imported rows: the device and its posture.
    pub records: Vec<(Uuid, Posture)>,
    /// Rows not imported.
    pub problems: Vec<RowProblem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    DeviceId,
    Name,
    Serial,
    Os,
    OsVersion,
    Encrypted,
    Firewall,
    ScreenLock,
    EndpointProtection,
    Compliance,
    LastCheckIn,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::DeviceId => "device id",
            Self::Name => "device name",
            Self::Serial => "serial number",
            Self::Os => "os",
            Self::OsVersion => "os version",
            Self::Encrypted => "encrypted",
            Self::Firewall => "firewall",
            Self::ScreenLock => "screen lock",
            Self::EndpointProtection => "endpoint protection",
            Self::Compliance => "compliance state",
            Self::LastCheckIn => "last check-in",
        }
    }
}

const ALIASES: &[(Field, &[&str])] = &[
    (
        Field::DeviceId,
        &["tenetdeviceid", "deviceid", "id", "udid"],
    ),
    (
        Field::Name,
        &[
            "devicename",
            "name",
            "computername",
            "hostname",
            "displayname",
        ],
    ),
    (
        Field::Serial,
        &["serialnumber", "serial", "hardwareserial", "serialno"],
    ),
    (Field::Os, &["os", "operatingsystem", "osname", "platform"]),
    (
        Field::OsVersion,
        &[
            "osversion",
            "operatingsystemversion",
            "version",
            "productversion",
        ],
    ),
    (
        Field::Encrypted,
        &[
            "encrypted",
            "isencrypted",
            "encryption",
            "encryptionstatus",
            "encryptionstate",
            "diskencryption",
            "filevault",
            "filevaultstatus",
            "filevault2status",
            "bitlocker",
            "bitlockerstatus",
            "storageencrypted",
        ],
    ),
    (
        Field::Firewall,
        &[
            "firewall",
            "firewallenabled",
            "firewallstatus",
            "firewallstate",
        ],
    ),
    (
        Field::ScreenLock,
        &[
            "screenlock",
            "screenlockenabled",
            "passcodepresent",
            "passcode",
        ],
    ),
    (
        Field::EndpointProtection,
        &[
            "endpointprotection",
            "antivirus",
            "antivirusstatus",
            "edr",
            "malwareprotection",
        ],
    ),
    (
        Field::Compliance,
        &[
            "compliance",
            "compliancestate",
            "compliancestatus",
            "compliant",
            "iscompliant",
        ],
    ),
    (
        Field::LastCheckIn,
        &[
            "lastcheckin",
            "lastcheckintime",
            "lastsync",
            "lastsyncdatetime",
            "lastseen",
            "lastcontact",
            "lastcontacttime",
            "lastinventoryupdate",
            "lastreported",
        ],
    ),
];

fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn field_of(column: &str) -> Option<Field> {
    let name = normalise(column);
    ALIASES
        .iter()
        .find(|(_, names)| names.contains(&name.as_str()))
        .map(|(field, _)| *field)
}

/// Imports an export, JSON when its first non-blank character is `[`, CSV otherwise.
/// `source_name` names the input in errors.
pub fn import_mdm(
    source_name: &str,
    bytes: &[u8],
    registry: &DeviceRegistry,
    match_by: MdmMatch,
    now: OffsetDateTime,
) -> Result<MdmImport, MdmError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let importer = Importer {
        source_name,
        registry,
        match_by,
        now,
    };
    if first == Some(&b'[') {
        importer.json(bytes)
    } else {
        importer.csv(bytes)
    }
}

struct Importer<'a> {
    source_name: &'a str,
    registry: &'a DeviceRegistry,
    match_by: MdmMatch,
    now: OffsetDateTime,
}

impl Importer<'_> {
    /// Refuses the file when no column is known or the match column is missing.
    fn check_columns<'c>(&self, columns: impl Iterator<Item = &'c str>) -> Result<(), MdmError> {
        let columns: BTreeSet<&str> = columns.collect();
        let fields: Vec<Field> = columns.iter().filter_map(|c| field_of(c)).collect();
        if fields.is_empty() {
            let found: Vec<&str> = columns.into_iter().collect();
            return Err(MdmError::NoKnownColumn {
                source_name: self.source_name.to_owned(),
                found: found.join(", "),
            });
        }
        if !fields.contains(&self.match_by.field()) {
            return Err(MdmError::NoMatchColumn {
                source_name: self.source_name.to_owned(),
                column: self.match_by.field().name(),
            });
        }
        Ok(())
    }

    fn csv(&self, bytes: &[u8]) -> Result<MdmImport, MdmError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let header = reader.headers().map_err(|e| MdmError::BadHeader {
            source_name: self.source_name.to_owned(),
            reason: e.to_string(),
        })?;
        let columns: Vec<Option<Field>> = header.iter().map(field_of).collect();
        self.check_columns(header.iter())?;
        // Two columns that give the same field (say `Device ID` twice, or `Serial Number` and
        // `serial`) would leave it to the column order which one counts.
        for (i, field) in columns.iter().enumerate() {
            let Some(field) = field else { continue };
            let twin = columns
                .iter()
                .enumerate()
                .skip(i + 1)
                .find(|(_, other)| *other == &Some(*field));
            if let Some((j, _)) = twin {
                return Err(MdmError::BadHeader {
                    source_name: self.source_name.to_owned(),
                    reason: format!(
                        "columns {:?} and {:?} both give the {} field",
                        header.get(i).unwrap_or_default(),
                        header.get(j).unwrap_or_default(),
                        field.name()
                    ),
                });
            }
        }

        let mut outcomes = Vec::new();
        for record in reader.records() {
            let line_of = |pos: Option<&csv::Position>| pos.map_or(0, csv::Position::line);
            let outcome = match &record {
                Ok(record) => {
                    let cells = columns
                        .iter()
                        .zip(record.iter())
                        .filter_map(|(field, value)| field.map(|f| (f, value.to_owned())));
                    (line_of(record.position()), self.row(cells.collect()))
                }
                Err(e) => (line_of(e.position()), Err(format!("unreadable row: {e}"))),
            };
            outcomes.push(outcome);
        }
        Ok(self.finish(outcomes))
    }

    fn json(&self, bytes: &[u8]) -> Result<MdmImport, MdmError> {
        let not_array = |reason: String| MdmError::NotJsonArray {
            source_name: self.source_name.to_owned(),
            reason,
        };
        let rows: Vec<JsonRow> =
            serde_json::from_slice(bytes).map_err(|e| not_array(e.to_string()))?;
        let keys = rows.iter().flat_map(|row| match row {
            JsonRow::Object(entries) => entries.as_slice(),
            JsonRow::Other => &[],
        });
        self.check_columns(keys.map(|(key, _)| key.as_str()))?;

        let lines = element_lines(bytes);
        let outcomes = rows
            .iter()
            .enumerate()
            .map(|(index, row)| {
                let line = lines.get(index).copied().unwrap_or(0);
                (line, json_cells(row).and_then(|cells| self.row(cells)))
            })
            .collect();
        Ok(self.finish(outcomes))
    }

    /// The import of every row's outcome, in order. Rows that give one device different
    /// postures at the same check-in time are bad rows: neither says which one holds.
    fn finish(&self, mut outcomes: Vec<RowOutcome>) -> MdmImport {
        let mut at_once: HashMap<(Uuid, OffsetDateTime), Vec<usize>> = HashMap::new();
        for (index, (_, outcome)) in outcomes.iter().enumerate() {
            if let Ok((device, posture)) = outcome {
                let key = (*device, posture.collected_at);
                at_once.entry(key).or_default().push(index);
            }
        }
        for indices in at_once.into_values().filter(|i| i.len() > 1) {
            let posture_at = |index: &usize| match outcomes.get(*index) {
                Some((_, Ok((_, posture)))) => Some(posture.clone()),
                _ => None,
            };
            let first = indices.first().and_then(posture_at);
            if indices.iter().all(|i| posture_at(i) == first) {
                continue;
            }
            let lines: Vec<String> = indices
                .iter()
                .filter_map(|i| outcomes.get(*i).map(|(line, _)| line.to_string()))
                .collect();
            for index in &indices {
                if let Some((_, outcome @ Ok(_))) = outcomes.get_mut(*index)
                    && let Ok((device, posture)) = outcome.as_ref()
                {
                    let at = posture
                        .collected_at
                        .format(&Rfc3339)
                        .unwrap_or_else(|_| posture.collected_at.to_string());
                    *outcome = Err(format!(
                        "rows on lines {} give device {device} different postures checked in \
                         at the same time ({at})",
                        lines.join(", ")
                    ));
                }
            }
        }

        let mut import = MdmImport::default();
        for (line, outcome) in outcomes {
            match outcome {
                Ok(record) => import.records.push(record),
                Err(reason) => {
                    tracing::info!(source = self.source_name, line, reason = %reason, "mdm row skipped");
                    import.problems.push(RowProblem { line, reason });
                }
            }
        }
        import
    }

    /// One row's known cells to a device and its posture.
    fn row(&self, cells: HashMap<Field, String>) -> Result<(Uuid, Posture), String> {
        let cell = |field: Field| {
            cells
                .get(&field)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let device_id = self.match_device(cell(self.match_by.field()))?;
        let check_in = cell(Field::LastCheckIn).ok_or("no last check-in time")?;
        let collected_at = parse_time(check_in)
            .ok_or_else(|| format!("last check-in {check_in:?} is not a recognised time"))?;
        if collected_at - self.now > CHECK_IN_SKEW {
            return Err(format!("last check-in {check_in:?} is in the future"));
        }
        let flag = |field: Field| match cell(field) {
            None => Ok(None),
            Some(v) => parse_flag(v).map_err(|()| {
                format!(
                    "{} value {v:?} is not a recognised yes/no/unknown",
                    field.name()
                )
            }),
        };
        let mut posture = Posture::unknown(collected_at);
        posture.os = cell(Field::Os).map(str::to_owned);
        posture.os_version = cell(Field::OsVersion).map(str::to_owned);
        posture.disk_encrypted = flag(Field::Encrypted)?;
        posture.firewall = flag(Field::Firewall)?;
        posture.screen_lock = flag(Field::ScreenLock)?;
        posture.endpoint_protection = flag(Field::EndpointProtection)?;
        posture.mdm_compliant = flag(Field::Compliance)?;
        Ok((device_id, posture))
    }

    fn match_device(&self, key: Option<&str>) -> Result<Uuid, String> {
        let column = self.match_by.field().name();
        let key = key.ok_or_else(|| format!("no {column}"))?;
        let found: Vec<_> = match self.match_by {
            MdmMatch::DeviceId => Uuid::try_parse(key)
                .ok()
                .and_then(|id| self.registry.device(id))
                .filter(|d| !d.is_revoked())
                .into_iter()
                .collect(),
            MdmMatch::Serial => self.registry.all_by_serial(key),
            MdmMatch::Name => self.registry.all_by_name(key),
        };
        // A serial or name is what a device claimed at enrolment: when several enrolled
        // devices claim it, the row cannot say which one the MDM manages.
        match found.as_slice() {
            [] => Err(format!("{column} {key:?} matches no enrolled device")),
            [device] => Ok(device.id),
            several => Err(format!(
                "{column} {key:?} matches {} enrolled devices ({}); match by device id instead",
                several.len(),
                several
                    .iter()
                    .map(|d| d.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// One element of a JSON export: an object's entries in their order, a key given twice kept
/// twice (serde_json's map keeps only the last of them), or any other value.
enum JsonRow {
    Object(Vec<(String, serde_json::Value)>),
    Other,
}

impl<'de> serde::Deserialize<'de> for JsonRow {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(JsonRowVisitor)
    }
}

struct JsonRowVisitor;

impl<'de> serde::de::Visitor<'de> for JsonRowVisitor {
    type Value = JsonRow;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonRow, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
            entries.push(entry);
        }
        Ok(JsonRow::Object(entries))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonRow, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(JsonRow::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<JsonRow, E> {
        Ok(JsonRow::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<JsonRow, E> {
        Ok(JsonRow::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<JsonRow, E> {
        Ok(JsonRow::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<JsonRow, E> {
        Ok(JsonRow::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<JsonRow, E> {
        Ok(JsonRow::Other)
    }

    fn visit_unit<E>(self) -> Result<JsonRow, E> {
        Ok(JsonRow::Other)
    }
}

/// The known cells of one JSON row, scalars as text. A known key given twice, or two names
/// of one field with different values, make the row bad: another reader of the export may
/// take the other value.
fn json_cells(row: &JsonRow) -> Result<HashMap<Field, String>, String> {
    let JsonRow::Object(entries) = row else {
        return Err("row is not a json object".to_owned());
    };
    let mut cells: HashMap<Field, (&str, String)> = HashMap::new();
    let mut keys = HashSet::new();
    for (key, value) in entries {
        let Some(field) = field_of(key) else { continue };
        let text = match value {
            serde_json::Value::String(s) => s.trim().to_owned(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Null => String::new(),
            _ => return Err(format!("column {key:?} holds a nested value")),
        };
        if !keys.insert(key) {
            return Err(format!("the object gives the key {key:?} more than once"));
        }
        match cells.get(&field) {
            None => {
                cells.insert(field, (key, text));
            }
            Some((first, first_text)) if *first_text != text => {
                return Err(format!(
                    "keys {first:?} ({first_text:?}) and {key:?} ({text:?}) both give the {} \
                     field, with different values",
                    field.name()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(cells
        .into_iter()
        .map(|(field, (_, text))| (field, text))
        .collect())
}

/// The 1-based line on which each element of a top-level JSON array starts.
fn element_lines(bytes: &[u8]) -> Vec<u64> {
    let (mut lines, mut line, mut depth) = (Vec::new(), 1u64, 0usize);
    let (mut in_string, mut escaped, mut expect_value) = (false, false, false);
    for &b in bytes {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        if depth == 1 && expect_value && !matches!(b, b',' | b']') {
            lines.push(line);
            expect_value = false;
        }
        match b {
            b'[' | b'{' => {
                depth += 1;
                expect_value = depth == 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' => expect_value = depth == 1,
            b'"' => in_string = true,
            _ => {}
        }
    }
    lines
}

/// A yes/no/unknown cell; `Err` for anything else.
fn parse_flag(value: &str) -> Result<Option<bool>, ()> {
    const YES: &[&str] = &[
        "true",
        "yes",
        "y",
        "1",
        "on",
        "enabled",
        "enable",
        "active",
        "encrypted",
        "allpartitionsencrypted",
        "bootpartitionsencrypted",
        "fullyencrypted",
        "protected",
        "compliant",
        "running",
        "installed",
        "present",
        "pass",
        "passed",
    ];
    const NO: &[&str] = &[
        "false",
        "no",
        "n",
        "0",
        "off",
        "disabled",
        "disable",
        "inactive",
        "notencrypted",
        "unencrypted",
        "decrypted",
        "fullydecrypted",
        "noncompliant",
        "notcompliant",
        "notprotected",
        "unprotected",
        "encrypting",
        "decrypting",
        "partiallyencrypted",
        "notinstalled",
        "notrunning",
        "absent",
        "fail",
        "failed",
        "ingraceperiod",
        "error",
        "conflict",
    ];
    const UNKNOWN: &[&str] = &[
        "",
        "unknown",
        "na",
        "none",
        "null",
        "notevaluated",
        "notapplicable",
        "unavailable",
    ];
    let word = normalise(value);
    if YES.contains(&word.as_str()) {
        Ok(Some(true))
    } else if NO.contains(&word.as_str()) {
        Ok(Some(false))
    } else if UNKNOWN.contains(&word.as_str()) {
        Ok(None)
    } else {
        Err(())
    }
}

/// RFC 3339, `YYYY-MM-DD[T ]HH:MM:SS[.fff][Z| UTC]` taken as UTC, or Unix seconds.
fn parse_time(value: &str) -> Option<OffsetDateTime> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return OffsetDateTime::from_unix_timestamp(value.parse().ok()?).ok();
    }
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(t);
    }
    let bare = value
        .strip_suffix(" UTC")
        .or_else(|| value.strip_suffix('Z'))
        .unwrap_or(value)
        .replacen('T', " ", 1);
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(&bare, format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_lines_follow_objects_and_skip_strings() {
        let text = b"[\n {\"a\": \"x,]\\\"{\"},\n\n {\"b\": [1,2]}, 3\n]";
        assert_eq!(element_lines(text), vec![2, 4, 4]);
        assert_eq!(element_lines(b"[]"), Vec::<u64>::new());
    }

    #[test]
    fn flags_and_times() {
        assert_eq!(parse_flag("All Partitions Encrypted"), Ok(Some(true)));
        assert_eq!(parse_flag("Not Encrypted"), Ok(Some(false)));
        assert_eq!(parse_flag("In grace period"), Ok(Some(false)));
        assert_eq!(parse_flag("N/A"), Ok(None));
        assert_eq!(parse_flag("maybe"), Err(()));
        let t = parse_time("2025-03-01 10:20:30.1234567").unwrap();
        assert_eq!(t.unix_timestamp(), 1_740_824_430);
        assert_eq!(
            parse_time("2025-03-01T10:20:30Z"),
            Some(t.replace_nanosecond(0).unwrap())
        );
        assert_eq!(
            parse_time("1740824430").map(|t| t.unix_timestamp()),
            Some(1_740_824_430)
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn column_aliases() {
        assert_eq!(field_of("Last Check-in"), Some(Field::LastCheckIn));
        assert_eq!(field_of("FileVault 2 Status"), Some(Field::Encrypted));
        assert_eq!(field_of("serial_number"), Some(Field::Serial));
        assert_eq!(field_of("colour"), None);
    }
}

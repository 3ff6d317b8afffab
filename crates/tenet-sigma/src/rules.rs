//! Loading Sigma rule files: parsing with rsigma, Tenet's own checks, and per-rule problems.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsigma_eval::{CorrelationConfig, CorrelationEngine, Engine as RsigmaEngine, compile_rule};
use rsigma_parser::{
    ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType, Detection,
    DetectionItem, FilterRule, Modifier, SigmaCollection, SigmaRule, SigmaString, SigmaValue,
    parse_sigma_yaml,
};
use serde::Serialize;

/// A rule (or a whole file) that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LoadProblem {
    /// The file as it was found (or the name given to [`RuleSet::from_yaml`]).
    pub file: String,
    /// The rule's `id` (or `name`), when the document has one.
    pub rule_id: Option<String>,
    /// The rule's title, when the document has one.
    pub title: Option<String>,
    /// The construct Tenet does not support or could not read, as a short class such as
    /// `modifier |foo`, `null in a value list`, `aggregation in condition`, `yaml`.
    pub construct: String,
    /// The full reason.
    pub reason: String,
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(id) = &self.rule_id {
            write!(f, " rule {id}")?;
        }
        write!(f, ": {} ({})", self.construct, self.reason)
    }
}

/// Compiled-ready Sigma rules (detections, correlations, filters) and the problems met loading
/// them. Every document either loads or has a [`LoadProblem`]; nothing is skipped silently.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub(crate) collection: SigmaCollection,
    problems: Vec<LoadProblem>,
    /// Correlations and filters with their files, until the whole set is known.
    pending_correlations: Vec<(String, CorrelationRule)>,
    pending_filters: Vec<(String, FilterRule)>,
}

impl RuleSet {
    /// Loads every `.yml` / `.yaml` file under `path`, recursively, in name order. A file or
    /// folder that cannot be read is a problem of its own.
    pub fn load_dir(path: &Path) -> RuleSet {
        RuleSet::load_paths(&[path.to_owned()])
    }

    /// Loads several folders or files as one set, so that a correlation may refer to a rule
    /// in another folder.
    pub fn load_paths(paths: &[PathBuf]) -> RuleSet {
        let mut set = RuleSet::default();
        let mut files = Vec::new();
        for path in paths {
            collect_files(path, &mut files, &mut set.problems);
        }
        files.sort();
        for file in files {
            let name = file.display().to_string();
            match std::fs::read_to_string(&file) {
                Ok(text) => set.add_file(&name, &text),
                Err(e) => set
                    .problems
                    .push(problem(&name, None, None, "unreadable", e)),
            }
        }
        set.finish();
        set
    }

    /// Loads one file's text (possibly several YAML documents). `name` names it in problems.
    pub fn from_yaml(name: &str, text: &str) -> RuleSet {
        let mut set = RuleSet::default();
        set.add_file(name, text);
        set.finish();
        set
    }

    /// The documents that were not loaded.
    pub fn problems(&self) -> &[LoadProblem] {
        &self.problems
    }

    /// Number of loaded rules: detections plus correlations.
    pub fn len(&self) -> usize {
        self.collection.rules.len() + self.collection.correlations.len()
    }

    /// Whether no rule was loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The loaded detection rules.
    pub fn rules(&self) -> &[SigmaRule] {
        &self.collection.rules
    }

    /// The loaded correlation rules.
    pub fn correlations(&self) -> &[CorrelationRule] {
        &self.collection.correlations
    }

    fn add_file(&mut self, file: &str, text: &str) {
        let docs = match split_documents(text) {
            Ok(docs) => docs,
            Err(e) => {
                self.problems.push(problem(file, None, None, "yaml", e));
                return;
            }
        };
        // Sigma v1 collection actions (`action: global/repeat`) combine documents, so such a
        // file is parsed as a whole; SigmaHQ's current rules do not use them.
        let whole_file = docs
            .iter()
            .any(|d| d.get("action").is_some_and(|a| !a.is_null()));
        if whole_file {
            self.add_parsed(file, None, None, text, &docs);
            return;
        }
        for doc in &docs {
            let id = doc_text(doc, "id").or_else(|| doc_text(doc, "name"));
            let title = doc_text(doc, "title");
            match yaml_serde::to_string(doc) {
                Ok(one) => self.add_parsed(file, id, title, &one, std::slice::from_ref(doc)),
                Err(e) => self.problems.push(problem(file, id, title, "yaml", e)),
            }
        }
    }

    /// `docs` are the YAML documents `text` was made of, for what the parser does not keep.
    fn add_parsed(
        &mut self,
        file: &str,
        id: Option<String>,
        title: Option<String>,
        text: &str,
        docs: &[yaml_serde::Value],
    ) {
        let parsed = match parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                let construct = classify(&e.to_string(), text);
                self.problems.push(problem(file, id, title, &construct, e));
                return;
            }
        };
        if parsed.is_empty() {
            let reason = if parsed.errors.is_empty() {
                "not a Sigma rule, correlation or filter".to_owned()
            } else {
                parsed.errors.join("; ")
            };
            let construct = classify(&reason, text);
            self.problems
                .push(problem(file, id, title, &construct, reason));
            return;
        }
        // rsigma keeps a rule with an unknown level, without the level; a playbook matching
        // on level would then never see it.
        if let Some(bad) = parsed
            .errors
            .iter()
            .find(|e| e.starts_with("invalid level"))
        {
            self.problems.push(problem(
                file,
                id,
                title,
                "level",
                format!("{bad}: expected informational, low, medium, high or critical"),
            ));
            return;
        }
        for mut rule in parsed.rules {
            let rid = rule.id.clone().or_else(|| rule.name.clone());
            match check_rule(&mut rule) {
                Ok(()) => self.collection.rules.push(rule),
                Err((construct, reason)) => {
                    let t = Some(rule.title.clone());
                    self.problems
                        .push(problem(file, rid, t, &construct, reason));
                }
            }
        }
        for mut corr in parsed.correlations {
            temporal_needs_every_rule(&mut corr, docs);
            if let Some(key) = engine_attribute(corr.custom_attributes.keys()) {
                let rid = corr.id.clone().or_else(|| corr.name.clone());
                self.problems.push(problem(
                    file,
                    rid,
                    Some(corr.title.clone()),
                    "engine attribute",
                    format!("attribute {key:?} would change engine-wide behaviour"),
                ));
                continue;
            }
            self.pending_correlations.push((file.to_owned(), corr));
        }
        for filter in parsed.filters {
            self.pending_filters.push((file.to_owned(), filter));
        }
    }

    /// Checks what only the whole set can tell: filters and correlations whose rules exist.
    fn finish(&mut self) {
        let mut trial = RsigmaEngine::new();
        let _ = trial.add_rules(self.collection.rules.iter());

        for (file, filter) in std::mem::take(&mut self.pending_filters) {
            match trial.apply_filter(&filter) {
                Ok(()) => self.collection.filters.push(filter),
                Err(e) => self.problems.push(filter_problem(&file, &filter, e)),
            }
        }

        let mut known: HashSet<String> = HashSet::new();
        for rule in &self.collection.rules {
            known.extend(rule.id.iter().cloned());
            known.extend(rule.name.iter().cloned());
        }
        for (_, corr) in &self.pending_correlations {
            known.extend(corr.id.iter().cloned());
            known.extend(corr.name.iter().cloned());
        }
        for (file, corr) in std::mem::take(&mut self.pending_correlations) {
            let rid = corr.id.clone().or_else(|| corr.name.clone());
            if let Some(missing) = corr.rules.iter().find(|r| !known.contains(*r)) {
                self.problems.push(problem(
                    &file,
                    rid,
                    Some(corr.title.clone()),
                    "correlation reference",
                    format!("correlation refers to rule {missing:?}, which is not loaded"),
                ));
                continue;
            }
            let mut one = CorrelationEngine::new(CorrelationConfig::default());
            match one.add_correlation(&corr) {
                Ok(()) => self.collection.correlations.push(corr),
                Err(e) => self.problems.push(problem(
                    &file,
                    rid,
                    Some(corr.title.clone()),
                    "correlation",
                    e,
                )),
            }
        }
    }
}

fn filter_problem(file: &str, filter: &FilterRule, e: impl fmt::Display) -> LoadProblem {
    let rid = filter.id.clone().or_else(|| filter.name.clone());
    problem(file, rid, Some(filter.title.clone()), "filter", e)
}

fn problem(
    file: &str,
    rule_id: Option<String>,
    title: Option<String>,
    construct: &str,
    reason: impl fmt::Display,
) -> LoadProblem {
    LoadProblem {
        file: file.to_owned(),
        rule_id,
        title,
        construct: construct.to_owned(),
        reason: tidy(&reason.to_string()),
    }
}

/// rsigma wraps a condition error once per level of nesting ("Condition parse error at 1:66:
/// at 1:66: Condition parse error at 1:66: ..."): said once, with the innermost message.
fn tidy(reason: &str) -> String {
    const WRAPPER: &str = "Condition parse error";
    if reason.matches(WRAPPER).count() < 2 {
        return reason.to_owned();
    }
    let position = reason
        .split(WRAPPER)
        .nth(1)
        .and_then(|rest| rest.trim_start().strip_prefix("at "))
        .and_then(|rest| {
            rest.split(':')
                .take(2)
                .collect::<Vec<_>>()
                .get(..2)
                .map(|p| p.join(":"))
        });
    let inner = reason
        .rsplit(WRAPPER)
        .next()
        .unwrap_or(reason)
        .trim_start_matches(|c: char| c == ':' || c.is_whitespace());
    // What is left may still start with positions ("at 1:66: at 1:66: message").
    let mut inner = inner;
    while let Some(rest) = inner.strip_prefix("at ") {
        match rest.split_once(": ") {
            Some((_, after)) => inner = after,
            None => break,
        }
    }
    match position {
        Some(at) => format!("{WRAPPER} at {at}: {inner}"),
        None => format!("{WRAPPER}: {inner}"),
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>, problems: &mut Vec<LoadProblem>) {
    let name = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return problems.push(problem(&name, None, None, "unreadable", e)),
    };
    if meta.is_file() {
        out.push(path.to_owned());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => return problems.push(problem(&name, None, None, "unreadable", e)),
    };
    for entry in entries {
        match entry {
            Ok(entry) => {
                let p = entry.path();
                if p.is_dir() {
                    collect_files(&p, out, problems);
                } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                    out.push(p);
                }
            }
            Err(e) => problems.push(problem(&name, None, None, "unreadable", e)),
        }
    }
}

/// A `temporal` correlation without a `condition` fires when every rule it names has matched
/// within the timespan (Sigma specification). rsigma 0.23 reads the missing condition as "at
/// least one rule", which would fire on any single one of them, so the threshold is set to the
/// number of rules here. A written condition (a threshold or an expression) is kept.
fn temporal_needs_every_rule(corr: &mut CorrelationRule, docs: &[yaml_serde::Value]) {
    if corr.correlation_type != CorrelationType::Temporal {
        return;
    }
    let doc = match docs {
        [one] => Some(one),
        _ => docs.iter().find(|d| {
            doc_text(d, "title").as_deref() == Some(corr.title.as_str())
                && doc_text(d, "id") == corr.id
        }),
    };
    let Some(doc) = doc else {
        return;
    };
    let written = doc
        .get("correlation")
        .and_then(|c| c.get("condition"))
        .is_some_and(|c| !c.is_null());
    if !written {
        corr.condition = CorrelationCondition::Threshold {
            predicates: vec![(
                ConditionOperator::Gte,
                u64::try_from(corr.rules.len()).unwrap_or(u64::MAX),
            )],
            field: None,
            percentile: None,
        };
    }
}

/// The YAML documents of a file. A syntax error fails the whole file: the stream after it has
/// no reliable document boundaries.
fn split_documents(text: &str) -> Result<Vec<yaml_serde::Value>, yaml_serde::Error> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value = yaml_serde::Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn doc_text(doc: &yaml_serde::Value, key: &str) -> Option<String> {
    doc.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

/// A short class for a parser or compiler message, for grouping problems.
fn classify(message: &str, text: &str) -> String {
    if let Some(rest) = message.split("Unknown modifier '").nth(1) {
        let name = rest.split('\'').next().unwrap_or(rest);
        return format!("modifier |{name}");
    }
    if message.contains("condition nesting exceeds maximum depth") {
        return "condition nesting".to_owned();
    }
    if message.contains("Condition parse error") {
        return if text.contains("count(") || text.contains(" | ") {
            "aggregation in condition (Sigma v1 `| count()`)".to_owned()
        } else {
            "condition syntax".to_owned()
        };
    }
    if message.contains("unknown detection identifier") {
        return "condition names a missing detection".to_owned();
    }
    if message.contains("modifier") {
        return "modifier combination".to_owned();
    }
    if message.contains("YAML") {
        return "yaml".to_owned();
    }
    message.chars().take(60).collect()
}

/// Tenet's checks on one rule, where the Sigma specification is stricter than rsigma, and the
/// repair of `|base64offset`. `Err((construct, reason))` rejects the rule.
fn check_rule(rule: &mut SigmaRule) -> Result<(), (String, String)> {
    if let Some(key) = engine_attribute(rule.custom_attributes.keys()) {
        return Err((
            "engine attribute".to_owned(),
            format!("attribute {key:?} would change engine-wide behaviour"),
        ));
    }
    for (name, detection) in &mut rule.detection.named {
        check_detection(name, detection)?;
    }
    compile_rule(rule).map_err(|e| (classify(&e.to_string(), ""), e.to_string()))?;
    Ok(())
}

/// rsigma honours `rsigma.*` attributes of any rule engine-wide (suppression, post-fire
/// action); a rule file must not be able to change how every other rule alerts.
fn engine_attribute<'k>(mut keys: impl Iterator<Item = &'k String>) -> Option<&'k String> {
    keys.find(|k| k.starts_with("rsigma."))
}

fn check_detection(name: &str, detection: &mut Detection) -> Result<(), (String, String)> {
    match detection {
        Detection::AllOf(items) => {
            let mut rewritten = Vec::with_capacity(items.len());
            for item in items.drain(..) {
                check_item(name, &item)?;
                rewritten.extend(repair_base64offset(item));
            }
            *items = rewritten;
            Ok(())
        }
        Detection::AnyOf(subs) | Detection::And(subs) => {
            subs.iter_mut().try_for_each(|d| check_detection(name, d))
        }
        Detection::ArrayMatch { body, .. } => check_detection(name, body),
        Detection::Conditional { named, .. } => named
            .values_mut()
            .try_for_each(|d| check_detection(name, d)),
        Detection::Keywords(values) => {
            if values.len() > 1 && values.iter().any(|v| matches!(v, SigmaValue::Null)) {
                return Err(null_in_list(name));
            }
            Ok(())
        }
    }
}

fn null_in_list(name: &str) -> (String, String) {
    (
        "null in a value list".to_owned(),
        format!(
            "detection {name:?}: null cannot sit in a value list (Sigma specification); \
             write a separate `field: null` selection"
        ),
    )
}

fn check_item(name: &str, item: &DetectionItem) -> Result<(), (String, String)> {
    // rsigma reads any other value (`maybe`, `yes`) as true.
    if item.field.modifiers.contains(&Modifier::Exists)
        && !matches!(item.values.as_slice(), [SigmaValue::Bool(_)])
    {
        let given = match item.values.as_slice() {
            [SigmaValue::String(s)] => s
                .as_plain()
                .map_or_else(|| "a pattern".to_owned(), |p| format!("{p:?}")),
            [one] => format!("{one:?}"),
            many => format!("{} values", many.len()),
        };
        return Err((
            "modifier |exists".to_owned(),
            format!(
                "detection {name:?}: {}|exists takes true or false, not {given}",
                item.field.name.as_deref().unwrap_or("")
            ),
        ));
    }
    if item.values.len() > 1 && item.values.iter().any(|v| matches!(v, SigmaValue::Null)) {
        return Err(null_in_list(name));
    }
    if item.field.modifiers.contains(&Modifier::Expand) {
        return Err((
            "modifier |expand".to_owned(),
            format!(
                "detection {name:?}: placeholders need values from a processing pipeline, \
                 and Tenet has none to give"
            ),
        ));
    }
    Ok(())
}

/// Replaces `F|base64offset|contains: v` with `F|contains|cased: [the three offsets]`, computed
/// as the Sigma reference implementation does. rsigma 0.23 keeps the last base64 character
/// even when it depends on the bytes that follow the value, so its patterns miss whenever the
/// value's length plus the offset is not a multiple of three.
fn repair_base64offset(item: DetectionItem) -> Vec<DetectionItem> {
    let mods = &item.field.modifiers;
    let repairable = mods.contains(&Modifier::Base64Offset)
        && mods.iter().all(|m| {
            matches!(
                m,
                Modifier::Base64Offset
                    | Modifier::Contains
                    | Modifier::All
                    | Modifier::Wide
                    | Modifier::Utf16be
                    | Modifier::Utf16
            )
        });
    let plain: Option<Vec<String>> = item
        .values
        .iter()
        .map(|v| match v {
            SigmaValue::String(s) => s.as_plain(),
            _ => None,
        })
        .collect();
    let (true, Some(plain)) = (repairable, plain) else {
        return vec![item];
    };

    let encoded: Vec<Vec<SigmaValue>> = plain
        .iter()
        .map(|text| {
            base64_offsets(&encode_text(text, mods))
                .into_iter()
                .map(|p| SigmaValue::String(SigmaString::from_raw(&p)))
                .collect()
        })
        .collect();
    let field = rsigma_parser::FieldSpec::new(
        item.field.name.clone(),
        vec![Modifier::Contains, Modifier::Cased],
    );
    if mods.contains(&Modifier::All) {
        // Every value must appear: one AND-linked item per value, each any of its offsets.
        encoded
            .into_iter()
            .map(|values| DetectionItem {
                field: field.clone(),
                values,
            })
            .collect()
    } else {
        vec![DetectionItem {
            field,
            values: encoded.into_iter().flatten().collect(),
        }]
    }
}

/// The bytes a value stands for after the text-encoding modifiers.
fn encode_text(text: &str, mods: &[Modifier]) -> Vec<u8> {
    if mods.contains(&Modifier::Wide) {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    } else if mods.contains(&Modifier::Utf16be) {
        text.encode_utf16().flat_map(u16::to_be_bytes).collect()
    } else if mods.contains(&Modifier::Utf16) {
        let mut out = vec![0xFF, 0xFE];
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out
    } else {
        text.as_bytes().to_vec()
    }
}

/// The three base64 renderings of `value` at byte offsets 0, 1 and 2 of a longer text, with
/// every character that depends on the surrounding bytes removed.
pub(crate) fn base64_offsets(value: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END_TRIM: [usize; 3] = [0, 3, 2];
    let mut out = Vec::with_capacity(3);
    for (offset, start) in START.iter().enumerate() {
        let mut padded = vec![b' '; offset];
        padded.extend_from_slice(value);
        let encoded = STANDARD.encode(&padded);
        let trim = END_TRIM
            .get((value.len() + offset) % 3)
            .copied()
            .unwrap_or(0);
        let end = encoded.len().saturating_sub(trim);
        if let Some(pattern) = encoded.get(*start..end)
            && !pattern.is_empty()
        {
            out.push(pattern.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_offsets_match_the_reference_implementation() {
        // pySigma: base64offset('http') -> aHR0c, h0dH, odHRw
        assert_eq!(base64_offsets(b"http"), vec!["aHR0c", "h0dH", "odHRw"]);
        // Each pattern occurs in the encoding of a text containing the value at that offset.
        for prefix in ["", "a", "ab", "abc"] {
            let text = format!("{prefix}http://example/");
            let enc = STANDARD.encode(text.as_bytes());
            assert!(
                base64_offsets(b"http")
                    .iter()
                    .any(|p| enc.contains(p.as_str())),
                "{text} -> {enc}"
            );
        }
    }

    #[test]
    fn a_bad_document_is_reported_and_the_others_load() {
        let text = "title: good\nid: g1\nlogsource: {product: x}\n\
                    detection: {sel: {F: a}, condition: sel}\n---\n\
                    title: bad\nid: b1\nlogsource: {product: x}\n\
                    detection: {sel: {F|nosuch: a}, condition: sel}\n";
        let set = RuleSet::from_yaml("two.yml", text);
        assert_eq!(set.len(), 1);
        assert_eq!(set.problems().len(), 1);
        let p = &set.problems()[0];
        assert_eq!(p.rule_id.as_deref(), Some("b1"));
        assert_eq!(p.construct, "modifier |nosuch");
    }

    #[test]
    fn exists_takes_only_true_or_false() {
        let rule = |v: &str| {
            format!(
                "title: t\nid: e1\nlogsource: {{product: x}}\n\
                 detection: {{sel: {{F|exists: {v}}}, condition: sel}}\n"
            )
        };
        for good in ["true", "false"] {
            let set = RuleSet::from_yaml("e.yml", &rule(good));
            assert!(set.problems().is_empty(), "{good}: {:?}", set.problems());
        }
        for (bad, says) in [
            ("maybe", "F|exists takes true or false, not \"maybe\""),
            ("'true'", "not \"true\""),
            ("yes", "not \"yes\""),
            ("1", "not Integer(1)"),
            ("[true, false]", "not 2 values"),
        ] {
            let set = RuleSet::from_yaml("e.yml", &rule(bad));
            assert!(set.is_empty(), "{bad}");
            let p = &set.problems()[0];
            assert_eq!(p.construct, "modifier |exists");
            assert_eq!(p.rule_id.as_deref(), Some("e1"));
            assert!(p.reason.contains(says), "{bad}: {}", p.reason);
        }
    }

    #[test]
    fn an_unknown_level_is_reported_per_rule() {
        let text = "title: a\nid: l1\nlogsource: {product: x}\n\
                    detection: {sel: {F: a}, condition: sel}\nlevel: catastrophic\n---\n\
                    title: b\nid: l2\nlogsource: {product: x}\n\
                    detection: {sel: {F: a}, condition: sel}\nlevel: high\n---\n\
                    title: c\nid: c1\ncorrelation: {type: event_count, rules: [l2], \
                    group-by: [U], timespan: 1m, condition: {gte: 2}}\nlevel: severe\n";
        let set = RuleSet::from_yaml("l.yml", text);
        assert_eq!(set.len(), 1);
        let problems: Vec<(Option<&str>, &str, &str)> = set
            .problems()
            .iter()
            .map(|p| {
                (
                    p.rule_id.as_deref(),
                    p.construct.as_str(),
                    p.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            problems,
            vec![
                (
                    Some("l1"),
                    "level",
                    "invalid level: 'catastrophic': expected informational, low, medium, high or critical"
                ),
                (
                    Some("c1"),
                    "level",
                    "invalid level: 'severe': expected informational, low, medium, high or critical"
                ),
            ]
        );
    }

    #[test]
    fn a_deep_condition_is_said_once() {
        let deep = format!("{}sel{}", "(".repeat(200), ")".repeat(200));
        let text = format!(
            "title: d\nid: d1\nlogsource: {{product: x}}\n\
             detection:\n  sel: {{F: a}}\n  condition: '{deep}'\n"
        );
        let set = RuleSet::from_yaml("d.yml", &text);
        let p = &set.problems()[0];
        assert_eq!(
            p.reason,
            "Condition parse error at 1:66: condition nesting exceeds maximum depth (64)"
        );
        assert_eq!(
            p.to_string().matches("Condition parse error").count(),
            1,
            "{p}"
        );
    }

    #[test]
    fn malformed_yaml_is_a_problem_not_a_panic() {
        let set = RuleSet::from_yaml("bad.yml", "title: [unclosed\n  - : :");
        assert!(set.is_empty());
        assert_eq!(set.problems()[0].construct, "yaml");
    }

    #[test]
    fn engine_attributes_are_refused() {
        let text = "title: t\nid: a\nlogsource: {product: x}\nrsigma.suppress: 1h\n\
                    detection: {sel: {F: a}, condition: sel}\n";
        let set = RuleSet::from_yaml("t.yml", text);
        assert!(set.is_empty(), "{:?}", set.problems());
    }

    #[test]
    fn correlation_to_a_missing_rule_is_reported() {
        let text = "title: c\nid: c1\ncorrelation: {type: event_count, rules: [nope], \
                    group-by: [U], timespan: 1m, condition: {gte: 2}}\n";
        let set = RuleSet::from_yaml("c.yml", text);
        assert!(set.is_empty());
        assert_eq!(set.problems()[0].construct, "correlation reference");
    }
    #[test]
    fn temporal_without_a_condition_needs_every_rule() {
        let base = "title: a\nid: ra\nname: a\nlogsource: {product: x}\n\
                    detection: {sel: {E: a}, condition: sel}\n---\n\
                    title: b\nid: rb\nname: b\nlogsource: {product: x}\n\
                    detection: {sel: {E: b}, condition: sel}\n---\n";
        let implicit = "title: t\nid: t1\ncorrelation: {type: temporal, rules: [a, b], \
                        group-by: [U], timespan: 1m}\n";
        let written = "title: w\nid: w1\ncorrelation: {type: temporal, rules: [a, b], \
                       group-by: [U], timespan: 1m, condition: {gte: 1}}\n";
        let set = RuleSet::from_yaml("t.yml", &format!("{base}{implicit}---\n{written}"));
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let mut engine = crate::Engine::new(set);
        let fired = |engine: &mut crate::Engine, e: &str, ms: i64| -> Vec<String> {
            let event = serde_json::json!({"E": e, "U": "u"});
            let mut ids: Vec<String> = engine
                .observe(&event, crate::Source::Unknown, ms)
                .into_iter()
                .map(|m| m.rule_id)
                .filter(|id| id == "t1" || id == "w1")
                .collect();
            ids.sort();
            ids
        };
        // One of the two rules: only the correlation that asks for one of them fires.
        assert_eq!(fired(&mut engine, "a", 1_000), ["w1"]);
        // Both within the timespan: the implicit one fires too.
        assert_eq!(fired(&mut engine, "b", 2_000), ["t1", "w1"]);
    }
}

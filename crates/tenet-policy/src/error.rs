//! Errors of loading, validating and evaluating policy sets.

use std::fmt;
use std::path::PathBuf;

/// Why a policy set (or, on the generic path, a schema, entity set or request) was rejected.
///
/// Every variant names the input at fault. A rejected set is never installed: the engine keeps
/// the last good one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy directory could not be listed.
    #[error("cannot read policy directory {}: {source}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A policy or schema file could not be read (or is not UTF-8).
    #[error("cannot read policy file {}: {source}", file.display())]
    ReadFile {
        /// The file.
        file: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An entry of the policy directory that looks like a policy file but cannot be one (a
    /// name that is not UTF-8, a dangling link, a directory, a device, an oversized file).
    /// Skipping it could silently drop a forbid, so the whole set is refused.
    #[error("policy directory entry {}: {reason}", path.display())]
    UnusableEntry {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two sources were given the same name.
    #[error("policy source name \"{name}\" is given twice")]
    DuplicateSource {
        /// The repeated name.
        name: String,
    },
    /// A `*.cedarschema` file beside the policies differs from the built-in Tenet schema.
    #[error(
        "schema file \"{file}\" differs from the built-in Tenet schema; policies are always \
         validated against the built-in schema, so restore the file (or delete it)"
    )]
    SchemaMismatch {
        /// The schema file.
        file: String,
    },
    /// A policy file does not parse.
    #[error("cannot parse policy file \"{file}\"{}: {message}", Location(*line, *column))]
    Parse {
        /// The file.
        file: String,
        /// 1-based line of the first error, when known.
        line: Option<usize>,
        /// 1-based column of the first error, when known.
        column: Option<usize>,
        /// The parser's messages.
        message: String,
    },
    /// A policy file declares a template; Tenet has no template links, so a template would
    /// never apply.
    #[error("policy file \"{file}\" declares template \"{id}\"; templates are not supported")]
    Template {
        /// The file.
        file: String,
        /// The template's id.
        id: String,
    },
    /// An `@id` annotation is empty.
    #[error("policy \"{policy}\" in \"{file}\" has an empty @id annotation")]
    EmptyId {
        /// The file.
        file: String,
        /// The policy's position id in its file, e.g. `policy3`.
        policy: String,
    },
    /// Two policies share an id (from `@id` annotations, possibly in different files).
    #[error("policy id \"{id}\" is used twice: in \"{first_file}\" and in \"{second_file}\"")]
    DuplicateId {
        /// The repeated id.
        id: String,
        /// The file of the first policy.
        first_file: String,
        /// The file of the second policy.
        second_file: String,
    },
    /// The policies do not validate against the schema (strict mode).
    #[error("policies do not validate against the schema: {}", IssueList(issues))]
    Validation {
        /// One entry per validator error.
        issues: Vec<ValidationIssue>,
    },
    /// A schema given to the generic path does not parse.
    #[error("cannot parse the schema: {message}")]
    Schema {
        /// The parser's message.
        message: String,
    },
    /// An entity set given to the generic path does not parse or does not fit the schema.
    #[error("cannot load the entities: {message}")]
    Entities {
        /// The loader's message.
        message: String,
    },
}

/// One validator error: where it is and what the validator said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    /// The file that holds the policy.
    pub file: String,
    /// The policy's id (its `@id`, or its position id).
    pub policy_id: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// 1-based column in the file, when known.
    pub column: Option<usize>,
    /// The validator's message.
    pub message: String,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\"{}, policy \"{}\": {}",
            self.file,
            Location(self.line, self.column),
            self.policy_id,
            self.message
        )
    }
}

/// Renders `:line:column` when a location is known.
struct Location(Option<usize>, Option<usize>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, " at {line}:{column}"),
            (Some(line), None) => write!(f, " at line {line}"),
            _ => Ok(()),
        }
    }
}

/// Renders validation issues separated by `; `.
struct IssueList<'a>(&'a [ValidationIssue]);

impl fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// The 1-based line and column of a byte offset in `text` (clamped to the text).
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_of_offsets() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 5), (2, 3));
        // Inside the two bytes of 'é': the character's own column.
        assert_eq!(line_column(text, 6), (2, 3));
        assert_eq!(line_column(text, 8), (3, 1));
        assert_eq!(line_column(text, 1_000), (3, 2));
    }
}

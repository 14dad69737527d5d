//! Why a Sigma document is not run: a [`RefusalKind`] that says what is wrong and whose move it is (the
//! rule's author, the mapping, the settings, ghosthunt, or the file system), and the details for the
//! person who fixes it. Reports count refusals by kind; the details name the key, value and position.

use std::fmt;

/// What is wrong with a refused document. Set where the fault is found and kept through every layer
/// that adds context, so a report never has to guess the kind from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalKind {
    /// The file or directory cannot be read.
    Unreadable,
    /// The file is not valid YAML (spoils the whole file).
    Yaml,
    /// A metadata key (title, id, level, logsource, …) is missing or of the wrong type.
    Metadata,
    /// The detection's searches are malformed: empty lists, wrong value types, duplicate names.
    Detection,
    /// The condition does not parse, or names a search the detection does not define.
    Condition,
    /// A value modifier is unknown, out of place, or applied to a value it cannot take.
    Modifier,
    /// A value cannot be read as its modifier needs: a regular expression, CIDR network, number, encoding.
    Value,
    /// A correlation rule breaks the specification or refers to rules that are not there.
    Correlation,
    /// A rule id already used by another file's rule.
    DuplicateId,
    /// A `%placeholder%` with no values in `sigma.placeholders`.
    Placeholder,
    /// Valid Sigma that ghosthunt does not run (Sigma filters, the deprecated aggregation syntax).
    Unsupported,
    /// No entry of the mapping matches the rule's logsource.
    Logsource,
    /// A field the mapping cannot give a column.
    Field,
}

/// Whose move it is to get a refused rule running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The rule breaks the Sigma specification: fix the rule.
    Author,
    /// The mapping (`sigma.mapping`) does not cover the rule: extend the mapping.
    Mapping,
    /// ghosthunt's settings lack something the rule needs (placeholder values).
    Settings,
    /// Valid Sigma that ghosthunt does not support.
    Ghosthunt,
    /// The file system: reading again may help.
    Environment,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Author => "fix the rule",
            Self::Mapping => "extend the mapping",
            Self::Settings => "configure ghosthunt",
            Self::Ghosthunt => "ghosthunt lacks it",
            Self::Environment => "check the files",
        })
    }
}

impl RefusalKind {
    /// A stable label, for counting refusals by kind.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unreadable => "file cannot be read",
            Self::Yaml => "not valid YAML",
            Self::Metadata => "metadata missing or malformed",
            Self::Detection => "detection malformed",
            Self::Condition => "condition invalid",
            Self::Modifier => "modifier unknown or misused",
            Self::Value => "value unreadable for its modifier",
            Self::Correlation => "correlation invalid",
            Self::DuplicateId => "duplicate rule id",
            Self::Placeholder => "placeholder without values",
            Self::Unsupported => "not supported by ghosthunt",
            Self::Logsource => "logsource not in the mapping",
            Self::Field => "field not usable with the mapping",
        }
    }

    pub fn fault(self) -> Fault {
        match self {
            Self::Unreadable => Fault::Environment,
            Self::Yaml
            | Self::Metadata
            | Self::Detection
            | Self::Condition
            | Self::Modifier
            | Self::Value
            | Self::Correlation
            | Self::DuplicateId => Fault::Author,
            Self::Placeholder => Fault::Settings,
            Self::Unsupported => Fault::Ghosthunt,
            Self::Logsource | Self::Field => Fault::Mapping,
        }
    }

    /// Whether trying again, unchanged, may succeed.
    pub fn retriable(self) -> bool {
        self == Self::Unreadable
    }

    /// An error of this kind with these details.
    pub fn error(self, detail: impl Into<String>) -> RuleError {
        RuleError {
            kind: self,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a rule (or a file, or a correlation) cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct RuleError {
    kind: RefusalKind,
    detail: String,
}

impl RuleError {
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The same error with `context` (where it was found: a key, a search identifier) before its details;
    /// the kind does not change.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            kind: self.kind,
            detail: format!("{context}: {}", self.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_kind_and_prefixes_the_details() {
        let e = RefusalKind::Condition
            .error("unexpected `)` at offset 4")
            .context("condition `a and )`")
            .context("detection");
        assert_eq!(e.kind(), RefusalKind::Condition);
        assert_eq!(
            e.to_string(),
            "detection: condition `a and )`: unexpected `)` at offset 4"
        );
    }

    #[test]
    fn faults_say_whose_move_it_is() {
        assert_eq!(RefusalKind::Logsource.fault(), Fault::Mapping);
        assert_eq!(RefusalKind::Modifier.fault(), Fault::Author);
        assert_eq!(RefusalKind::Placeholder.fault(), Fault::Settings);
        assert_eq!(RefusalKind::Unsupported.fault(), Fault::Ghosthunt);
        assert!(RefusalKind::Unreadable.retriable());
        assert!(!RefusalKind::Yaml.retriable());
    }
}

//! Topic name and topic filter rules of MQTT 3.1.1 section 4.7.
#![forbid(unsafe_code)]

use std::fmt;

/// The longest string a two-byte length prefix can describe (section 1.5.3).
const MAX_LEN: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Names and filters must be at least one character long (MQTT-4.7.3-1).
    Empty,
    /// Longer than 65535 bytes.
    TooLong,
    /// Contains U+0000 (MQTT-4.7.3-2).
    Nul,
    /// `+` or `#` in a topic name (MQTT-3.3.2-2).
    WildcardInName,
    /// `#` is not the last level of a filter (MQTT-4.7.1-2).
    HashNotLast,
    /// `+` or `#` shares a level with other characters, e.g. "a+/b", "a/b#" (MQTT-4.7.1-2, MQTT-4.7.1-3).
    WildcardNotWholeLevel,
    /// A `$share/` filter without a share name free of wildcards, or without a filter after it
    /// (MQTT 5 section 4.8.2).
    BadSharedSubscription,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "the topic is empty",
            TopicError::TooLong => "the topic is longer than 65535 bytes",
            TopicError::Nul => "the topic contains the character U+0000",
            TopicError::WildcardInName => "a topic name must not contain the wildcards '+' or '#'",
            TopicError::HashNotLast => "the wildcard '#' must be the last level of a topic filter",
            TopicError::WildcardNotWholeLevel => "a wildcard '+' or '#' must occupy a whole level of a topic filter",
            TopicError::BadSharedSubscription => {
                "a shared subscription is $share/<name>/<filter>, with a name free of '+' and '#'"
            }
        })
    }
}

impl std::error::Error for TopicError {}

/// The checks names and filters share; `+`/`#` are where they differ.
fn validate_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        Err(TopicError::Empty)
    } else if topic.len() > MAX_LEN {
        Err(TopicError::TooLong)
    } else if topic.contains('\0') {
        Err(TopicError::Nul)
    } else {
        Ok(())
    }
}

/// Checks a topic name, the topic a PUBLISH (or a will) is sent to.
/// Names starting with '$' are allowed: the server, not the client, decides what they mean (section 4.7.2).
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    validate_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter, the pattern a SUBSCRIBE or UNSUBSCRIBE names.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    validate_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let has_hash = level.contains('#');
        if (has_hash || level.contains('+')) && level.len() != 1 {
            return Err(TopicError::WildcardNotWholeLevel);
        }
        if has_hash && levels.peek().is_some() {
            return Err(TopicError::HashNotLast);
        }
    }
    Ok(())
}

/// Splits a shared-subscription filter, `$share/<name>/<filter>` (MQTT 5 section 4.8.2, also
/// honoured by mosquitto for 3.1.1 clients), into its share name and the filter messages are
/// matched against; None for an ordinary filter. `filter` must have passed
/// [`validate_topic_filter`].
pub fn split_shared(filter: &str) -> Option<Result<(&str, &str), TopicError>> {
    let rest = filter.strip_prefix("$share/")?;
    Some(match rest.split_once('/') {
        Some((name, f)) if !name.is_empty() && !name.contains(['+', '#']) && !f.is_empty() => Ok((name, f)),
        _ => Err(TopicError::BadSharedSubscription),
    })
}

/// Checks a filter a client subscribes to or unsubscribes from: a topic filter and, when it starts
/// with `$share/`, a well-formed shared subscription. Returns whether it is shared.
pub fn validate_subscription_filter(filter: &str) -> Result<bool, TopicError> {
    validate_topic_filter(filter)?;
    Ok(split_shared(filter).transpose()?.is_some())
}

/// Whether a topic name matches a filter (section 4.7): `+` is one level, `#` the rest including
/// the parent level, and a topic starting with `$` is matched by no filter that starts with a
/// wildcard (MQTT-4.7.2-1). The trie answers the same question for many filters at once.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_filters_are_valid_filters_with_a_well_formed_share() {
        assert_eq!(validate_subscription_filter("a/+/#"), Ok(false));
        assert_eq!(validate_subscription_filter("$share/g/a/#"), Ok(true));
        assert_eq!(validate_subscription_filter("a/#/b"), Err(TopicError::HashNotLast));
        assert_eq!(
            validate_subscription_filter("$share/+/a"),
            Err(TopicError::BadSharedSubscription)
        );
    }

    #[test]
    fn shared_filters_split_into_name_and_filter() {
        assert_eq!(split_shared("a/b"), None);
        assert_eq!(split_shared("$share/g/a/+"), Some(Ok(("g", "a/+"))));
        assert_eq!(split_shared("$share/g/#"), Some(Ok(("g", "#"))));
        for bad in ["$share/g", "$share/g/", "$share//a", "$share/+/a", "$share/#/a"] {
            assert_eq!(split_shared(bad), Some(Err(TopicError::BadSharedSubscription)), "{bad}");
        }
        assert_eq!(split_shared("$sharex/g/a"), None, "only the exact prefix");
    }

    #[test]
    fn filter_matching_follows_section_4_7() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+", "a", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "/x", true),
            ("+", "", true),
            ("a/b", "a/b/", false),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(filter_matches(filter, topic), want, "{filter} vs {topic}");
        }
    }

    #[test]
    fn topic_names_table() {
        let long_ok = "a".repeat(MAX_LEN);
        let too_long = "a".repeat(MAX_LEN + 1);
        let cases: &[(&str, Result<(), TopicError>)] = &[
            ("a", Ok(())),
            ("/", Ok(())),
            ("a/b/c", Ok(())),
            ("a//b", Ok(())),
            ("/a/", Ok(())),
            (" ", Ok(())),
            ("$SYS/broker/uptime", Ok(())),
            ("ünï/cødé", Ok(())),
            (&long_ok, Ok(())),
            ("", Err(TopicError::Empty)),
            (&too_long, Err(TopicError::TooLong)),
            ("a\0b", Err(TopicError::Nul)),
            ("+", Err(TopicError::WildcardInName)),
            ("#", Err(TopicError::WildcardInName)),
            ("a/+/b", Err(TopicError::WildcardInName)),
            ("a/#", Err(TopicError::WildcardInName)),
            ("a+b", Err(TopicError::WildcardInName)),
        ];
        for (name, expected) in cases {
            assert_eq!(
                validate_topic_name(name),
                *expected,
                "name {:?}",
                &name[..name.len().min(20)]
            );
        }
    }

    #[test]
    fn topic_filters_table() {
        let long_ok = "+/".repeat(MAX_LEN / 2) + "#";
        assert_eq!(long_ok.len(), MAX_LEN);
        let too_long = "a".repeat(MAX_LEN + 1);
        let cases: &[(&str, Result<(), TopicError>)] = &[
            ("a", Ok(())),
            ("/", Ok(())),
            ("a//b", Ok(())),
            ("+", Ok(())),
            ("#", Ok(())),
            ("+/+", Ok(())),
            ("/#", Ok(())),
            ("+/#", Ok(())),
            ("a/+/c", Ok(())),
            ("sport/tennis/#", Ok(())),
            ("$SYS/#", Ok(())),
            ("/+/", Ok(())),
            (&long_ok, Ok(())),
            ("", Err(TopicError::Empty)),
            (&too_long, Err(TopicError::TooLong)),
            ("a/\0", Err(TopicError::Nul)),
            ("#/a", Err(TopicError::HashNotLast)),
            ("a/#/b", Err(TopicError::HashNotLast)),
            ("#/", Err(TopicError::HashNotLast)),
            ("a#", Err(TopicError::WildcardNotWholeLevel)),
            ("#a", Err(TopicError::WildcardNotWholeLevel)),
            ("a/b#", Err(TopicError::WildcardNotWholeLevel)),
            ("##", Err(TopicError::WildcardNotWholeLevel)),
            ("++", Err(TopicError::WildcardNotWholeLevel)),
            ("a+", Err(TopicError::WildcardNotWholeLevel)),
            ("a+/b", Err(TopicError::WildcardNotWholeLevel)),
            ("a/+b/c", Err(TopicError::WildcardNotWholeLevel)),
            ("+#", Err(TopicError::WildcardNotWholeLevel)),
        ];
        for (filter, expected) in cases {
            assert_eq!(
                validate_topic_filter(filter),
                *expected,
                "filter {:?}",
                &filter[..filter.len().min(20)]
            );
        }
    }

    #[test]
    fn display_is_a_sentence_per_variant() {
        let all = [
            TopicError::Empty,
            TopicError::TooLong,
            TopicError::Nul,
            TopicError::WildcardInName,
            TopicError::HashNotLast,
            TopicError::WildcardNotWholeLevel,
        ];
        let texts: std::collections::HashSet<String> = all.iter().map(|e| e.to_string()).collect();
        assert_eq!(texts.len(), all.len(), "messages must be distinct");
        assert!(texts.iter().all(|t| t.len() > 10));
    }
}

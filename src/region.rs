//! The Genesys Cloud region table and the mapping of a region name or a bare domain to a domain.

use std::fmt;

/// Genesys Cloud regions as (name, domain). The API host is `api.<domain>`
/// and the OAuth host `login.<domain>`.
pub const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "mypurecloud.com"),
    ("us-east-2", "use2.us-gov-pure.cloud"),
    ("us-west-2", "usw2.pure.cloud"),
    ("ca-central-1", "cac1.pure.cloud"),
    ("sa-east-1", "sae1.pure.cloud"),
    ("eu-west-1", "mypurecloud.ie"),
    ("eu-west-2", "euw2.pure.cloud"),
    ("eu-central-1", "mypurecloud.de"),
    ("eu-central-2", "euc2.pure.cloud"),
    ("ap-southeast-2", "mypurecloud.com.au"),
    ("ap-northeast-1", "mypurecloud.jp"),
    ("ap-northeast-2", "apne2.pure.cloud"),
    ("ap-northeast-3", "apne3.pure.cloud"),
    ("ap-south-1", "aps1.pure.cloud"),
    ("me-central-1", "mec1.pure.cloud"),
    ("mx-central-1", "mxc1.pure.cloud"),
    ("ap-southeast-1", "apse1.pure.cloud"),
    ("eusc-de-east-1", "edee1.eusc-pure.cloud"),
];

/// Maximum number of characters of a rejected value that an error message repeats.
const MAX_SHOWN_CHARS: usize = 100;

/// Error of [`resolve_domain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// The value is neither a known region name nor a bare domain.
    Unknown { value: String },
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionError::Unknown { value } => {
                let truncated: String = value.chars().take(MAX_SHOWN_CHARS).collect();
                let names: Vec<&str> = REGIONS.iter().map(|(name, _)| *name).collect();
                write!(
                    f,
                    "unknown region \"{truncated}\": use one of {}, or a bare domain such as mypurecloud.ie",
                    names.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for RegionError {}

/// Returns the table spelling of a known region name, which may be written
/// with underscores in place of dashes and in any case (`US_EAST_1`).
pub fn canonical_name(region: &str) -> Option<&'static str> {
    find_region(region).map(|(name, _)| *name)
}

fn find_region(region: &str) -> Option<&'static (&'static str, &'static str)> {
    let wanted = region.replace('_', "-");
    REGIONS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&wanted))
}

/// Maps a region name to its domain, or returns a bare domain lower-cased.
///
/// A bare domain is a host name with at least one dot and no scheme, port or
/// path, such as `mypurecloud.ie`.
pub fn resolve_domain(region: &str) -> Result<String, RegionError> {
    if let Some((_, domain)) = find_region(region) {
        return Ok(domain.to_string());
    }
    if is_bare_domain(region) {
        return Ok(region.to_ascii_lowercase());
    }
    Err(RegionError::Unknown {
        value: region.to_owned(),
    })
}

/// Checks the host name rules of RFC 1123: labels of 1 to 63 letters, digits
/// and inner dashes, 253 characters in all. The last label must contain a
/// letter, so an IPv4 address is not taken for a domain.
fn is_bare_domain(text: &str) -> bool {
    if text.len() > 253 || !text.contains('.') {
        return false;
    }
    let top_label = text.rsplit('.').next().unwrap_or_default();
    text.split('.').all(is_host_label) && top_label.bytes().any(|b| b.is_ascii_alphabetic())
}

fn is_host_label(label: &str) -> bool {
    let allowed = label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    allowed && (1..=63).contains(&label.len()) && !label.starts_with('-') && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_eighteen_unique_regions() {
        assert_eq!(REGIONS.len(), 18);
        for (index, (name, _)) in REGIONS.iter().enumerate() {
            let later = &REGIONS[index + 1..];
            assert!(later.iter().all(|(other, _)| other != name), "{name} twice");
        }
    }

    #[test]
    fn every_name_resolves_to_its_domain() {
        for (name, domain) in REGIONS {
            assert_eq!(resolve_domain(name).as_deref(), Ok(*domain), "{name}");
        }
    }

    #[test]
    fn names_accept_underscores_and_any_case() {
        for (name, domain) in REGIONS {
            let underscored = name.replace('-', "_");
            assert_eq!(resolve_domain(&underscored).as_deref(), Ok(*domain));
            let upper = underscored.to_ascii_uppercase();
            assert_eq!(resolve_domain(&upper).as_deref(), Ok(*domain));
        }
    }

    #[test]
    fn canonical_name_uses_table_spelling() {
        assert_eq!(canonical_name("EU_WEST_1"), Some("eu-west-1"));
        assert_eq!(canonical_name("eu-west-1"), Some("eu-west-1"));
        assert_eq!(canonical_name("mypurecloud.ie"), None);
    }

    #[test]
    fn bare_domain_is_returned_lower_cased() {
        let cases = [
            ("mypurecloud.ie", "mypurecloud.ie"),
            ("MyPureCloud.IE", "mypurecloud.ie"),
            ("apne2.pure.cloud", "apne2.pure.cloud"),
            ("a-b.example.com", "a-b.example.com"),
        ];
        for (input, expected) in cases {
            assert_eq!(resolve_domain(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_values_that_are_neither_name_nor_domain() {
        let long_label = format!("{}.com", "a".repeat(64));
        let cases = [
            "",
            "mars-1",
            "http://x.com",
            "x.com/path",
            "x.com:443",
            "a..b",
            ".x.com",
            "x.com.",
            "-x.com",
            "x-.com",
            "x_y.com",
            "x .com",
            "127.0.0.1",
            "user@x.com",
            long_label.as_str(),
        ];
        for input in cases {
            let expected = RegionError::Unknown {
                value: input.to_owned(),
            };
            assert_eq!(resolve_domain(input), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn unknown_region_message_lists_names_and_domain_form() {
        let message = resolve_domain("mars-1").unwrap_err().to_string();
        assert!(message.contains("\"mars-1\""), "{message}");
        for (name, _) in REGIONS {
            assert!(message.contains(name), "{name} missing from: {message}");
        }
        assert!(message.contains("mypurecloud.ie"), "{message}");
    }

    #[test]
    fn unknown_region_message_truncates_long_value() {
        let value = "z".repeat(500);
        let message = resolve_domain(&value).unwrap_err().to_string();
        assert!(message.contains(&"z".repeat(MAX_SHOWN_CHARS)));
        assert!(!message.contains(&"z".repeat(MAX_SHOWN_CHARS + 1)));
    }
}

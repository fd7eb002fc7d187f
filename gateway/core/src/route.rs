//! SNI routing: which route of a listener serves a ClientHello's server name. Pure lookups over
//! names fixed at config time.

/// True for a DNS name (letters, digits, hyphens, dots; labels of 1-63; at most 253) or a
/// wildcard `*.` followed by one.
pub fn is_valid_server_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// Route names of one listener, normalised for matching.
#[derive(Clone, Debug, Default)]
pub struct SniTable {
    names: Vec<String>,
}

impl SniTable {
    /// Builds the table; `names[i]` is the SNI of route `i`.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            names: names.into_iter().map(str::to_ascii_lowercase).collect(),
        }
    }

    /// The route for a server name: an exact match first, then a wildcard matching exactly one
    /// leading label; `None` means the listener's default.
    pub fn select(&self, sni: Option<&str>) -> Option<usize> {
        let sni = sni?.trim_end_matches('.').to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == sni) {
            return Some(i);
        }
        let (_, parent) = sni.split_once('.')?;
        self.names
            .iter()
            .position(|n| n.strip_prefix("*.") == Some(parent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_wildcard_and_case_is_ignored() {
        let t = SniTable::new(["*.example.com", "API.example.com", "other.org"]);
        assert_eq!(t.select(Some("api.example.com")), Some(1));
        assert_eq!(t.select(Some("www.Example.com.")), Some(0));
        assert_eq!(t.select(Some("a.b.example.com")), None);
        assert_eq!(t.select(Some("example.com")), None);
        assert_eq!(t.select(Some("other.org")), Some(2));
        assert_eq!(t.select(None), None);
    }

    #[test]
    fn server_name_syntax() {
        for ok in ["a", "a-b.c", "*.example.com", "x1.y2"] {
            assert!(is_valid_server_name(ok), "{ok}");
        }
        for bad in ["", "*", "a..b", "-a.b", "a b", "*.*.a", "a.b-", "ä.com"] {
            assert!(!is_valid_server_name(bad), "{bad}");
        }
    }
}

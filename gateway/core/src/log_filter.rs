//! Checks `log.level` before the tracing filter reads it: comma-separated directives, each a
//! level (`info`) or `target=level` (`pqgate=debug`, `pqgate::wg=trace`). The filter itself
//! accepts any bare word as a *target* with every level enabled, so `"warning"` or `"verbose"`
//! silently turned off every log line, the per-connection audit line included: refused here.

/// The levels a directive may name, as tracing spells them.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// What is wrong with `filter`, one message per bad directive (empty when it is fine).
pub fn problems(filter: &str) -> Vec<String> {
    filter
        .split(',')
        .map(str::trim)
        .filter_map(|d| directive_problem(d).map(|why| format!("directive {d:?}: {why}")))
        .collect()
}

fn directive_problem(directive: &str) -> Option<String> {
    let (target, level) = match directive.rsplit_once('=') {
        Some((t, l)) => (Some(t.trim()), l.trim()),
        None => (None, directive),
    };
    if let Some(t) = target {
        let path_chars = t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if t.is_empty() || !path_chars {
            return Some("the target before `=` must be a crate or module path".into());
        }
    }
    let known = LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level));
    (!known).then(|| {
        let hint = match level.to_ascii_lowercase().as_str() {
            "warning" => " (did you mean \"warn\"?)",
            "verbose" | "all" => " (did you mean \"debug\" or \"trace\"?)",
            "" => " (empty)",
            _ => "",
        };
        format!(
            "{level:?} is no level{hint}; use one of {}",
            LEVELS.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_target_directives_pass() {
        for ok in [
            "info",
            "WARN",
            "off",
            "pqgate=debug",
            "info,pqgate::wg=trace",
            " warn , rustls = error ",
        ] {
            assert_eq!(problems(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn words_that_silence_every_line_are_refused() {
        for (bad, says) in [
            ("warning", "did you mean \"warn\"?"),
            ("verbose", "did you mean \"debug\" or \"trace\"?"),
            ("bogus", "\"bogus\" is no level"),
            ("", "(empty)"),
            ("info,", "(empty)"),
            ("pqgate=loud", "\"loud\" is no level"),
            ("=info", "must be a crate or module path"),
            ("pq gate=info", "must be a crate or module path"),
        ] {
            let p = problems(bad);
            assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
            assert!(p[0].contains(says), "{bad:?}: {p:?}");
        }
        assert_eq!(problems("warning,verbose,info").len(), 2);
    }
}

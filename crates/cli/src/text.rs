//! Printing what producers control: stored text is escaped so that it can never drive the
//! terminal or pass one id off as another, and stored documents that could not be read are
//! named on stderr.

/// Says on stderr which stored documents were skipped because they do not decode (the rest
/// were read and are shown).
pub fn warn_unreadable(unreadable: &[String]) {
    if unreadable.is_empty() {
        return;
    }
    eprintln!(
        "warning: {} stored document(s) could not be read and were skipped:",
        unreadable.len()
    );
    for u in unreadable.iter().take(20) {
        eprintln!("  {}", printable(u));
    }
    if unreadable.len() > 20 {
        eprintln!("  … and {} more", unreadable.len() - 20);
    }
}

/// `s` with every control character written as an escape (`\u{1b}`), and every character
/// that reorders or hides text (bidirectional overrides, zero-width characters: see
/// [`pipeline_core::validate::is_hidden`]), so that stored text — which producers control —
/// can never drive the terminal it is printed on or pass one id off as another.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() || pipeline_core::validate::is_hidden(c);
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if bad(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(printable("acct-1"), "acct-1");
        assert_eq!(
            printable("a\u{1b}[31mred\u{7}\u{9b}"),
            "a\\u{1b}[31mred\\u{7}\\u{9b}"
        );
        assert_eq!(
            printable("acct\u{202e}1\u{200b}"),
            "acct\\u{202e}1\\u{200b}"
        );
    }
}

//! Quoting for the `tofu-certs` commands this program prints, so that a path pasted back into
//! a POSIX shell is one argument. (The library quotes the same way in its own refusal
//! messages; this is the CLI's copy, not a library API.)

use std::path::Path;

/// ` --store DIR`, with DIR quoted when it needs it: what a printed `tofu-certs` command adds
/// so that, pasted into a shell, it acts on the store in `dir`.
pub(crate) fn store_arg(dir: &Path) -> String {
    format!(" --store {}", quote(&dir.to_string_lossy()))
}

/// Quotes `s` for a POSIX shell when it needs it, and leaves it as it is otherwise, so the
/// common case stays readable.
pub(crate) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn quotes_only_what_a_shell_would_split() {
        assert_eq!(
            super::store_arg(Path::new("/var/lib/tofu")),
            " --store /var/lib/tofu"
        );
        assert_eq!(
            super::store_arg(Path::new("/tmp/my store")),
            " --store '/tmp/my store'"
        );
        assert_eq!(super::quote("pins.toml"), "pins.toml");
        assert_eq!(super::quote("it's.toml"), r"'it'\''s.toml'");
        assert_eq!(super::quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(super::quote(""), "''");
    }
}

//! The generated shell completions, loaded into the real shells and asked to complete, as a
//! shell asks when the user presses Tab: a hyphen in the binary's name must not break them.

use std::process::Command;

use crate::util::*;

/// Writes `tofu-certs completions SHELL` to a file and returns its path.
fn completion_script(env: &Env, shell: &str) -> String {
    let run = env.run(&["completions", shell]);
    run.success();
    env.write(&format!("completion.{shell}"), &run.stdout)
}

/// Whether `shell` can be run here.
fn installed(shell: &str) -> bool {
    Command::new(shell)
        .arg("-c")
        .arg("exit 0")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// What bash offers for the command line `words` (the last word being completed): the
/// completion script is sourced, the function `complete -p tofu-certs` names is looked up,
/// and it is called with COMP_WORDS and COMP_CWORD set and the three arguments bash passes
/// (the command, the word being completed, the word before it), as bash calls it on Tab.
fn bash_offers(script: &str, words: &[&str]) -> Vec<String> {
    const CALL: &str = r#"
source "$1" || exit 10
shift
spec=$(complete -p tofu-certs) || { echo "no completion registered for tofu-certs" >&2; exit 11; }
function=${spec#*-F }
function=${function%% *}
declare -F "$function" >/dev/null || { echo "$spec names no function" >&2; exit 12; }
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
"$function" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", CALL, "bash", script])
        .args(words)
        .env_clear()
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash could not complete {words:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("completions are UTF-8")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_options_of_the_hyphenated_binary() {
    assert!(installed("bash"), "bash runs the completion test");
    let env = Env::new();
    let script = completion_script(&env, "bash");

    assert_eq!(bash_offers(&script, &["tofu-certs", "li"]), ["listcerts"]);
    let top = bash_offers(&script, &["tofu-certs", ""]);
    for word in ["listcerts", "deletecert", "probe", "--store", "--help"] {
        assert!(top.contains(&word.to_owned()), "{word} not in {top:?}");
    }
    assert_eq!(
        bash_offers(&script, &["tofu-certs", "deletecert", "--st"]),
        ["--store"]
    );
    assert_eq!(
        bash_offers(
            &script,
            &["tofu-certs", "deletecert", "host", "10.1.1.1_8082", "--fi"]
        ),
        ["--fingerprint"]
    );
    let formats = bash_offers(&script, &["tofu-certs", "listcerts", "--format", ""]);
    for word in ["prime", "table", "json"] {
        assert!(
            formats.contains(&word.to_owned()),
            "{word} not in {formats:?}"
        );
    }
}

#[test]
fn fish_completes_subcommands_and_options_of_the_hyphenated_binary() {
    if !installed("fish") {
        eprintln!("skipped: fish is not installed, so its completions are not exercised");
        return;
    }
    let env = Env::new();
    let script = completion_script(&env, "fish");
    let offers = |line: &str| -> Vec<String> {
        let out = Command::new("fish")
            .args(["--no-config", "-c", "source $argv[1]; complete -C $argv[2]"])
            .args([script.as_str(), line])
            .output()
            .expect("fish runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_owned())
            .collect()
    };
    assert!(offers("tofu-certs li").contains(&"listcerts".to_owned()));
    assert!(offers("tofu-certs deletecert --st").contains(&"--store".to_owned()));
}

/// What zsh's line editor shows after Tab on the command line `line`: an interactive zsh in a
/// pseudo-terminal (zpty) with the completion system on and the script loaded, as a user's
/// shell would have it. Escape sequences are removed; the last line is the edited command.
fn zsh_completes(script: &str, line: &str) -> String {
    const TYPE: &str = r#"
zmodload zsh/zpty || exit 10
zpty z zsh -f -i
zpty -w z "PS1='' PS2='' RPS1=''; fpath=(${1:h} \$fpath); autoload -U compinit; compinit -u -D; source ${(q)1}; compdef _tofu-certs tofu-certs; print READY"
out=
for i in {1..100}; do
  while zpty -r -t z chunk; do out+=$chunk; done
  [[ $out == *READY* ]] && break
  sleep 0.1
done
[[ $out == *READY* ]] || { print -u2 "zsh did not load the completion: $out"; exit 11 }
zpty -n -w z "$2"$'\t'
# The completion is done when the terminal has been quiet for half a second (at most 10 s).
out= quiet=0
for i in {1..100}; do
  sleep 0.1
  if zpty -r -t z chunk; then
    out+=$chunk quiet=0
    while zpty -r -t z chunk; do out+=$chunk; done
  elif [[ -n $out ]] && (( ++quiet >= 5 )); then
    break
  fi
done
zpty -d z
print -r -- "$out"
"#;
    let out = Command::new("zsh")
        .args(["-f", "-c", TYPE, "zsh", script, line])
        .output()
        .expect("zsh runs");
    assert!(
        out.status.success(),
        "zsh could not complete {line:?}: {out:?}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.trim_end().rsplit(['\r', '\n']).next().unwrap_or("");
    strip_escapes(last).trim_end().to_owned()
}

/// `text` without terminal escape sequences (CSI: ESC [ parameters final-byte).
fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The commands `_tofu-certs_commands` offers: the script is loaded and `_describe`, which
/// it hands its list to, prints the list instead of offering it.
fn zsh_command_list(script: &str) -> Vec<String> {
    const LIST: &str = r#"
autoload -U compinit && compinit -u -D && source $1 || exit 10
_describe() { print -rl -- ${(P)4} }
_tofu-certs_commands
"#;
    let out = Command::new("zsh")
        .args(["-f", "-c", LIST, "zsh", script])
        .output()
        .expect("zsh runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn zsh_completes_subcommands_and_options_of_the_hyphenated_binary() {
    if !installed("zsh") {
        eprintln!("skipped: zsh is not installed, so its completions are not exercised");
        return;
    }
    let env = Env::new();
    let script = completion_script(&env, "zsh");
    let text = std::fs::read_to_string(&script).expect("the script");
    assert!(text.starts_with("#compdef tofu-certs\n"), "{}", &text[..40]);
    assert_eq!(
        zsh_command_list(&script),
        [
            "listcerts",
            "showcert",
            "deletecert",
            "addcert",
            "accept",
            "probe",
            "export",
            "import",
            "log",
            "check",
            "status",
            "mode",
            "completions",
            "man",
            "help"
        ]
    );
    assert_eq!(
        zsh_completes(&script, "tofu-certs li"),
        "tofu-certs listcerts"
    );
    assert_eq!(
        zsh_completes(&script, "tofu-certs deletecert --st"),
        "tofu-certs deletecert --store="
    );
}

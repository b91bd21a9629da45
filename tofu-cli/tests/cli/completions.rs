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

#[test]
fn zsh_loads_the_completion_for_the_hyphenated_binary() {
    if !installed("zsh") {
        eprintln!("skipped: zsh is not installed, so its completions are not exercised");
        return;
    }
    let env = Env::new();
    let script = completion_script(&env, "zsh");
    let text = std::fs::read_to_string(&script).expect("the script");
    assert!(text.starts_with("#compdef tofu-certs\n"), "{}", &text[..40]);
    // Calling a zsh completion function needs the completion system and a terminal (zpty);
    // loading it checks its syntax and that it defines the function #compdef names.
    let out = Command::new("zsh")
        .args([
            "-f",
            "-c",
            "autoload -U compinit && compinit -u && source $1 && whence -w _tofu-certs",
        ])
        .arg("zsh")
        .arg(&script)
        .output()
        .expect("zsh runs");
    assert!(out.status.success(), "{out:?}");
}

//! The command-line contract: help, usage errors, exit statuses, pipes, completions, man page.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::util::*;

const EXIT_STATUS: &str = "Exit status:
  0  success
  1  operational error: the store, a file, the network or the environment failed
  2  usage error: an unknown option, a malformed endpoint or fingerprint
  3  nothing found for that endpoint (showcert, deletecert, accept, log host)
  4  the presented certificate does not match the pin (probe)
  5  the endpoint is not pinned (probe)
";

#[test]
fn every_help_ends_with_the_exit_statuses() {
    let env = Env::new();
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["listcerts", "--help"],
        vec!["showcert", "--help"],
        vec!["deletecert", "--help"],
        vec!["addcert", "--help"],
        vec!["accept", "--help"],
        vec!["probe", "--help"],
        vec!["export", "--help"],
        vec!["import", "--help"],
        vec!["log", "--help"],
        vec!["check", "--help"],
        vec!["completions", "--help"],
        vec!["man", "--help"],
    ] {
        let run = env.run(&args);
        run.success();
        assert!(
            run.stdout.ends_with(EXIT_STATUS),
            "{args:?}: {}",
            run.stdout
        );
    }
    let help = env.run(&["deletecert", "--help"]);
    assert!(help
        .stdout
        .contains("Usage: tofu-certs deletecert host <HOST> [OPTIONS]\n"));
}

#[test]
fn usage_errors_exit_with_status_2() {
    let env = Env::new();
    env.run(&["deletecert", "10.1.1.1_8082"]).code(2).stderr(
        "error: invalid value '10.1.1.1_8082' for '<host>': expected the word `host` before the endpoint, as in `host 10.1.1.1_8082`

For more information, try '--help'.
",
    );
    env.run(&["deletecert", "host", "10.1.1.1"]).code(2).stderr(
        "error: invalid value '10.1.1.1' for '<HOST>': \"10.1.1.1\" is not an endpoint: no port; write host:port, for example example.com:443

For more information, try '--help'.
",
    );
    env.run(&["deletecert", "host", "10.1.1.1:1", "--fingerprint", "abc"])
        .code(2)
        .stderr("error: invalid value 'abc' for '--fingerprint <FP>': \"abc\" is not a SHA-256 fingerprint: [..]\n\nFor more information, try '--help'.\n");
    // A public-key pin's notation is not a certificate's fingerprint; SHA-1 is refused with
    // the command that prints the SHA-256 one. Nothing is written either way.
    env.run(&[
        "accept",
        "host",
        "10.1.1.1:1",
        "--fingerprint",
        "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    ])
    .code(2)
    .stderr("error: invalid value '[..]' for '--fingerprint <FP>': `sha256/…` is the notation of a public-key pin (HPKP, OkHttp), not of a certificate's fingerprint; [..] (add --match key to pin the certificate's public key)\n\nFor more information, try '--help'.\n");
    env.run(&[
        "deletecert",
        "host",
        "10.1.1.1:1",
        "--fingerprint",
        "SHA1 Fingerprint=DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09",
    ])
    .code(2)
    .stderr("error: invalid value '[..]' for '--fingerprint <FP>': [..] is a SHA-1 or MD5 fingerprint, [..]`openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints the SHA-256 one; [..]\n\nFor more information, try '--help'.\n");
    assert!(!env.store().exists());
    env.run(&["listcerts", "--format", "xml"]).code(2);
    env.run(&["listcerts", "--nope"]).code(2);
    env.run(&["frobnicate"]).code(2);
    env.run(&[]).code(2);
    env.run(&["probe"]).code(2);
    env.run(&["accept", "host", "10.1.1.1:8082"]).code(2);
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--cert",
        "x",
        "--label",
        "a\nb",
    ])
    .code(2);
    // A malformed PostgreSQL store is a usage error too, and its message masks the password.
    let run = Run::from(
        env.bare_command()
            .args([
                "--store",
                "postgresql://fleet:hunter2@db.example:99999/tofu",
                "listcerts",
            ])
            .output()
            .unwrap(),
    );
    run.code(2);
    assert!(
        run.stderr.starts_with(
            "error: --store: the PostgreSQL store location postgresql://fleet:***@db.example:99999/tofu is not usable: the port \"99999\""
        ) && !run.stderr.contains("hunter2"),
        "{}",
        run.stderr
    );
    // Nothing was created by any of them.
    assert!(!env.store().exists());
}

#[test]
fn a_closed_pipe_ends_quietly_with_status_0() {
    let env = Env::new();
    // Enough output to fill the pipe many times over.
    fill_store(&env.store(), 3000, &prime_cert("prime-pri"));
    for format in ["prime", "table", "json"] {
        let mut child = env
            .command(&["listcerts", "--format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // `| head -1`: the reader goes away.
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{format}");
    }
    let mut child = env
        .command(&["log"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty());
}

#[test]
fn completions_and_man_page_are_generated_from_the_definitions() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = env.run(&["completions", shell]);
        run.success();
        for word in [
            "listcerts",
            "deletecert",
            "check",
            "expiring-within",
            "fingerprint",
            "additional",
        ] {
            assert!(run.stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    env.run(&["completions", "tcsh"]).code(2);
    let man = env.run(&["man"]);
    man.success();
    assert!(
        man.stdout.starts_with(".ie \\n(.g .ds Aq \\(aq\n"),
        "{}",
        &man.stdout[..100]
    );
    assert!(man.stdout.contains(".TH tofu-certs 1"));
    assert!(man.stdout.contains("deletecert"));
    assert!(man.stdout.contains("TOFU_CERTS_STORE"));
}

#[test]
fn no_colour_off_a_terminal_nor_with_no_color() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("prime-pri"));
    let mut cmd = env.command(&["listcerts", "--format", "table"]);
    cmd.env("NO_COLOR", "1");
    let run = Run::from(cmd.output().unwrap());
    run.success();
    assert!(!run.stdout.contains('\x1b'));
    let run = env.run(&["showcert", "host", "10.1.1.1:8082"]);
    assert!(!run.stdout.contains('\x1b'));
    let run = env.run(&["deletecert", "host", "10.9.9.9:1"]);
    assert!(run.stderr.starts_with("error: "));
}

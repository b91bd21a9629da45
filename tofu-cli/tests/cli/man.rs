//! `tofu-certs man`: a page for tofu-certs and one per command, each naming its command and
//! documenting every option its `--help` lists; checked by groff when it is installed.

use std::process::Command;

use crate::util::*;

/// The commands `tofu-certs --help` lists (without clap's `help`), so that a new command
/// without a page fails here.
fn commands(env: &Env) -> Vec<String> {
    let help = env.run(&["--help"]);
    help.success();
    let listed = help
        .stdout
        .split("\nCommands:\n")
        .nth(1)
        .expect("--help lists the commands")
        .split("\n\n")
        .next()
        .unwrap();
    let names: Vec<String> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 12, "{names:?}");
    names
}

/// The long options `tofu-certs COMMAND --help` documents.
fn options(env: &Env, command: &str) -> Vec<String> {
    let help = env.run(&[command, "--help"]);
    help.success();
    help.stdout
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split(['.', ' ', ',']).find(|w| w.starts_with("--")))
        .map(str::to_owned)
        .collect()
}

/// roff escapes `-` in option names.
fn roff(option: &str) -> String {
    format!("\\fB{}\\fR", option.replace('-', "\\-"))
}

fn groff_warnings(page: &std::path::Path) -> Option<String> {
    let out = Command::new("groff")
        // -k: the pages are UTF-8 (an ellipsis), which groff reads through preconv, as man does.
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "groff failed on {}: {out:?}",
        page.display()
    );
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_command_has_a_page_naming_it_and_documenting_its_options() {
    let env = Env::new();
    let dir = env.path("man1");
    let run = env.run(&["man", "--dir", &dir.to_string_lossy()]);
    run.success();
    let commands = commands(&env);
    let mut expected = vec![dir.join("tofu-certs.1")];
    expected.extend(
        commands
            .iter()
            .map(|c| dir.join(format!("tofu-certs-{c}.1"))),
    );
    let written: Vec<_> = run.stdout.lines().map(std::path::PathBuf::from).collect();
    assert_eq!(written, expected, "the paths printed are the pages written");

    let mut checked_by_groff = false;
    for (command, page) in std::iter::once(None)
        .chain(commands.iter().map(Some))
        .zip(&expected)
    {
        let text = std::fs::read_to_string(page).unwrap();
        let (title, name, opts) = match command {
            None => (
                "tofu-certs".to_owned(),
                "tofu\\-certs".to_owned(),
                Vec::new(),
            ),
            Some(c) => (
                format!("tofu-certs-{c}"),
                format!("tofu\\-certs\\-{}", c.replace('-', "\\-")),
                options(&env, c),
            ),
        };
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!(".TH {title} 1 "))),
            "{}: no .TH {title}",
            page.display()
        );
        let name_section = text.split(".SH NAME\n").nth(1).expect("a NAME section");
        assert!(
            name_section.starts_with(&format!("{name} \\- ")),
            "{}",
            page.display()
        );
        for opt in &opts {
            assert!(
                text.contains(&roff(opt)),
                "{} does not document {opt}",
                page.display()
            );
        }
        if let Some(c) = command {
            // Printing one page gives the same page.
            let one = env.run(&["man", c]);
            one.success();
            assert_eq!(one.stdout, text, "tofu-certs man {c}");
        }
        if let Some(warnings) = groff_warnings(page) {
            assert_eq!(warnings, "", "groff warns about {}", page.display());
            checked_by_groff = true;
        }
    }
    if !checked_by_groff {
        eprintln!("skipped: groff is not installed, so the pages were not rendered");
    }
    assert!(options(&env, "deletecert").contains(&"--fingerprint".to_owned()));
}

#[test]
fn an_unknown_command_or_an_unwritable_directory_says_what_to_do() {
    let env = Env::new();
    env.run(&["man", "delete"]).code(2).stderr(
        "error: tofu-certs has no command named \"delete\"\nhint: the commands are [..]deletecert[..]; `tofu-certs man` alone prints the main page\n",
    );
    let file = env.write("not-a-dir", "x");
    env.run(&["man", "--dir", &file])
        .code(1)
        .stderr("error: cannot write the man pages to [..]not-a-dir: [..]\nhint: give a directory you can write with --dir, or print one page with `tofu-certs man [COMMAND]`\n");
    env.run(&["man", "probe", "--dir", &env.path("x").to_string_lossy()])
        .code(2);
}

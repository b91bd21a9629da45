//! `tofu-certs status` as a monitoring system runs it: against a real `openssl s_server`
//! whose certificate changed, through the operator's fix, in every format.

use prometheus_parse::{Scrape, Value};

use crate::util::*;

/// The samples of a Prometheus text document, parsed by a real parser; every line that is
/// not a comment must have been understood as a sample.
fn scrape(text: &str) -> Scrape {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = Scrape::parse(lines).expect("the exposition format parses");
    let sample_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(scrape.samples.len(), sample_lines, "{text}");
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(line.ends_with(" gauge"), "{line}");
    }
    scrape
}

fn gauge(scrape: &Scrape, metric: &str, endpoint: Option<&str>) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get("endpoint") == endpoint)
        .unwrap_or_else(|| panic!("no {metric} for {endpoint:?} in {:#?}", scrape.samples));
    match sample.value {
        Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{metric} is {other:?}"),
    }
}

#[test]
fn status_is_critical_while_an_endpoint_is_refused_and_ok_after_the_operator_accepted() {
    let env = Env::new();
    let port = free_port();
    let old = prime_cert("prime-sec");
    let new = prime_cert("prime-sec");
    let (old_file, _) = env.write_cert("old", &old);
    let (new_file, new_key) = env.write_cert("new", &new);
    let server = TlsServer::start(&new_file, &new_key, port);
    let endpoint = server.endpoint();
    let host_port = format!("127.0.0.1_{port}");
    let s = env.store_arg();
    env.run(&["addcert", "host", &endpoint, "--cert", &old_file])
        .success();
    env.run(&["status"]).success().stdout(
        "TOFU-CERTS OK - 1 pin, none refusing connections or expiring within 30 days | failing=0 expiring=0 shared_keys=0 report_only=0 pins=1\n",
    );

    // The peer was redeployed with a new key: two refused connections.
    env.run(&["probe", "host", &endpoint]).code(4);
    env.run(&["probe", "host", &endpoint]).code(4);
    let fp = new.fingerprint();
    env.run(&["status"]).code(2).stderr("").stdout(&format!(
        "TOFU-CERTS CRITICAL - 1 endpoint refusing connections | failing=1 expiring=0 shared_keys=0 report_only=0 pins=1
critical: {endpoint} refused 2 handshakes since [..] (the latest at [..]), presenting {fp}; `tofu-certs showcert host {host_port}{s}` shows what changed, `tofu-certs accept host {host_port} --fingerprint {fp}{s}` trusts it if the change is expected
"
    ));

    let metrics = env.run(&["status", "--format", "prometheus"]);
    metrics.code(2);
    let m = scrape(&metrics.stdout);
    assert_eq!(gauge(&m, "tofu_certs_status", None), 2.0);
    assert_eq!(gauge(&m, "tofu_certs_pins", None), 1.0);
    assert_eq!(gauge(&m, "tofu_certs_endpoints_failing", None), 1.0);
    assert_eq!(
        gauge(&m, "tofu_certs_endpoint_refusals", Some(&endpoint)),
        2.0
    );
    let since = gauge(
        &m,
        "tofu_certs_endpoint_failing_since_seconds",
        Some(&endpoint),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - since).abs() < 600.0, "{since} vs {now}");

    let json = env.run(&["status", "--format", "json"]);
    json.code(2);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["severity"], "critical");
    assert_eq!(doc["exit_status"], 2);
    assert_eq!(doc["failing"][0]["endpoint"], endpoint.as_str());
    assert_eq!(doc["failing"][0]["count"], 2);
    assert_eq!(doc["failing"][0]["last_presented"], fp.as_str());
    assert_eq!(doc["failing"][0]["pinned"][0], old.fingerprint().as_str());

    // The operator confirms the change: OK again, and the next connection matches.
    env.run(&["accept", "host", &host_port, "--fingerprint", &fp])
        .success();
    env.run(&["status"])
        .success()
        .stdout("TOFU-CERTS OK - [..]\n");
    let m = scrape(&env.run(&["status", "--format", "prometheus"]).stdout);
    assert_eq!(gauge(&m, "tofu_certs_status", None), 0.0);
    assert_eq!(gauge(&m, "tofu_certs_endpoints_failing", None), 0.0);
    env.run(&["probe", "host", &endpoint]).success();
}

#[test]
fn expiring_pins_and_a_key_on_two_hosts_are_warnings() {
    let env = Env::new();
    let cert = prime_cert("prime-pri");
    let (file, _) = env.write_cert("pri", &cert);
    env.run(&["addcert", "host", "10.1.1.1:8082", "--cert", &file])
        .success();
    // The same host on another port is the same machine: nothing to report.
    env.run(&["addcert", "host", "10.1.1.1:443", "--cert", &file])
        .success();
    env.run(&["status"]).success();

    // The certificates expire on 2045-01-02: within a century, not within 30 days.
    let fp = cert.fingerprint();
    env.run(&["status", "--expiring", "36000d"])
        .code(1)
        .stdout(&format!(
            "TOFU-CERTS WARNING - 2 pins expiring within 36000 days | failing=0 expiring=2 shared_keys=0 report_only=0 pins=2
warning: 10.1.1.1:443 pins {fp} ({PRIME_SUBJECT}), which expires 2045-01-02T00:00:00Z
warning: 10.1.1.1:8082 pins {fp} ({PRIME_SUBJECT}), which expires 2045-01-02T00:00:00Z
"
        ));
    let m = scrape(
        &env.run(&["status", "--expiring", "36000d", "--format", "prometheus"])
            .stdout,
    );
    assert_eq!(gauge(&m, "tofu_certs_status", None), 1.0);
    let left = gauge(&m, "tofu_certs_pin_expiry_seconds", Some("10.1.1.1:8082"));
    assert!(left > 10.0 * 365.0 * 86_400.0, "{left}");

    // Another host with the same key: a cloned image, or a vendor's default key.
    env.run(&["addcert", "host", "prime-sec.example:8082", "--cert", &file])
        .success();
    env.run(&["status"]).code(1).stdout(
        "TOFU-CERTS WARNING - 1 public key pinned on more than one host | failing=0 expiring=0 shared_keys=1 report_only=0 pins=3
warning: public key SHA256:[..] is pinned for endpoints on different hosts: 10.1.1.1:443, 10.1.1.1:8082, prime-sec.example:8082; one key on several machines is a cloned image or a vendor's default key
",
    );
}

#[test]
fn a_store_that_cannot_be_read_or_a_wrong_argument_is_unknown() {
    let env = Env::new();
    env.run(&["status"])
        .code(3)
        .stderr("error: no pin store at [..]\nhint: [..]\n");
    env.run(&["status", "--expiring", "5m"])
        .code(3)
        .stderr("error: invalid value '5m' for '--expiring <DURATION>': \"5m\" is not a duration; [..]\n...");
    env.run(&["status", "--format", "nagios"]).code(3);
}

#[test]
fn report_only_lets_a_changed_certificate_through_and_nobody_can_miss_it() {
    let env = Env::new();
    let port = free_port();
    let old = prime_cert("prime-sec");
    let new = prime_cert("prime-sec");
    let (old_file, _) = env.write_cert("old", &old);
    let (new_file, new_key) = env.write_cert("new", &new);
    let _server = TlsServer::start(&new_file, &new_key, port);
    let endpoint = format!("127.0.0.1:{port}");
    let host_port = format!("127.0.0.1_{port}");
    let s = env.store_arg();
    env.run(&["addcert", "host", &endpoint, "--cert", &old_file])
        .success();
    env.run(&["probe", "host", &endpoint]).code(4);

    env.run(&["mode", "host", &host_port, "report-only"])
        .success()
        .stdout(&format!(
            "report-only: {endpoint} is in report-only mode: a certificate matching none of its pins is recorded and reported, and the connection proceeds; `tofu-certs mode host {host_port} enforce{s}` refuses them again\n"
        ));
    // Every command that touches the endpoint says so; the listing too, after it.
    for args in [
        vec!["showcert", "host", &endpoint],
        vec!["listcerts"],
        vec!["listcerts", "--format", "json"],
    ] {
        let run = env.run(&args);
        assert_eq!(run.code, 0, "{args:?}: {run:#?}");
        assert!(
            run.stderr
                .contains(&format!("warning: {endpoint} is in report-only mode")),
            "{args:?}: {}",
            run.stderr
        );
    }
    // A probe says what enforcing decides (a mismatch, status 4), and that the mode is on.
    let probed = env.run(&["probe", "host", &endpoint]);
    probed.code(4);
    assert!(
        probed.stderr.contains("is in report-only mode"),
        "{}",
        probed.stderr
    );
    let shown = env.run(&["showcert", "host", &endpoint, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert!(doc["report_only"]["since"].is_string(), "{doc}");

    // status: a warning, not critical: in report-only mode nothing is refused; the
    // refusals it recorded are listed with the mode.
    env.run(&["status"]).code(1).stdout(&format!(
        "TOFU-CERTS WARNING - 1 endpoint in report-only mode | failing=0 expiring=0 shared_keys=0 report_only=1 pins=1
warning: {endpoint} in report-only mode let through or refused 2 handshakes since [..]
warning: {endpoint} is in report-only mode since [..] (set by [..]): certificates matching none of its pins are let through; `tofu-certs mode host {host_port} enforce{s}` refuses them again
"
    ));
    let m = scrape(&env.run(&["status", "--format", "prometheus"]).stdout);
    assert_eq!(
        gauge(&m, "tofu_certs_endpoint_report_only", Some(&endpoint)),
        1.0
    );

    env.run(&["mode", "host", &endpoint, "enforce"])
        .success()
        .stdout(&format!(
            "enforce: {endpoint} refuses certificates that match none of its pins again\n"
        ));
    env.run(&["mode", "host", &endpoint, "enforce"])
        .success()
        .stdout("unchanged: [..]\n");
    env.run(&["log", "host", &endpoint])
        .success()
        .stdout("...\n[..]report-only[..]\n[..]enforce[..]\n");
    env.run(&["status"])
        .code(2)
        .stdout("TOFU-CERTS CRITICAL - 1 endpoint refusing connections | [..]\n...");
}

//! probe against real `openssl s_server` processes on loopback ports.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn pin_rotate_mismatch_accept_match_against_a_real_server() {
    let env = Env::new();
    let port = free_port();
    let first = prime_cert("prime-pri");
    let (cert, key) = env.write_cert("first", &first);
    let server = TlsServer::start(&cert, &key, port);
    let endpoint = server.endpoint();
    let host_port = format!("127.0.0.1_{port}");
    let s = env.store_arg();

    // Strict by default: an endpoint that is not pinned is refused (status 5). The store does
    // not exist yet: probe without --pin only reads, so it says so.
    env.run(&["probe", "host", &endpoint])
        .code(1)
        .stderr("error: no pin store at [..]\nhint: [..]\n");
    env.pin("10.1.1.1:8082", &prime_cert("unrelated"));
    env.run(&["probe", "host", &endpoint]).code(5).stdout("").stderr(&format!(
        "error: {endpoint} is not pinned, and this connection accepts only pinned certificates (strict policy).

  presented  subject      {PRIME_SUBJECT}
             fingerprint  {fp}
             not after    2045-01-02T00:00:00Z

To pin exactly this certificate, after checking its fingerprint with the server's administrator:
    tofu-certs accept host {endpoint} --fingerprint {fp}{s}
or pin a certificate file you trust:
    tofu-certs addcert host {endpoint} --cert FILE{s}
hint: `tofu-certs accept host {endpoint} --fingerprint {fp}{s}` pins exactly the presented certificate, once the server's administrator confirmed its fingerprint
",
        fp = first.fingerprint()
    ));

    // --pin: trust on first use. The certificate the strict probe quarantined is pinned now,
    // so it is no longer listed as quarantined.
    env.run(&["probe", "host", &host_port, "--pin"])
        .success()
        .stdout(&format!(
            "pinned: {endpoint} is now pinned to {} ({PRIME_SUBJECT})\n",
            first.fingerprint()
        ));
    env.run(&["listcerts", "--quarantined"])
        .success()
        .stdout("");
    env.run(&["probe", "host", &endpoint])
        .success()
        .stdout(&format!(
            "match: {endpoint} presented its pinned certificate {} ({PRIME_SUBJECT})\n",
            first.fingerprint()
        ));

    // The server's certificate is regenerated (same subject, new key): a mismatch, status 4,
    // with the whole message of the verifier, and the certificate kept in quarantine.
    server.stop();
    let second = prime_cert("prime-pri");
    let (cert2, key2) = env.write_cert("second", &second);
    let _server = TlsServer::start(&cert2, &key2, port);
    // Without --pin the policy is strict, and deleting the pin alone would leave the endpoint
    // refused: the message says to replace it.
    let strict = "Certificate pinning is configured for this connection. Current certificate of the remote host is different from what was used earlier - CN=prime-pri";
    let strict_fix = format!(
        "or replace the pin by a certificate file you trust:
    tofu-certs deletecert host {host_port}{s}
    tofu-certs addcert host {endpoint} --cert FILE{s}"
    );
    let tofu = "Trust-on-first-use is configured for this connection. Current certificate of the remote host is different from what was used earlier - CN=prime-pri";
    let tofu_fix = format!(
        "or delete the pin, and the next connection pins what the server presents:
    tofu-certs deletecert host {host_port}{s}"
    );
    for (policy, configured, fix) in [
        (&[][..], strict, &strict_fix),
        (&["--pin"][..], tofu, &tofu_fix),
    ] {
        let mut args = vec!["probe", "host", &endpoint];
        args.extend_from_slice(policy);
        // The verifier's own log of the refusal comes first (the library logs it for services,
        // which may not print the error), then the command's error.
        env.run(&args).code(4).stdout("").stderr(&format!(
            "warning: refused {endpoint}: it presented {new} ({PRIME_SUBJECT}), which matches none of its pins
error: the certificate presented by {endpoint} does not match the certificate pinned for it.
{configured}

  pinned     subject      {PRIME_SUBJECT}
             fingerprint  {old}
             not after    2045-01-02T00:00:00Z
             pinned at    20[..]Z (first-use)
  presented  subject      {PRIME_SUBJECT}
             fingerprint  {new}
             not after    2045-01-02T00:00:00Z

What changed: the key. The certificate has a new public key under the same subject and issuer as the pinned one: a re-keyed server, or someone imitating it; treat it as suspicious until the server's administrator confirms a new key.

Either someone is intercepting this connection (a man-in-the-middle attack), or the server's certificate was changed legitimately (a new CSR, a redeployed server, an HA re-registration). Confirm with the server's administrator which it is before trusting the new certificate.

If the change is legitimate, accept exactly the presented certificate:
    tofu-certs accept host {endpoint} --fingerprint {new}{s}
{fix}
hint: `tofu-certs showcert host {endpoint}{s}` shows the pinned and the quarantined certificates side by side
",
            old = first.fingerprint(),
            new = second.fingerprint(),
        ));
    }
    env.run(&["listcerts", "--quarantined"])
        .success()
        .stdout(&format!("host={host_port};  subject= {PRIME_SUBJECT}\n"));

    // Accept exactly the presented certificate, by fingerprint: then it matches.
    env.run(&["accept", "host", &endpoint, "--fingerprint", &second.fingerprint()])
        .success()
        .stdout(&format!(
            "accepted {} ({PRIME_SUBJECT}): it is now the pin of {endpoint}\nretired {} ({PRIME_SUBJECT})\n",
            second.fingerprint(),
            first.fingerprint()
        ));
    env.run(&["probe", "host", &endpoint])
        .success()
        .stdout(&format!(
            "match: {endpoint} presented its pinned certificate {} ({PRIME_SUBJECT})\n",
            second.fingerprint()
        ));
    env.run(&["log", "host", &host_port]).success().stdout(
        "[..]  unpinned-rejected  [..]
[..]  pinned  [..]
[..]  mismatch-rejected  [..]
[..]  retired  [..]
[..]  accepted  [..] (was [..])  [..]
",
    );
    // Every handshake that presented the certificate was counted: the two refused while it
    // was quarantined (accept keeps the count), and the one that matched.
    let json = env.run(&["listcerts", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let pin = doc["pins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["host_port"] == host_port.as_str())
        .unwrap();
    assert_eq!(pin["times_seen"], 3, "{pin}");
}

#[test]
fn a_staged_certificate_is_promoted_when_the_server_presents_it() {
    let env = Env::new();
    let port = free_port();
    let (old, new) = (prime_cert("prime-pri"), prime_cert("prime-pri"));
    let endpoint = format!("127.0.0.1:{port}");
    env.pin(&endpoint, &old);
    let (cert, key) = env.write_cert("new", &new);
    env.run(&["addcert", "host", &endpoint, "--cert", &cert, "--next"])
        .success();
    let _server = TlsServer::start(&cert, &key, port);
    env.run(&["probe", "host", &endpoint]).success().stdout(&format!(
        "promoted: {endpoint} presented its staged certificate {} ({PRIME_SUBJECT}), which is now its pin\n",
        new.fingerprint()
    ));
    env.run(&["probe", "host", &endpoint])
        .success()
        .stdout("match: [..]\n");
}

#[test]
fn sni_is_sent_but_the_pins_stay_those_of_the_endpoint() {
    let env = Env::new();
    let port = free_port();
    let cert = prime_cert("prime-pri");
    let (file, key) = env.write_cert("c", &cert);
    let _server = TlsServer::start(&file, &key, port);
    let endpoint = format!("127.0.0.1:{port}");
    env.run(&[
        "probe",
        "host",
        &endpoint,
        "--pin",
        "--sni",
        "prime-pri.example.com",
    ])
    .success()
    .stdout(&format!("pinned: {endpoint} is now pinned to [..]\n"));
    env.run(&["listcerts"]).success().stdout(&format!(
        "host=127.0.0.1_{port};  subject= {PRIME_SUBJECT}\n"
    ));
    env.run(&["probe", "host", &endpoint, "--sni", "not a name"])
        .code(2)
        .stderr("error: invalid value 'not a name' for '--sni <NAME>': \"not a name\" is not a valid TLS server name\n\nFor more information, try '--help'.\n");
}

#[test]
fn a_silent_server_times_out_and_a_closed_port_fails() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("unrelated"));
    // Accepts TCP connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let started = Instant::now();
    env.run(&["probe", "host", &silent, "--timeout", "300ms"])
        .code(1)
        .stderr(&format!(
            "error: {silent} did not complete the TLS handshake within 0.3 s
hint: `--timeout SECS` waits longer than 0.3 s
"
        ));
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);

    let closed = format!("127.0.0.1:{}", free_port());
    env.run(&["probe", "host", &closed])
        .code(1)
        .stderr(&format!(
            "error: cannot connect to {closed}: Connection refused (os error 111)
hint: nothing listens on {closed}: check the address and port, and that the server runs
"
        ));
}

#[test]
fn probe_from_a_list_reports_each_endpoint_and_the_worst_status() {
    let env = Env::new();
    let (a, b) = (prime_cert("prime-a"), prime_cert("prime-b"));
    let (a_file, a_key) = env.write_cert("a", &a);
    let (b_file, b_key) = env.write_cert("b", &b);
    let server_a = TlsServer::start(&a_file, &a_key, free_port());
    let server_b = TlsServer::start(&b_file, &b_key, free_port());
    let closed = format!("127.0.0.1:{}", free_port());

    // Pin both servers with one --from --pin, fed the list on standard input.
    let list = format!(
        "# the HA pair\n{}\nhost {}   # secondary\n\n{}\n",
        server_a.endpoint(),
        server_b.endpoint(),
        server_a.endpoint()
    );
    let cmd = env.command(&["probe", "--from", "-", "--pin", "--jobs", "2"]);
    let run = run_with_stdin(cmd, list.as_bytes());
    run.code(0)
        .stdout(&format!(
            "pinned      {}  {}  [..]CN=prime-a\npinned      {}  {}  [..]CN=prime-b\n",
            server_a.endpoint(),
            a.fingerprint(),
            server_b.endpoint(),
            b.fingerprint()
        ))
        .stderr(&format!(
            "warning: standard input line 5: {} is listed already, on line 2; it is probed once\nprobed 2 endpoints: 2 pinned\n",
            server_a.endpoint()
        ));

    // listcerts's own output is a list probe reads.
    let listing = env.run(&["listcerts"]);
    let file = env.write("pinned.txt", &listing.stdout);
    env.run(&["probe", "--from", &file])
        .code(0)
        .stdout("match       [..]\nmatch       [..]\n")
        .stderr("probed 2 endpoints: 2 match\n");

    // A closed port fails (1), an unpinned endpoint is reported (5), a mismatch wins (4).
    let unpinned = env.write(
        "unpinned.txt",
        format!("{}\n{}\n", server_a.endpoint(), "127.0.0.1:1"),
    );
    env.run(&["deletecert", "host", &server_a.endpoint()])
        .success();
    // The endpoint column is as wide as the widest endpoint, so what follows lines up.
    let pad = " ".repeat(server_a.endpoint().len() - "127.0.0.1:1".len());
    env.run(&["probe", "--from", &unpinned, "--timeout", "2"])
        .code(1)
        .stdout(&format!(
            "not-pinned  {}  {}  [..]\nfailed      127.0.0.1:1{pad}  cannot connect to [..]\n",
            server_a.endpoint(),
            a.fingerprint()
        ))
        .stderr("probed 2 endpoints: 1 not-pinned, 1 failed\n");
    let only_unpinned = env.write("only.txt", format!("{}\n", server_a.endpoint()));
    env.run(&["probe", "--from", &only_unpinned])
        .code(5)
        .stderr("probed 1 endpoint: 1 not-pinned\n");

    let b_endpoint = server_b.endpoint();
    server_b.stop();
    let other = prime_cert("prime-b");
    let (o_file, o_key) = env.write_cert("other", &other);
    let port_b: u16 = b_endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let _server_b = TlsServer::start(&o_file, &o_key, port_b);
    let mixed = env.write("mixed.txt", format!("{b_endpoint}\n{closed}\n"));
    let run = env.run(&["probe", "--from", &mixed, "--timeout", "2"]);
    run.code(4).stdout(&format!(
        "mismatch    {b_endpoint}  {}  [..]CN=prime-b  (pinned: {})\nfailed      {closed}  cannot connect to [..]\n",
        other.fingerprint(),
        b.fingerprint()
    ));
    assert!(run.stderr.starts_with(&format!(
        "warning: refused {b_endpoint}: it presented {} (/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-b), which matches none of its pins\nerror: the certificate presented by {b_endpoint} does not match the certificate pinned for it.\n",
        other.fingerprint()
    )), "{}", run.stderr);
    assert!(run.stderr.ends_with(&format!(
        "probed 2 endpoints: 1 mismatch, 1 failed\nhint: `tofu-certs listcerts --quarantined --format table{}` lists the endpoints with quarantined certificates\n",
        env.store_arg()
    )));

    // A line that is not an endpoint is reported, and the rest of the list is probed.
    let bad = env.write("bad.txt", format!("https://example.com\n{closed}\n"));
    env.run(&["probe", "--from", &bad, "--timeout", "2"])
        .code(1)
        .stdout(&format!("failed      {closed}  cannot connect to [..]\n"))
        .stderr(&format!(
            "error: {bad} line 1: \"https://example.com\" is not an endpoint: it is a URL; give host:port without the `https://` scheme, for example example.com:443\nhint: [..]\nprobed 1 endpoint: 1 failed; 1 line not an endpoint, skipped\n"
        ));
}

/// Regression: one malformed line stopped `probe --from` before any probe, and an endpoint
/// listed twice was dropped without a word.
#[test]
fn probe_from_reports_bad_lines_and_repeats_and_probes_the_rest_in_aligned_columns() {
    let env = Env::new();
    let a = prime_cert("prime-a");
    let (a_file, a_key) = env.write_cert("a", &a);
    let server = TlsServer::start(&a_file, &a_key, free_port());
    let port = server.port;
    let ip = format!("127.0.0.1:{port}");
    // Narrower than the server's endpoint, and nothing listens there.
    let closed = "127.0.0.1:1";
    let list = env.write(
        "list.txt",
        format!("{ip}\nnot an endpoint at all\n127.0.0.1_{port}   # the same, as listcerts writes it\n{closed}\n127.0.0.1:99999\n"),
    );
    let run = env.run(&["probe", "--from", &list, "--pin", "--timeout", "2"]);
    run.code(1)
        .stderr(&format!(
            "error: {list} line 2: [..]
warning: {list} line 3: {ip} is listed already, on line 1; it is probed once
error: {list} line 5: [..]
hint: give one endpoint per line, such as 10.1.1.1:8082 or 10.1.1.1_8082, and fix or remove the lines above; the rest of the list is probed
probed 2 endpoints: 1 pinned, 1 failed; 2 lines not an endpoint, skipped
"
        ))
        .stdout(&format!(
            "pinned      {ip}  {fp}  [..]CN=prime-a\nfailed      {closed}{pad}  cannot connect to [..]\n",
            fp = a.fingerprint(),
            pad = " ".repeat(ip.len() - closed.len()),
        ));
    // What follows the endpoint starts in the same column on every line.
    let detail = 12 + ip.len() + 2;
    for line in run.stdout.lines() {
        assert!(
            line.len() > detail && &line[detail - 2..detail] == "  ",
            "{line}"
        );
        assert_ne!(&line[detail..=detail], " ", "{line}");
    }

    // The same, one JSON object per line.
    let run = env.run(&[
        "probe",
        "--from",
        &list,
        "--format",
        "JSON",
        "--timeout",
        "2",
    ]);
    run.code(1);
    let objects: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 2, "{}", run.stdout);
    assert_eq!(objects[0]["version"], 1);
    assert_eq!(objects[0]["endpoint"], ip.as_str());
    assert_eq!(objects[0]["outcome"], "match");
    assert_eq!(objects[0]["certificate"]["fingerprint"], a.fingerprint());
    assert_eq!(objects[0]["error"], serde_json::Value::Null);
    assert_eq!(objects[1]["endpoint"], closed);
    assert_eq!(objects[1]["outcome"], "failed");
    assert_eq!(objects[1]["certificate"], serde_json::Value::Null);
    assert!(objects[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("cannot connect to"));
    drop(server);
}

#[test]
fn probe_prints_its_outcome_as_json() {
    let env = Env::new();
    let (a, other) = (prime_cert("prime-a"), prime_cert("prime-a"));
    let (a_file, a_key) = env.write_cert("a", &a);
    let server = TlsServer::start(&a_file, &a_key, free_port());
    let endpoint = server.endpoint();
    let parse = |run: &Run| -> serde_json::Value {
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:#?}"))
    };

    // A store, so that a strict probe of an unpinned endpoint finds one.
    env.pin("10.9.9.9:1", &prime_cert("elsewhere"));
    let run = env.run(&["probe", "host", &endpoint, "--format", "json"]);
    run.code(5);
    assert!(run.stderr.contains("error: "), "{}", run.stderr);
    let doc = parse(&run);
    assert_eq!(doc["outcome"], "not-pinned");
    assert_eq!(doc["certificate"]["fingerprint"], a.fingerprint());
    assert_eq!(doc["quarantined"], true);

    let run = env.run(&["probe", "host", &endpoint, "--pin", "--format", "json"]);
    run.success();
    let doc = parse(&run);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["endpoint"], endpoint.as_str());
    assert_eq!(doc["outcome"], "pinned");
    assert_eq!(
        doc["certificate"]["subject"],
        "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-a"
    );
    assert_eq!(doc["pinned"], serde_json::json!([]));

    let port = server.port;
    server.stop();
    let (o_file, o_key) = env.write_cert("other", &other);
    let server = TlsServer::start(&o_file, &o_key, port);
    let run = env.run(&["probe", "host", &endpoint, "--format", "json"]);
    run.code(4);
    let doc = parse(&run);
    assert_eq!(doc["outcome"], "mismatch");
    assert_eq!(doc["certificate"]["fingerprint"], other.fingerprint());
    assert_eq!(doc["pinned"][0]["fingerprint"], a.fingerprint());
    assert_eq!(doc["quarantined"], true);
    assert!(
        run.stderr
            .contains("does not match the certificate pinned for it"),
        "{}",
        run.stderr
    );

    server.stop();
    let run = env.run(&[
        "probe",
        "host",
        &endpoint,
        "--format",
        "json",
        "--timeout",
        "2",
    ]);
    run.code(1);
    let doc = parse(&run);
    assert_eq!(doc["outcome"], "failed");
    assert_eq!(doc["certificate"], serde_json::Value::Null);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect to"),
        "{doc}"
    );
}

#[test]
fn an_unpinned_endpoint_refused_by_a_strict_probe_is_accepted_by_fingerprint() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("unrelated"));
    let cert = prime_cert("prime-pri");
    let (file, key) = env.write_cert("c", &cert);
    let server = TlsServer::start(&file, &key, free_port());
    let endpoint = server.endpoint();
    let (fp, s) = (cert.fingerprint(), env.store_arg());

    // Refused twice: the certificate is quarantined once, counted twice, audited once.
    for _ in 0..2 {
        env.run(&["probe", "host", &endpoint]).code(5).stdout("");
    }
    let show = env.run(&["showcert", "host", &endpoint]);
    show.success();
    assert!(
        show.stdout.contains(&format!(
            "\nquarantined certificate (presented, matched no pin, not trusted)\n  fingerprint       {fp}\n"
        )),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("\n  times seen        2\n"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains(&format!(
            "\n  to trust it       tofu-certs accept host {endpoint} --fingerprint {fp}{s}\n"
        )),
        "{}",
        show.stdout
    );
    env.run(&["log", "host", &endpoint])
        .success()
        .stdout(&format!(
            "[..]  unpinned-rejected  {fp}  {PRIME_SUBJECT}  by [..]\n"
        ));

    // What the message recommends pins exactly that certificate; then it matches.
    env.run(&["accept", "host", &endpoint, "--fingerprint", &fp])
        .success()
        .stdout(&format!(
            "accepted {fp} ({PRIME_SUBJECT}): it is now the pin of {endpoint}\n"
        ));
    env.run(&["probe", "host", &endpoint])
        .success()
        .stdout(&format!(
            "match: {endpoint} presented its pinned certificate {fp} ({PRIME_SUBJECT})\n"
        ));
}

/// Regression: a store that could not be read was reported as a network failure, with the
/// hint to check the address and port.
#[test]
fn a_store_that_fails_is_reported_as_a_store_error_not_a_network_one() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("unrelated"));
    // Nothing listens there, and nothing should try: the store fails first.
    let endpoint = format!("127.0.0.1:{}", free_port());
    let db = rusqlite::Connection::open(env.store().join(tofu_core::store::DATABASE_FILE)).unwrap();
    db.execute(
        "INSERT INTO quarantine (endpoint, fingerprint, der, first_seen, last_seen, times_seen) \
         VALUES (?1, zeroblob(32), x'00', 0, 0, 1)",
        [&endpoint],
    )
    .unwrap();
    drop(db);

    for pin in [&[][..], &["--pin"][..]] {
        let mut args = vec!["probe", "host", &endpoint];
        args.extend_from_slice(pin);
        let run = env.run(&args);
        run.code(1)
            .stdout("")
            .stderr("error: the pin store [..]\nhint: [..]\n");
        assert!(!run.stderr.contains("listen"), "{}", run.stderr);
        assert!(!run.stderr.contains("timeout"), "{}", run.stderr);
    }

    let list = env.write("list.txt", format!("{endpoint}\n"));
    let run = env.run(&["probe", "--from", &list]);
    run.code(1)
        .stdout(&format!("failed      {endpoint}  the pin store [..]\n"))
        .stderr("probed 1 endpoint: 1 failed\nhint: [..]\n");
}

#[test]
fn a_timeout_is_at_least_a_millisecond() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("unrelated"));
    for bad in ["0", "0ms", "0.0005", "0.5ms", "-1", "nan", "2d"] {
        env.run(&["probe", "host", "127.0.0.1:1", &format!("--timeout={bad}")])
            .code(2)
            .stderr(&format!(
                "error: invalid value '{bad}' for '--timeout <SECS>': expected a time from 1ms to a day, such as 10, 2.5, 10s or 500ms\n\nFor more information, try '--help'.\n"
            ));
    }
    // A millisecond is a timeout like any other: against a server that never answers, the
    // probe gives up (status 1), it is not refused as a usage error.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    env.run(&["probe", "host", &silent, "--timeout", "1ms"])
        .code(1)
        .stderr("error: [..]\nhint: `--timeout SECS` waits longer than 0.001 s\n");
}

/// Issue 11, item 8: tofu-core's warnings (here: "the certificate pinned for … expired",
/// which the verifier logs when an expired pin is presented) were dropped, because the
/// command installed no logger. They reach stderr as `warning:` lines; `-q` hides them, `-v`
/// adds information, RUST_LOG chooses when no flag does.
#[test]
fn library_warnings_reach_stderr_and_quiet_hides_them() {
    let env = Env::new();
    let mut params = rcgen::CertificateParams::new(vec!["prime-pri".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 2);
    params.not_after = rcgen::date_time_ymd(2020, 1, 2);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let expired = TestCert {
        der: cert.der().clone(),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    let (cert_file, key_file) = env.write_cert("expired", &expired);
    let server = TlsServer::start(&cert_file, &key_file, free_port());
    let endpoint = server.endpoint();
    env.run(&["addcert", "host", &endpoint, "--cert", &cert_file])
        .code(0);
    let fp = expired.fingerprint();
    let matched = format!(
        "match: {endpoint} presented its pinned certificate {fp} (/CN=rcgen self signed cert)\n"
    );
    let warning = format!(
        "warning: the certificate pinned for {endpoint} ({fp}) expired at 2020-01-02T00:00:00Z; it is still accepted because trust-on-first-use trusts the identity, not the dates\n"
    );

    env.run(&["probe", "host", &endpoint])
        .code(0)
        .stdout(&matched)
        .stderr(&warning);
    env.run(&["-q", "probe", "host", &endpoint])
        .success()
        .stdout(&matched);
    env.run(&["probe", "host", &endpoint, "--quiet"])
        .success()
        .stdout(&matched);
    let mut cmd = env.command(&["probe", "host", &endpoint]);
    cmd.env("RUST_LOG", "error");
    Run::from(cmd.output().unwrap()).success().stdout(&matched);
    let mut cmd = env.command(&["-q", "probe", "host", &endpoint]);
    cmd.env("RUST_LOG", "debug");
    Run::from(cmd.output().unwrap()).success().stdout(&matched);
    // -vv: debug lines too, each labelled and on one line.
    let run = env.run(&["-vv", "probe", "host", &endpoint]);
    run.code(0).stdout(&matched);
    assert!(run.stderr.contains(&warning), "{}", run.stderr);
    assert!(
        run.stderr.lines().any(|l| l.starts_with("debug: ")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .all(|l| l.split_once(": ").is_some_and(|(label, _)| {
                ["error", "warning", "info", "debug", "trace"].contains(&label)
                    || label.starts_with("debug ")
                    || label.starts_with("trace ")
            })),
        "{}",
        run.stderr
    );
    env.run(&["-q", "-v", "listcerts"]).code(2);

    // A closed standard error, and one whose reader is gone (`2>&1 >FILE | :`), lose the
    // warning but not the command.
    let out = env.path("out.txt");
    for (inner, outer) in [("2>&-", ""), ("", "2>&1 | :")] {
        let redirect = format!("{inner}{outer}");
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "{{ \"$0\" --store \"$1\" probe host \"$2\" >\"$3\" {inner}; echo $? >\"$3.status\"; }} {outer}"
            ))
            .arg(BIN)
            .arg(env.store())
            .arg(&endpoint)
            .arg(&out);
        let run = Run::from(cmd.output().unwrap());
        assert_eq!(run.code, 0, "{redirect}: {run:#?}");
        let status = std::fs::read_to_string(env.path("out.txt.status")).unwrap();
        assert_eq!(status, "0\n", "{redirect}");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            matched,
            "{redirect}"
        );
    }
}

/// `openssl x509 -fingerprint -sha256` of FILE, in our notation.
fn sha256_of(dir: &std::path::Path, file: &str) -> tofu_core::Fingerprint {
    openssl_in(
        dir,
        &["x509", "-in", file, "-noout", "-fingerprint", "-sha256"],
    )
    .parse()
    .expect("openssl's fingerprint parses")
}

#[test]
fn a_renewal_with_the_same_key_matches_a_key_pin_and_is_refused_by_a_certificate_pin() {
    let env = Env::new();
    let dir = env.dir.path();
    openssl_in(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "key.pem",
        ],
    );
    let req = |days: &str, out: &str| {
        openssl_in(
            dir,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                "key.pem",
                "-subj",
                "/CN=prime-sec",
                "-days",
                days,
                "-out",
                out,
            ],
        )
    };
    req("365", "old.pem");
    // The renewal: a new certificate for the same key, valid longer.
    req("730", "new.pem");
    let (old, new) = (sha256_of(dir, "old.pem"), sha256_of(dir, "new.pem"));
    assert_ne!(old, new);
    let path = |f: &str| dir.join(f).to_str().unwrap().to_owned();

    let (key_port, cert_port) = (free_port(), free_port());
    let key_ep = format!("127.0.0.1:{key_port}");
    let cert_ep = format!("127.0.0.1:{cert_port}");
    env.run(&["addcert", "host", &key_ep, "--cert", &path("old.pem"), "--match", "key"])
        .success()
        .stdout("pinned [..] to [..]\nthe pin matches the public key SHA256:[..]: a certificate renewed with it is accepted too\n");
    env.run(&["addcert", "host", &cert_ep, "--cert", &path("old.pem")])
        .success();
    let table = env.run(&["listcerts", "--format", "table"]);
    let lines: Vec<&str> = table.success().stdout.lines().collect();
    assert!(lines[0].starts_with("ENDPOINT"), "{lines:?}");
    let words = |ep: &str| -> Vec<String> {
        let line = lines.iter().find(|l| l.starts_with(ep)).expect("listed");
        line.split_whitespace().map(str::to_owned).collect()
    };
    let column = |ep: &str| -> String {
        // ENDPOINT STATE FINGERPRINT NOT-AFTER DAYS FIRST LAST SEEN SOURCE MATCH ...
        let w = words(ep);
        format!("{} {}", w[1], w[9])
    };
    assert!(lines[0].contains("SOURCE    MATCH"), "{lines:?}");
    assert_eq!(column(&key_ep), "active key");
    assert_eq!(column(&cert_ep), "active certificate");

    let servers = [
        TlsServer::start(&path("old.pem"), &path("key.pem"), key_port),
        TlsServer::start(&path("old.pem"), &path("key.pem"), cert_port),
    ];
    for ep in [&key_ep, &cert_ep] {
        env.run(&["probe", "host", ep])
            .success()
            .stdout("match: [..]\n");
    }
    drop(servers);
    let _servers = [
        TlsServer::start(&path("new.pem"), &path("key.pem"), key_port),
        TlsServer::start(&path("new.pem"), &path("key.pem"), cert_port),
    ];

    env.run(&["probe", "host", &key_ep]).success().stdout(&format!(
        "renewed: {key_ep} presented {new} (/CN=prime-sec), a renewal with its pinned public key SHA256:[..]; the pin now holds it\n"
    ));
    // Recorded: the pin holds the new certificate, and the log says it was a renewal.
    let listed = env.run(&["listcerts", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&listed.success().stdout).unwrap();
    let pins = doc["pins"].as_array().expect("a list of pins");
    let key_pin = pins
        .iter()
        .find(|p| p["endpoint"] == key_ep.as_str())
        .expect("the key pin is listed");
    assert_eq!(key_pin["match"], "key");
    assert_eq!(key_pin["fingerprint"], new.to_string());
    assert!(key_pin["first_seen"].is_string());
    env.run(&["log", "host", &key_ep])
        .success()
        .stdout(&format!(
            "[..]added[..]{old}[..]\n[..]renewed[..]{new}[..]\n"
        ));
    env.run(&["probe", "host", &key_ep])
        .success()
        .stdout("match: [..]\n");

    // The certificate pin refuses the same renewal: status 4, the pin unchanged, and the
    // refusal says that only the certificate changed, not the key.
    let refused = env.run(&["probe", "host", &cert_ep, "--format", "json"]);
    refused.code(4);
    assert!(
        refused
            .stderr
            .contains("What changed: the certificate, not the key"),
        "{}",
        refused.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&refused.stdout).unwrap();
    assert_eq!(doc["outcome"], "mismatch");
    assert_eq!(doc["change"], "same-key");
    let listed = env.run(&["listcerts", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&listed.success().stdout).unwrap();
    let cert_pin = doc["pins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["endpoint"] == cert_ep.as_str())
        .cloned()
        .unwrap();
    assert_eq!(cert_pin["match"], "certificate");
    assert_eq!(cert_pin["fingerprint"], old.to_string());
}

#[test]
fn probe_pin_match_key_pins_the_key_on_first_use() {
    let env = Env::new();
    let port = free_port();
    let cert = prime_cert("prime-pri");
    let (file, key) = env.write_cert("c", &cert);
    let _server = TlsServer::start(&file, &key, port);
    let endpoint = format!("127.0.0.1:{port}");
    env.run(&["probe", "host", &endpoint, "--pin", "--match", "key"])
        .success()
        .stdout("pinned: [..]\n");
    let listed = env.run(&["listcerts", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&listed.success().stdout).unwrap();
    assert_eq!(doc["pins"][0]["match"], "key");
    assert_eq!(doc["pins"][0]["source"], "first-use");
    assert_eq!(doc["pins"][0]["fingerprint"], cert.fingerprint());
}

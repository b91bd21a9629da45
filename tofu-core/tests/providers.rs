//! With both crypto-provider features (`ring`, `aws-lc-rs`) compiled in and no process
//! default installed, rustls's own `ClientConfig::builder()` panics. The library's builders
//! must not: they pick `ring`, as `verifier::default_provider` documents; an explicit
//! provider is used as given; and a default the application installs later is the one used.
//!
//! One test in its own binary, because the process default can be installed only once and
//! must not have been installed by another test before. Run by `.ci/run` as
//! `cargo test -p tofu-core --features aws-lc-rs --test providers`.

mod tls;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use tofu_core::verifier::default_provider;
use tofu_core::{Endpoint, Policy, Store, TofuClientConfigs, TofuVerifier};

/// Which provider this is, by its key provider's type (`Ring` or `AwsLcRs`).
fn name(provider: &CryptoProvider) -> String {
    format!("{:?}", provider.key_provider)
}

#[test]
fn two_providers_none_installed_never_panics_and_picks_as_documented() {
    assert!(
        CryptoProvider::get_default().is_none(),
        "something installed a process default before this test; it must run alone"
    );
    let ring = name(&rustls::crypto::ring::default_provider());
    let aws = name(&rustls::crypto::aws_lc_rs::default_provider());
    assert_ne!(
        ring, aws,
        "the two providers must be told apart for this test to mean anything"
    );

    // Nothing installed: ring, deterministically, and nothing gets installed.
    assert_eq!(name(&default_provider()), ring);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("tofu")).unwrap());
    let id = tls::identity("both-providers", tls::KeyKind::Ecdsa);
    let server = tls::Server::start(vec![id.cert.clone()], &id.key, tls::Version::Tls13);
    let endpoint = Endpoint::new("127.0.0.1", server.addr.port()).unwrap();
    let configs = TofuClientConfigs::new(store.clone(), Policy::trust_on_first_use());
    let config = configs.client_config(&endpoint).unwrap();
    assert_eq!(name(config.crypto_provider()), ring);
    tls::connect(&config, server.addr, &endpoint.server_name()).unwrap();
    assert_eq!(
        store.endpoint(&endpoint).unwrap().pins.len(),
        1,
        "pinned on first use"
    );
    let verifier = TofuVerifier::builder(store.clone(), endpoint.clone())
        .build()
        .unwrap();
    assert_eq!(name(verifier.client_config().crypto_provider()), ring);
    assert!(
        CryptoProvider::get_default().is_none(),
        "the library installed a default"
    );

    // An explicit provider is the one used, and verifies the pin it did not write.
    let explicit = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = TofuVerifier::builder_with_provider(store.clone(), endpoint.clone(), explicit)
        .policy(Policy::strict())
        .build()
        .unwrap();
    let config = verifier.client_config();
    assert_eq!(name(config.crypto_provider()), aws);
    tls::connect(&config, server.addr, &endpoint.server_name()).unwrap();
    let configs = TofuClientConfigs::with_provider(
        store.clone(),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        Policy::strict(),
    );
    let config = configs.client_config(&endpoint).unwrap();
    assert_eq!(name(config.crypto_provider()), aws);
    tls::connect(&config, server.addr, &endpoint.server_name()).unwrap();

    // The application installs aws-lc-rs as the process default: the builders follow it.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .unwrap();
    assert_eq!(name(&default_provider()), aws);
    let configs = TofuClientConfigs::new(store.clone(), Policy::strict());
    let config = configs.client_config(&endpoint).unwrap();
    assert_eq!(name(config.crypto_provider()), aws);
    tls::connect(&config, server.addr, &endpoint.server_name()).unwrap();
    assert_eq!(store.endpoint(&endpoint).unwrap().pins.len(), 1);
}
